"""Soak: the whole pipeline at a steady rate for a long time; throughput, latency and memory over time.

    .venv/bin/python bench/soak.py                          # 30 minutes at 2,000 detections/s
    .venv/bin/python bench/soak.py --duration 120 --rate 500 --no-write     # a quick try
    .venv/bin/python bench/soak.py --render bench/out/soak-results.json     # the docs from saved numbers

Not in CI. The same stack, load and dashboard as bench/e2e.py (see bench/_pipeline.py), for
``--duration`` seconds. Every ``--sample`` seconds it records the resident memory (VmRSS) and CPU of
ingest, the correlator, the alerts service and the broker, the machine's CPU and the correlator's
input lag; per minute, the detections accepted and the latency percentiles of track and alert
messages. The section ``soak`` of docs/benchmarks.md and the plot docs/images/soak.svg are rewritten
(``--no-write`` to skip); the raw numbers go to bench/out/soak-results.json.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import math
import os
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import (
    OUT,
    ROOT,
    broker,
    git_revision,
    listening_pid,
    machine_busy,
    own_cpu_seconds,
    uncommitted,
    write_section,
)
from bench._pipeline import (
    ALERT,
    DEFAULTS,
    LOW_LATENCY,
    TRACK,
    Dashboard,
    Poster,
    Scenario,
    keys,
    latencies,
    ms,
    pct,
    rss_mb,
    safe_cpu_seconds,
    scenario,
    scrape,
    service_pids,
    start_stack,
    stop_stack,
)
from bench._svg import Series, line_chart

RESULTS_JSON = OUT / "soak-results.json"
PLOT = ROOT / "docs" / "images" / "soak.svg"
SETTINGS = {"defaults": DEFAULTS, "low-latency": LOW_LATENCY}
SERVICES = ("ingest", "correlator", "alerts")
FIT_WINDOW_S = 15 * 60
"""The verdict's window: the last 15 minutes. Two structures grow by design for about the first 15
minutes of a run and are bounded after: ingest remembers event ids for ``LINDERO_INGEST_DEDUP_WINDOW_S``
(900 s) to answer retries as duplicates, and the alerts service keeps the last 50,000 changes per
input partition so that a stream can resume. The last 20 minutes are shown too."""
ALSO_WINDOW_S = 20 * 60
FLAT_PCT_PER_H = 5.0
"""A service's memory is called flat when its fitted growth is below this, % of its mean RSS per hour."""


async def soak(args: argparse.Namespace, plan: Scenario, bootstrap: str) -> dict[str, Any]:
    print(f"scenario: {plan.detections:,} detections in {plan.length_s:g} s ({plan.rate:,.0f}/s)")
    broker = listening_pid(int(bootstrap.rsplit(":", 1)[1]))
    setting = SETTINGS[args.setting]
    meta: dict[str, Any] = {
        "command": "python bench/soak.py " + " ".join(a for a in sys.argv[1:] if a != "--no-write"),
        "revision": git_revision(),
        "uncommitted": uncommitted(),
        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "setting": setting.describe(),
        "rate": args.rate,
        "density": plan.density,
        "truths": plan.truths,
        "kept": plan.kept,
        "scenario_s": plan.length_s,
        "bootstrap": bootstrap,
        "sample_s": args.sample,
    }
    stack = start_stack(bootstrap, setting, "soak")
    samples: list[dict[str, Any]] = []
    try:
        pids = service_pids(stack, broker)
        dashboard = Dashboard(stack.url("alerts").replace("http", "ws") + "/v1/stream")
        ready = asyncio.Event()
        watcher = asyncio.create_task(dashboard.run(ready))
        await asyncio.wait_for(ready.wait(), 30)
        poster = Poster(stack.url("ingest"), keys())
        start = time.time()
        until = start + args.duration
        feeding = asyncio.create_task(poster.run(plan, until, start))
        previous = {name: safe_cpu_seconds(pid) for name, pid in pids.items()}
        own, machine, last = own_cpu_seconds(), machine_busy(), time.monotonic()
        while time.time() < until:
            await asyncio.sleep(min(args.sample, max(0.0, until - time.time())))
            if feeding.done():
                break
            now = time.monotonic()
            seconds = now - last
            cpu_now = {name: safe_cpu_seconds(pid) for name, pid in pids.items()}
            own_now, machine_now = own_cpu_seconds(), machine_busy()
            cpu = {name: (cpu_now[name] - previous[name]) / seconds for name in pids}
            cpu["feed"] = (own_now - own) / seconds
            busy = (machine_now[0] - machine[0]) / max(1, machine_now[1] - machine[1]) * (os.cpu_count() or 1)
            cpu["others"] = max(0.0, busy - sum(v for v in cpu.values() if math.isfinite(v)))
            cpu["machine"] = busy
            previous, own, machine, last = cpu_now, own_now, machine_now, now
            metrics = await asyncio.to_thread(scrape, stack.url("correlator"))
            sample: dict[str, Any] = {
                "t": time.time() - start,
                "rss": {name: rss_mb(pid) for name, pid in pids.items()},
                "cpu": cpu,
                "correlator": metrics,
                "alive": stack.alive(),
                "load": os.getloadavg()[0],
            }
            samples.append(sample)
            rss = " ".join(f"{k} {v:.0f}" for k, v in sample["rss"].items())
            print(
                f"{sample['t']:6.0f} s  accepted {poster.accepted:,}  rss MB: {rss}  "
                f"lag {metrics['lag']:,.0f}  "
                f"others {cpu['others']:.0%}",
                flush=True,
            )
            if not all(sample["alive"].values()):
                print(f"a service stopped: {sample['alive']}")
                break
        await feeding
        await asyncio.sleep(args.drain)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    finally:
        stop_stack(stack)
    meta["seconds"] = time.time() - start - args.drain
    found = latencies(poster, dashboard)
    minutes = []
    sent, count = np.array(poster.sent), np.array(poster.count)
    for minute in range(math.ceil(args.duration / 60)):
        begin, end = start + 60 * minute, min(start + 60 * (minute + 1), until)
        if end <= begin:
            break
        in_minute = (sent >= begin) & (sent < end)
        tracks = found.select(TRACK, begin, end).percentiles()
        alerts = found.select(ALERT, begin, end).percentiles()
        minutes.append(
            {
                "minute": minute + 1,
                "accepted_per_s": float(count[in_minute].sum()) / (end - begin),
                "tracks": tracks,
                "alerts": alerts,
            }
        )
    meta["totals"] = {
        "accepted": poster.accepted,
        "rejected": poster.rejected,
        "retries": poster.retries,
        "responses": dict(poster.responses),
        "pacer_behind_s": poster.behind_s,
        "messages": len(dashboard.received),
        "untimed_track_messages": dashboard.unchanged,
        "alert_kinds": dict(dashboard.alert_kinds),
        "dashboard_closed": dashboard.closed,
        "tracks": found.select(TRACK, start, until + args.drain).percentiles(),
        "alerts": found.select(ALERT, start, until + args.drain).percentiles(),
    }
    return {"meta": meta, "samples": samples, "minutes": minutes}


