"""End-to-end latency: a gateway's post to ingest → the dashboard's websocket message.

    .venv/bin/python bench/e2e.py                      # both settings, 2,000 detections/s, 120 s each
    .venv/bin/python bench/e2e.py --duration 60 --rate 1000 --settings defaults
    .venv/bin/python bench/e2e.py --render bench/out/e2e-results.json   # the docs from saved numbers

For each setting (the defaults, then a low-latency one: reorder window at most 0.6 s, just above
the gateways' batching of up to 0.5 s, and commit intervals 0.05 s; ``fixed-window``, not run by
default: the defaults until b40cb6c, a fixed 2 s window and one update per track a second;
``prompt-gateways``, not run by default: gateways that post within 0.1 s, the low-latency commit
intervals, the adaptive window uncapped; ``promises``, not run by default: gateways that batch as
the defaults' and promise how far they have posted, ``Lindero-Complete-Through``, with heartbeats
every 0.1 s when idle, and the low-latency commit intervals; ``prompt-promises``, the same
gateways posting within 0.1 s; ``prompt-promises-publish``, those with a publish interval of 0.1 s
instead of 0.25)
ingest, the correlator and the alerts service run as processes (services/stack.py) on the
benchmarks' own broker (bench/_common.broker: port 9292, from empty storage when it is not up) with
a fresh topic prefix. This process plays the simulator's
scenario of both demo regions at the asked rate through real HTTP, batched per gateway like the
simulator's poster, and keeps a dashboard websocket (admin token, tracks and alerts) open. After a
warm-up it measures for ``--duration`` seconds; see bench/_pipeline.py for what a latency is. The
section ``e2e`` of docs/benchmarks.md is rewritten (``--no-write`` to skip).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import sys
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import OUT, Window, broker, git_revision, listening_pid, uncommitted, write_section
from bench._pipeline import (
    ALERT,
    DEFAULTS,
    LOW_LATENCY,
    MAX_DELAY_S,
    TRACK,
    Dashboard,
    Latencies,
    Poster,
    Scenario,
    Setting,
    keys,
    latencies,
    load_average,
    ms,
    pct,
    scenario,
    scrape,
    start_stack,
    stop_stack,
)

RESULTS_JSON = OUT / "e2e-results.json"
GOAL_P99_MS = 500.0
GOAL_RATE = 2_000.0
SETTINGS = {
    "defaults": DEFAULTS,
    "low-latency": LOW_LATENCY,
    # For comparison: the defaults until b40cb6c (a fixed 2 s window, one update per track a second).
    "fixed-window": Setting("fixed window, publish 1 s", adaptive=False, publish_interval_s=1.0),
    # Gateways that post within 0.1 s instead of 0.5 s (the adaptive window learns the shorter
    # delay), with the low-latency commit intervals.
    "prompt-gateways": Setting("prompt gateways", gateway_wait_s=0.1, env=LOW_LATENCY.env),
    # Gateways that batch as the defaults' but promise how far they have posted
    # (Lindero-Complete-Through), with the low-latency commit intervals.
    "promises": Setting("promising gateways", promise=True, env=LOW_LATENCY.env),
    # The same gateways posting within 0.1 s: a promising gateway that holds a detection holds
    # back its whole region, so it had better not hold it long.
    "prompt-promises": Setting(
        "prompt promising gateways", gateway_wait_s=0.1, promise=True, env=LOW_LATENCY.env
    ),
    # The same with at most ten updates per track a second instead of four: an update waits for
    # the publish interval less (at 2,000/s a track gets a detection every 1.4 s on average, so
    # hardly more messages).
    "prompt-promises-publish": Setting(
        "prompt promising gateways, publish 0.1 s",
        gateway_wait_s=0.1,
        promise=True,
        env=LOW_LATENCY.env,
        publish_interval_s=0.1,
    ),
}


@dataclass
class Row:
    setting: str
    description: str
    seconds: float
    target_rate: float
    accepted_per_s: float
    rejected: int
    retries: int
    pacer_behind_s: float
    request_p99_ms: float
    tracks: dict[str, float]
    alerts: dict[str, float]
    tracks_from_sensor: dict[str, float]
    alerts_from_sensor: dict[str, float]
    track_p50_thirds_ms: list[float]
    alert_kinds: dict[str, int]
    messages_per_s: float
    mb_per_s: float
    cpu: dict[str, float]
    load: tuple[float, float]
    correlator: dict[str, float]
    dashboard_closed: str | None
    untimed_track_messages: int = 0
    alerts_by_kind: dict[str, dict[str, float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def _measure_percentiles(values: np.ndarray[Any, Any]) -> float:
    return float(np.percentile(values, 99) * 1000) if len(values) else math.nan


async def measure(
    stack: Any, plan: Scenario, setting: Setting, args: argparse.Namespace, broker: int | None
) -> Row:
    ws = stack.url("alerts").replace("http", "ws") + "/v1/stream"
    dashboard = Dashboard(ws)
    ready = asyncio.Event()
    watcher = asyncio.create_task(dashboard.run(ready))
    stalls = LoopStalls()
    monitor = asyncio.create_task(stalls.run())
    await asyncio.wait_for(ready.wait(), 30)
    poster = Poster(stack.url("ingest"), keys(), max_delay_s=setting.gateway_wait_s, promise=setting.promise)
    start = time.time()
    window_start = start + args.warmup
    until = window_start + args.duration
    feeding = asyncio.create_task(poster.run(plan, until, start))
    await asyncio.sleep(max(0.0, window_start - time.time()))
    groups = {name: [p.pid] for name, p in stack.processes.items()}
    if broker is not None:
        groups["broker"] = [broker]
    window = Window(groups)
    load_start = load_average()
    before = scrape(stack.url("correlator"))
    raw_before = raw_metrics(stack)
    await asyncio.sleep(max(0.0, until - time.time()))
    cpu = window.close()
    after = scrape(stack.url("correlator"))
    save_metrics(raw_before, raw_metrics(stack), setting, round(plan.rate, -2))
    load_end = load_average()
    await feeding
    # messages caused by the window's last posts arrive after it: wait for them (not counted in CPU)
    await asyncio.sleep(args.drain)
    watcher.cancel()
    monitor.cancel()
    await asyncio.gather(watcher, monitor, return_exceptions=True)

    found = latencies(poster, dashboard)
    end = until + args.drain
    save_samples(found, stalls, setting, round(plan.rate, -2), window_start)
    tracks = found.select(TRACK, window_start, end)
    alerts = found.select(ALERT, window_start, end)
    sent = np.array(poster.sent)
    count = np.array(poster.count)
    in_window = (sent >= window_start) & (sent < until)
    acked = np.array(poster.acked)
    thirds = []
    for i in range(3):
        part = found.select(
            TRACK, window_start + i * args.duration / 3, window_start + (i + 1) * args.duration / 3
        )
        thirds.append(part.percentiles()["p50"])
    received = np.array(dashboard.received)
    messages = int(((received >= window_start) & (received < until)).sum())
    seconds = cpu["seconds"]
    correlator = {
        "detections_per_s": (after["detections"] - before["detections"]) / seconds,
        "late_per_s": (after["late"] - before["late"]) / seconds,
        "alerts": after["alerts"] - before["alerts"],
        "tracks_end": after["tracks"],
        "lag_end": after["lag"],
        "window_s": (before["window"], after["window"]),
    }
    return Row(
        setting=setting.name,
        description=setting.describe(),
        seconds=seconds,
        target_rate=plan.rate,
        accepted_per_s=float(count[in_window].sum()) / args.duration,
        rejected=poster.rejected,
        retries=poster.retries,
        pacer_behind_s=poster.behind_s,
        request_p99_ms=_measure_percentiles((acked - sent)[in_window]),
        tracks=tracks.percentiles(),
        alerts=alerts.percentiles(),
        tracks_from_sensor=tracks.percentiles("from_sensor"),
        alerts_from_sensor=alerts.percentiles("from_sensor"),
        track_p50_thirds_ms=thirds,
        alert_kinds=dict(dashboard.alert_kinds),
        messages_per_s=messages / args.duration,
        mb_per_s=dashboard.bytes / (end - start) / 1e6,
        cpu=cpu,
        load=(load_start, load_end),
        correlator=correlator,
        dashboard_closed=dashboard.closed,
        untimed_track_messages=dashboard.unchanged,
        alerts_by_kind=alerts.by_label(),
        extra={"heartbeats_per_s": poster.heartbeats / max(1e-9, time.time() - start)}
        if setting.promise
        else {},
    )


@dataclass
class LoopStalls:
    """This process's event loop (the gateways and the dashboard): when a 10 ms sleep overslept,
    and by how much. A stall delays every gateway's posts and promises and the dashboard's reading
    of its frames at once, so it shows up in the latencies as if the services were slow."""

    at: list[float] = field(default_factory=list)
    late_s: list[float] = field(default_factory=list)

    async def run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            late = time.perf_counter() - before - 0.01
            if late > 0.02:
                self.at.append(time.time())
                self.late_s.append(late)


def save_samples(
    found: Latencies, stalls: LoopStalls, setting: Setting, rate: float, window_start: float
) -> None:
    """Every timed message of the row (kind, receive time from the window's start, latency from post
    and from sensor time, in s) and this process's loop stalls over 20 ms (when, from the window's
    start, and how long) as bench/out/e2e-samples-<setting>-<rate>.npz: where the tail sits in time
    (bursts or spread, with this process's stalls or not) is not in the percentiles."""
    np.savez_compressed(
        OUT / f"e2e-samples-{setting.name.replace(' ', '')}-{rate:g}.npz",
        kind=found.kind,
        received=found.received - window_start,
        from_post=found.from_post,
        from_sensor=found.from_sensor,
        stall_at=np.array(stalls.at) - window_start,
        stall_s=np.array(stalls.late_s),
    )


def raw_metrics(stack: Any) -> dict[str, str]:
    """Every service's /metrics text (empty when it does not answer)."""
    found = {}
    for name in ("ingest", "correlator", "alerts"):
        try:
            found[name] = httpx.get(f"{stack.url(name)}/metrics", timeout=5).text
        except httpx.HTTPError:
            found[name] = ""
    return found


def save_metrics(before: dict[str, str], after: dict[str, str], setting: Setting, rate: float) -> None:
    """The services' metrics at the start and the end of the window, in bench/out (for bench/metrics.py-style
    reading: histograms such as the correlator's commit seconds and state bytes)."""
    label = f"e2e-metrics-{setting.name.replace(' ', '')}-{rate:g}"
    for name in before:
        (OUT / f"{label}-{name}-start.txt").write_text(before[name], "utf-8")
        (OUT / f"{label}-{name}-end.txt").write_text(after[name], "utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=120.0, help="measured seconds per row")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds of load before measuring")
    parser.add_argument("--drain", type=float, default=10.0, help="seconds to wait for late messages")
    parser.add_argument(
        "--rate", type=float, nargs="+", default=[GOAL_RATE], help="detections per second (one row each)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--settings", nargs="+", choices=sorted(SETTINGS), default=["defaults", "low-latency"]
    )
    parser.add_argument(
        "--merge", type=Path, help="keep the rows of these saved results that this run does not measure"
    )
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--render", type=Path, help="rewrite the section from saved results")
    args = parser.parse_args()
    if args.render:
        rows, meta = load(args.render)
        report(rows, meta, write=not args.no_write)
        return 0
    bootstrap, cluster = broker()
    broker_pid = listening_pid(int(bootstrap.rsplit(":", 1)[1]))
    command = "python bench/e2e.py " + " ".join(a for a in sys.argv[1:] if a != "--no-write")
    meta = {
        "revision": git_revision(),
        "bootstrap": bootstrap,
        "warmup": args.warmup,
        "duration": args.duration,
    }
    rows = []
    try:
        for rate in args.rate:
            plan = scenario(rate, args.seed)
            print(f"scenario: {plan.detections:,} detections in {plan.length_s:g} s ({plan.rate:,.0f}/s)")
            for name in args.settings:
                setting = SETTINGS[name]
                print(f"-- {rate:g}/s, {setting.name}: {setting.describe()}")
                started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
                revision, dirty = git_revision(), uncommitted()
                stack = start_stack(bootstrap, setting, f"e2e{name.replace('-', '')}")
                try:
                    row = asyncio.run(measure(stack, plan, setting, args, broker_pid))
                finally:
                    stop_stack(stack)
                row.extra = {
                    **row.extra,
                    "rate": rate,
                    "started": started,
                    "command": command,
                    "revision": revision,
                    "uncommitted": dirty,
                    "density": plan.density,
                    "truths": plan.truths,
                    "kept": plan.kept,
                    "scenario_s": plan.length_s,
                }
                rows.append(row)
                print(json.dumps(asdict(row), default=str)[:2000])
    finally:
        if cluster is not None:
            cluster.stop(progress=print)
    if args.merge:
        measured = {(r.extra["rate"], r.setting) for r in rows}
        old, _ = load(args.merge)
        rows = [r for r in old if (r.extra["rate"], r.setting) not in measured] + rows
    rows.sort(key=lambda r: (-r.extra["rate"], r.setting != DEFAULTS.name))
    RESULTS_JSON.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_JSON.write_text(json.dumps({"rows": [asdict(r) for r in rows], "meta": meta}, indent=1), "utf-8")
    report(rows, meta, write=not args.no_write)
    return 0


def load(path: Path) -> tuple[list[Row], dict[str, Any]]:
    """Saved rows (the first runs kept their run's facts in ``meta``: moved into each row)."""
    saved = json.loads(path.read_text("utf-8"))
    meta = saved["meta"]
    rows = []
    for item in saved["rows"]:
        row = Row(**item)
        if "rate" not in row.extra:
            row.extra = {
                "rate": round(row.target_rate, -2),
                "started": meta["started"],
                "command": meta["command"].strip(),
                "revision": meta["revision"],
                **{k: meta[k] for k in ("density", "truths", "kept", "scenario_s")},
            }
        rows.append(row)
    return rows, meta


def _wrap(text: str) -> str:
    indent = "  " if text.startswith("- ") else ""
    return textwrap.fill(text, 100, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def table(rows: list[Row]) -> str:
    lines = [
        "| rate | setting | detections/s posted (accepted) | track msgs | track p50 / p95 / p99 ms "
        "| alert msgs "
        "| alert p50 / p95 / p99 ms | track p99 from sensor time ms | ingest request p99 ms |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t, a = r.tracks, r.alerts
        lines.append(
            f"| {r.extra['rate']:,.0f}/s | {r.setting} | {r.accepted_per_s:,.0f} | {t['n']:,} "
            f"| {ms(t['p50'])} / {ms(t['p95'])} / {ms(t['p99'])} | {a['n']:,} "
            f"| {ms(a['p50'])} / {ms(a['p95'])} / {ms(a['p99'])} | {ms(r.tracks_from_sensor['p99'])} "
            f"| {ms(r.request_p99_ms)} |"
        )
    lines += [
        "",
        "| rate | setting | ingest CPU | correlator CPU | alerts CPU | broker CPU "
        "| load generator + dashboard CPU "
        "| others' CPU | machine CPU (of 200%) | load avg (start → end) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        c = r.cpu
        lines.append(
            f"| {r.extra['rate']:,.0f}/s | {r.setting} | {pct(c.get('ingest', math.nan))} "
            f"| {pct(c.get('correlator', math.nan))} "
            f"| {pct(c.get('alerts', math.nan))} | {pct(c.get('broker', math.nan))} | {pct(c['feed'])} "
            f"| {pct(c['others'])} | {pct(c['machine'])} | {r.load[0]:.1f} → {r.load[1]:.1f} |"
        )
    lines += [
        "",
        "| rate | setting | correlator detections/s | late (dropped)/s | reorder window s (start → end) "
        "| live tracks at the end | input lag at the end "
        "| track p50 by third of the window ms | dashboard messages/s | alert kinds seen |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        k = r.correlator
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(r.alert_kinds.items())) or "none"
        lines.append(
            f"| {r.extra['rate']:,.0f}/s | {r.setting} | {k['detections_per_s']:,.0f} "
            f"| {k['late_per_s']:,.1f} | {' → '.join(f'{s:.2f}' for s in k.get('window_s', ()))} "
            f"| {k['tracks_end']:,.0f} "
            f"| {k['lag_end']:,.0f} | {' → '.join(ms(v) for v in r.track_p50_thirds_ms)} "
            f"| {r.messages_per_s:,.0f} | {kinds} |"
        )
    names = sorted({name for r in rows for name in r.alerts_by_kind})
    if names:
        lines += [
            "",
            "Alert latency by kind (messages, p50 / p99 ms from post):",
            "",
            "| rate | setting | " + " | ".join(f"`{name}`" for name in names) + " |",
            "|---:|---|" + "---:|" * len(names),
        ]
        for r in rows:
            if not r.alerts_by_kind:
                continue
            cells = []
            for name in names:
                found = r.alerts_by_kind.get(name)
                cells.append(f"{found['n']:,}: {ms(found['p50'])} / {ms(found['p99'])}" if found else "–")
            lines.append(f"| {r.extra['rate']:,.0f}/s | {r.setting} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def goal(rows: list[Row]) -> list[str]:
    found = []
    for r in rows:
        if r.extra["rate"] < GOAL_RATE:
            continue
        worst = max(r.tracks["p99"], r.alerts["p99"])
        rate_ok = r.accepted_per_s >= 0.98 * GOAL_RATE
        met = rate_ok and worst < GOAL_P99_MS and r.alerts["n"] > 0
        why = []
        if not rate_ok:
            why.append(f"only {r.accepted_per_s:,.0f} detections/s were posted and accepted")
        if not worst < GOAL_P99_MS:
            why.append(f"p99 {ms(worst)} ms")
        processed = r.correlator["detections_per_s"]
        if processed < 0.95 * r.accepted_per_s:
            why.append(
                f"the correlator processed only {processed:,.0f} detections/s with "
                f"{pct(r.cpu.get('correlator', math.nan))} of a core, so the latency is a growing backlog"
            )
        if r.alerts["n"] == 0:
            why.append("no alert message arrived in the window")
        found.append(
            f"- end-to-end p99 under {GOAL_P99_MS:,.0f} ms at {GOAL_RATE:,.0f} events/s, {r.setting}: tracks "
            f"{ms(r.tracks['p99'])} ms, alerts {ms(r.alerts['p99'])} ms at {r.accepted_per_s:,.0f} "
            "events/s — " + ("**met**" if met else f"**missed** ({'; '.join(why)})")
        )
    return found


def analysis(rows: list[Row]) -> str:
    parts = ["**Why**", ""]
    for r in rows:
        c, k = r.cpu, r.correlator
        kept_up = k["detections_per_s"] + k["late_per_s"] >= 0.95 * r.accepted_per_s
        thirds = r.track_p50_thirds_ms
        growing = all(math.isfinite(v) for v in thirds) and thirds[2] > 1.5 * thirds[0] + 200
        parts.append(
            f"- *{r.extra['rate']:,.0f}/s, {r.setting}* ({r.description}): the correlator took "
            f"{k['detections_per_s']:,.0f} of the "
            f"{r.accepted_per_s:,.0f} detections/s ingest accepted, using "
            f"{pct(c.get('correlator', math.nan))} of a core while others' work took {pct(c['others'])} "
            f"of the machine (machine {pct(c['machine'])} of 200%), i.e. "
            f"{k['detections_per_s'] / c.get('correlator', math.nan):,.0f} detections per CPU-second with "
            f"{k['tracks_end']:,.0f} live tracks; its input lag at the end was {k['lag_end']:,.0f} records"
            + (
                ", and the track latency grew through the window (p50 "
                + " → ".join(ms(v) for v in thirds)
                + " ms): it did not keep up, so the latency is a queue that grows with time, not a steady "
                "value."
                if growing or not kept_up
                else "; the track latency stayed level through the window (p50 "
                + " → ".join(ms(v) for v in thirds)
                + " ms)."
            )
            + (
                f" {k['late_per_s']:,.1f} detections/s ({k['late_per_s'] / r.accepted_per_s:.0%} of those "
                "accepted) arrived behind the reorder window and were dropped."
                if k["late_per_s"] >= 0.05
                else ""
            )
            + (
                f" The gateways sent {r.extra['heartbeats_per_s']:,.0f} heartbeats/s (empty batches "
                "that repeat a promise) besides their batches of detections."
                if "heartbeats_per_s" in r.extra
                else ""
            )
        )
    steady = [
        r
        for r in rows
        if r.correlator["detections_per_s"] + r.correlator["late_per_s"] >= 0.95 * r.accepted_per_s
    ]
    for setting in (DEFAULTS.name, LOW_LATENCY.name):
        kept = [r for r in steady if r.setting == setting]
        if kept:
            parts.append(
                f"- *Where the correlator kept up ({setting})*: "
                + "; ".join(
                    f"at {r.extra['rate']:,.0f}/s tracks p50 {ms(r.tracks['p50'])} / "
                    f"p99 {ms(r.tracks['p99'])} ms, "
                    f"alerts p50 {ms(r.alerts['p50'])} / p99 {ms(r.alerts['p99'])} ms"
                    for r in kept
                )
                + ". "
                + (
                    "Even there the p99 is above 500 ms on this machine."
                    if all(max(r.tracks["p99"], r.alerts["p99"]) >= GOAL_P99_MS for r in kept)
                    else "Some of these rows are under 500 ms at p99."
                )
            )
    parts.append(
        "- *The floor.* A detection waits in the correlator until event time has moved the reorder "
        "window past it (the newest event time seen, or the wall clock when the partition is caught up), "
        "then for the publish interval (0.25 s per track by default) and the correlator's next "
        "transaction (`LINDERO_CORRELATOR_COMMIT_INTERVAL_S`, 0.2 s by default; downstream reads "
        "committed only); an alert then waits for the lifecycle's transaction "
        "(`LINDERO_ALERTS_COMMIT_INTERVAL_S`, 0.05 s) and the client's next frame. The adaptive window "
        "(the default) is the largest lateness of the last 5 minutes × 1.25 + 0.1 s, at most "
        "`reorder_window_s` (2 s): here a gateway's own batching (up to "
        f"{MAX_DELAY_S:g} s) plus ingest and Kafka; a detection from a batch that waited that long "
        "comes after newer ones, so a p99 under 500 ms is below the floor while gateways batch for "
        f"{MAX_DELAY_S:g} s. The low-latency row caps the window at "
        f"{LOW_LATENCY.reorder_window_s:g} s and the commit intervals at 0.05 s; the prompt-gateways row "
        "has gateways that post within "
        f"{SETTINGS['prompt-gateways'].gateway_wait_s:g} s, so the window learns a shorter delay (same "
        "commit intervals as low latency, window not capped)."
    )
    others = [r.cpu["others"] for r in rows if r.cpu.get("others") == r.cpu.get("others")]
    if others and max(others) < 0.2:
        machine = (
            f"- *This machine.* 2 slow cores with nothing else of note running (others' CPU at most "
            f"{max(others):.0%}): the stack, the broker and this process had them to themselves. "
        )
    else:
        machine = (
            "- *This machine.* 2 slow cores shared with other people's heavy work during the run: every "
            "number here is pessimistic, and a process that gets only part of a core falls behind sooner. "
        )
    parts.append(
        machine
        + "This process (gateways and dashboard) fell behind its schedule by up to "
        + " / ".join(f"{r.pacer_behind_s:.1f} s" for r in rows)
        + " at moments and caught up (the accepted rate is per window, so it holds)."
    )
    return "\n".join(_wrap(p) for p in parts)


def markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    runs: dict[str, list[str]] = {}
    for r in rows:
        dirty = r.extra.get("uncommitted")
        code = f"revision {r.extra['revision']}" + (
            f" with uncommitted changes in {', '.join(f'`{d}`' for d in dirty)}" if dirty else ""
        )
        runs.setdefault(f"`{r.extra['command']}` ({code})", []).append(r.extra["started"])
    scenarios = {
        r.extra["rate"]: f"{r.extra['rate']:,.0f}/s: density {r.extra['density']:.1f}, {r.extra['truths']:,} "
        f"targets per {r.extra['scenario_s']:g} s pass, detections kept {r.extra['kept']:.0%}"
        for r in rows
    }
    intro = _wrap(
        "Runs: "
        + "; ".join(f"{run}, started {', '.join(sorted(set(times)))}" for run, times in runs.items())
        + ". Ingest, the correlator and the alerts service run as processes (`services/stack.py`, a fresh "
        f"topic prefix per row) on the benchmarks' own single-node broker ({meta['bootstrap']}, from "
        "empty storage when it was not running). This process is the gateways and the dashboard: it plays "
        "the simulator's scenario of both "
        "demo regions (seed 7; looped, every pass with fresh event ids; at the density that gives the "
        "rate, the detections thinned at random to hit it exactly: "
        + "; ".join(scenarios.values())
        + ") in real time: each event is handed to its gateway's lane at its scenario time and stamped "
        "with that moment as its sensor time; a lane posts up to 50 events, or what has waited "
        f"{MAX_DELAY_S:g} s (as the simulator's poster; the prompt-gateways row: "
        f"{SETTINGS['prompt-gateways'].gateway_wait_s:g} s), to `/v1/events/batch` (one request in "
        "flight). A websocket `/v1/stream` with an admin token subscribes to tracks (whole `track` "
        "messages, as the dashboard) and alerts. "
        f"Each row is measured for {meta['duration']:g} s after {meta['warmup']:g} s of load; messages "
        "caused by the window's posts are counted up to 10 s after it."
    )
    definitions = "\n".join(
        _wrap(p)
        for p in [
            "- **latency** (from post), per message: receive time − the moment the gateways had sent "
            "every detection up to the message's sensor time T (the latest send of a request whose "
            "earliest detection is at or before T; T itself if that is later: an alert about a "
            "moment after the last post, a trip whose wait ended after the load stopped), with T = "
            "the track's `last_update` (sensor time of the latest detection associated) or the alert "
            "revision's `updated_at` (for "
            "`uncorroborated_trip`, `updated_at` + the rule's `wait_s` of 20 s: the rule holds a trip "
            "that long for a track to show up, so the alert cannot exist earlier"
            + (
                "; rows without the by-kind breakdown below were measured before this was added and "
                "timed their "
                + ", ".join(
                    str(r.alert_kinds.get("uncorroborated_trip", 0)) for r in rows if not r.alerts_by_kind
                )
                + " such alerts from the trip itself"
                if any(not r.alerts_by_kind for r in rows)
                else ""
            )
            + "). So it is the "
            "sensor post → dashboard time of the newest data the message reflects, and does not include "
            "the gateway's batching. **from sensor time**: receive time − T (includes the batching). "
            "A track message whose `last_update` is no newer than the track's previous message (a "
            "status change to coasting or lost, caused by time passing rather than by a detection) is "
            "not timed: "
            + ", ".join(f"{r.untimed_track_messages:,}" for r in rows)
            + " such messages over each row's whole run, in the order of the rows.",
            "- **detections/s posted (accepted)**: detections in requests sent in the window that ingest "
            "accepted (202), per second. **ingest request p99**: send → answer of those requests.",
            "- **CPU** in cores (100% = one core) over the window; *others' CPU* is the machine's busy "
            "time minus the services, the broker and this process: other people's work.",
            "- **input lag**: the correlator's `lindero_correlator_consumer_lag` (records behind the end "
            "of its input) at the end of the window; **late**: `lindero_correlator_late_events`.",
        ]
    )
    return f"""## End-to-end latency (`bench/e2e.py`)

{intro}

{definitions}

{table(rows)}

**Goal**

{chr(10).join(goal(rows))}

{analysis(rows)}
"""


def report(rows: list[Row], meta: dict[str, Any], *, write: bool) -> None:
    print(table(rows))
    print("\n".join(goal(rows)))
    if write:
        write_section("e2e", markdown(rows, meta))
        print("updated docs/benchmarks.md")


if __name__ == "__main__":
    raise SystemExit(main())