# -- analysis --------------------------------------------------------------------------------------


def fit(
    samples: list[dict[str, Any]], name: str, duration_s: float, window_s: float = FIT_WINDOW_S
) -> dict[str, float]:
    """RSS start / middle / end and a least-squares line over the last ``window_s`` (the last two
    thirds of a run too short for it): growth over the window in MB, and MB/h and %/h."""
    t = np.array([s["t"] for s in samples])
    rss = np.array([s["rss"].get(name, math.nan) for s in samples])
    ok = np.isfinite(rss)
    t, rss = t[ok], rss[ok]
    if len(t) < 3:
        return {}
    window_start = duration_s - window_s if duration_s >= window_s * 1.25 else duration_s / 3
    inside = t >= window_start
    slope, _ = np.polyfit(t[inside], rss[inside], 1)
    span = t[inside][-1] - t[inside][0]
    mean = float(rss[inside].mean())
    return {
        "start": float(rss[0]),
        "middle": float(rss[np.argmin(np.abs(t - duration_s / 2))]),
        "end": float(rss[-1]),
        "max": float(rss.max()),
        "window_min": float((t[inside][-1] - t[inside][0]) / 60),
        "growth_mb": float(slope * span),
        "mb_per_h": float(slope * 3600),
        "pct_per_h": float(slope * 3600 / mean * 100) if mean else math.nan,
    }


def _wrap(text: str) -> str:
    indent = "  " if text.startswith("- ") else ""
    return textwrap.fill(text, 100, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def _at_minute(samples: list[dict[str, Any]], minute: int) -> dict[str, Any] | None:
    inside = [s for s in samples if (minute - 1) * 60 < s["t"] <= minute * 60 + 1]
    return inside[-1] if inside else None


def _mean_cpu(samples: list[dict[str, Any]], minute: int, name: str) -> float:
    values = [s["cpu"].get(name, math.nan) for s in samples if (minute - 1) * 60 < s["t"] <= minute * 60 + 1]
    values = [v for v in values if math.isfinite(v)]
    return sum(values) / len(values) if values else math.nan


def plot(result: dict[str, Any]) -> str:
    samples, minutes = result["samples"], result["minutes"]
    t = [s["t"] / 60 for s in samples]
    colours = {"ingest": "#1f77b4", "correlator": "#d62728", "alerts": "#2ca02c", "broker": "#7f7f7f"}
    memory = [
        Series(name, t, [s["rss"].get(name, math.nan) for s in samples], colours[name]) for name in SERVICES
    ]
    broker = [Series("broker", t, [s["rss"].get("broker", math.nan) for s in samples], colours["broker"])]
    m = [row["minute"] - 0.5 for row in minutes]
    rate = [Series("accepted detections/s", m, [row["accepted_per_s"] for row in minutes], "#1f77b4")]
    rate.append(
        Series(
            "correlator detections/s",
            t,
            _rates(samples, "detections"),
            "#d62728",
        )
    )
    latency = [
        Series("track p50", m, [row["tracks"]["p50"] / 1000 for row in minutes], "#ff7f0e"),
        Series("track p99", m, [row["tracks"]["p99"] / 1000 for row in minutes], "#d62728"),
        Series("alert p50", m, [row["alerts"]["p50"] / 1000 for row in minutes], "#17becf"),
        Series("alert p99", m, [row["alerts"]["p99"] / 1000 for row in minutes], "#1f77b4"),
    ]
    return line_chart(
        [
            ("resident memory of the services, MB", memory),
            ("resident memory of the broker (JVM), MB", broker),
            ("throughput, per second", rate),
            ("end-to-end latency (from post) per minute, s", latency),
        ],
        x_label="minutes since the start",
        title=f"Soak: {result['meta']['rate']:,.0f} detections/s, "
        f"{result['meta']['seconds'] / 60:.1f} minutes",
    )


def _rates(samples: list[dict[str, Any]], key: str) -> list[float]:
    found = [math.nan]
    for before, after in itertools.pairwise(samples):
        found.append((after["correlator"][key] - before["correlator"][key]) / (after["t"] - before["t"]))
    return found


def markdown(result: dict[str, Any]) -> str:
    meta, samples, minutes = result["meta"], result["samples"], result["minutes"]
    totals = meta["totals"]
    duration = meta["seconds"]
    names = [*SERVICES, "broker"]
    fits = {name: fit(samples, name, duration) for name in names}
    longer = {name: fit(samples, name, duration, ALSO_WINDOW_S) for name in names}
    intro = _wrap(
        f"`{meta['command'].strip()}`, revision {meta['revision']}"
        + (
            f" with uncommitted changes in {', '.join(meta['uncommitted'])}"
            if meta.get("uncommitted")
            else ""
        )
        + f", started {meta['started']}, "
        f"**{duration / 60:.1f} minutes** at a steady {meta['rate']:,.0f} detections/s ({meta['setting']}). "
        "The stack, the load (the simulator's scenario of both demo regions at density "
        f"{meta['density']:.1f}, {meta['truths']:,} targets per {meta['scenario_s']:g} s pass, looped with "
        "fresh event ids) and the dashboard websocket are those of bench/e2e.py, and so is the latency "
        f"(receive − the post of the newest detection the message reflects). Every {meta['sample_s']:g} s: "
        "VmRSS and CPU of each process; per minute: the detections ingest accepted and the latency "
        "percentiles of track and alert messages. The broker is the benchmarks' own single-node one (from "
        "empty storage when it was not running); its memory is shown apart and is not a verdict on Lindero."
    )
    rows = [
        "| process | RSS at the start MB | halfway MB | at the end MB | max MB | fit window min "
        "| growth in the window MB | slope MB/h | slope %/h | flat (< 5 %/h) | last 20 min: growth MB, %/h |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    grew: list[str] = []
    for name in names:
        f = fits[name]
        if not f:
            continue
        flat = f["pct_per_h"] < FLAT_PCT_PER_H
        if name != "broker":
            grew += [] if flat else [name]
        rows.append(
            f"| {name} | {f['start']:,.0f} | {f['middle']:,.0f} | {f['end']:,.0f} | {f['max']:,.0f} "
            f"| {f['window_min']:.0f} | {f['growth_mb']:+,.1f} | {f['mb_per_h']:+,.1f} "
            f"| {f['pct_per_h']:+.1f} "
            f"| {'yes' if flat else 'no'}{' (not Lindero)' if name == 'broker' else ''} "
            f"| {longer[name]['growth_mb']:+,.1f}, {longer[name]['pct_per_h']:+.1f} |"
        )
    per_minute = [
        "| minute | accepted detections/s | track msgs | track p50 / p99 ms | alert msgs "
        "| alert p50 / p99 ms "
        "| correlator lag (records) | RSS ingest / correlator / alerts MB | others' CPU |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in minutes:
        sample = _at_minute(samples, row["minute"])
        rss = " / ".join(f"{sample['rss'][n]:,.0f}" for n in SERVICES) if sample else "–"
        lag = f"{sample['correlator']['lag']:,.0f}" if sample else "–"
        t, a = row["tracks"], row["alerts"]
        per_minute.append(
            f"| {row['minute']} | {row['accepted_per_s']:,.0f} | {t['n']:,} "
            f"| {ms(t['p50'])} / {ms(t['p99'])} "
            f"| {a['n']:,} | {ms(a['p50'])} / {ms(a['p99'])} | {lag} | {rss} "
            f"| {pct(_mean_cpu(samples, row['minute'], 'others'))} |"
        )
    mean_cpu = {
        name: np.nanmean([s["cpu"].get(name, math.nan) for s in samples])
        for name in [*names, "feed", "others", "machine"]
    }
    accepted = [row["accepted_per_s"] for row in minutes if row["minute"] * 60 <= duration]
    short = min((f["window_min"] for f in fits.values() if f), default=0.0) < 10
    verdict = (
        (
            "**Verdict: none — this run is too short to tell** "
            if short
            else (
                f"**Verdict: memory did not stay flat: {' and '.join(grew)} grew** "
                if grew
                else "**Verdict: memory stayed flat** "
            )
        )
        + f"(a service is flat when its fitted growth over the window, if any, is under {FLAT_PCT_PER_H:g}% "
        "of its mean "
        "RSS per hour): "
        + ", ".join(
            f"{name} {fits[name]['growth_mb']:+.1f} MB over the last {fits[name]['window_min']:.0f} min "
            f"({fits[name]['pct_per_h']:+.1f} %/h)"
            for name in SERVICES
            if fits[name]
        )
        + ". The window is the last 15 minutes because two bounded structures grow by design for about "
        "the first quarter hour: ingest remembers event ids for `LINDERO_INGEST_DEDUP_WINDOW_S` = 900 s "
        "(to answer a gateway's retry as a duplicate; ~190 B per id) and the alerts service keeps the "
        "last 50,000 changes per input partition (so that a dashboard can resume its stream). The last "
        "20 minutes are in the last column."
    )
    summary = _wrap(
        f"Throughput: {min(accepted):,.0f}–{max(accepted):,.0f} detections/s accepted per minute (mean "
        f"{np.mean(accepted):,.0f}); {totals['accepted']:,} accepted, {totals['rejected']:,} refused, "
        f"{totals['retries']:,} retried requests. Latency over the whole run: tracks p50 "
        f"{ms(totals['tracks']['p50'])} / p99 {ms(totals['tracks']['p99'])} ms ({totals['tracks']['n']:,} "
        f"messages), alerts p50 {ms(totals['alerts']['p50'])} / p99 {ms(totals['alerts']['p99'])} ms "
        f"({totals['alerts']['n']:,}). Mean CPU: ingest {pct(mean_cpu['ingest'])}, correlator "
        f"{pct(mean_cpu['correlator'])}, alerts {pct(mean_cpu['alerts'])}, broker {pct(mean_cpu['broker'])}, "
        f"load generator and dashboard {pct(mean_cpu['feed'])}, others' work {pct(mean_cpu['others'])} "
        f"(machine {pct(mean_cpu['machine'])} of 200%): the numbers are pessimistic, as other people's "
        "heavy tests shared the 2 cores."
    )
    note = f"\n{_wrap(meta['note'])}\n" if meta.get("note") else ""
    return f"""## Soak (`bench/soak.py`)

{intro}
{note}
![Soak: memory, throughput and latency over time](images/soak.svg)

{_wrap(verdict)}

{chr(10).join(rows)}

{summary}

{chr(10).join(per_minute)}
"""


def report(result: dict[str, Any], *, write: bool) -> None:
    text = markdown(result)
    print(text)
    if write:
        PLOT.parent.mkdir(parents=True, exist_ok=True)
        PLOT.write_text(plot(result), "utf-8")
        write_section("soak", text)
        print(f"updated docs/benchmarks.md and {PLOT.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=1800.0, help="seconds of load")
    parser.add_argument("--rate", type=float, default=2000.0, help="detections per second")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between memory samples")
    parser.add_argument("--drain", type=float, default=10.0, help="seconds to wait for late messages")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="defaults")
    parser.add_argument("--out", type=Path, default=RESULTS_JSON, help="where to save the raw numbers")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/benchmarks.md")
    parser.add_argument("--render", type=Path, help="rewrite the section and plot from saved results")
    parser.add_argument("--note", help="a paragraph to add below the introduction (why this rate, ...)")
    args = parser.parse_args()
    if args.render:
        saved = json.loads(args.render.read_text("utf-8"))
        if args.note is not None:
            saved["meta"]["note"] = args.note
        report(saved, write=not args.no_write)
        return 0
    plan = scenario(args.rate, args.seed)
    bootstrap, cluster = broker()
    try:
        result = asyncio.run(soak(args, plan, bootstrap))
    finally:
        if cluster is not None:
            cluster.stop(progress=print)
    if args.note:
        result["meta"]["note"] = args.note
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float), "utf-8")
    print(f"saved {args.out}")
    report(result, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
