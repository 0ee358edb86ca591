"""``lindero simulate``: play a seeded scenario, write it to files and/or post it to ingest.

Examples::

    lindero simulate --region co-ve-cucuta --seed 7 --duration 900 --speed 10
    lindero simulate --all-regions --duration 3600 --density 2 --out bench/scenario --no-post
    lindero simulate --from bench/scenario --speed 0          # post a saved scenario, flat out

The report goes to stdout; logs (JSON lines) to stderr. Exit status: 0 when everything posted
was taken (accepted or duplicate), 1 when ingest refused events or some were left unposted,
2 for a usage or configuration problem, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from services.core import logging as core_logging
from services.core.config import ConfigError, load_config
from services.core.geography import Geography
from services.simulator import files
from services.simulator.client import GatewayPoster, PosterError, PosterSettings, PostStats, load_keys
from services.simulator.domain import SimEvent, Simulation, combine, simulate


def _say(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def _start(text: str) -> dt.datetime:
    if text == "now":
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone (e.g. Z): {text!r}")
    return moment.astimezone(dt.UTC)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


class UsageError(Exception):
    """The command cannot run as asked (reported on stderr, exit status 2)."""


def build_parser() -> argparse.ArgumentParser:
    """The command's options."""
    parser = argparse.ArgumentParser(
        prog="lindero simulate",
        description="Play a seeded sensor scenario: write it to files and/or post it to ingest "
        "like the real gateways would.",
    )
    scene = parser.add_argument_group("scenario")
    scene.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ.get("LINDERO_CONFIG", "config/demo.yaml")),
        help="deployment configuration (default: $LINDERO_CONFIG or config/demo.yaml)",
    )
    where = scene.add_mutually_exclusive_group()
    where.add_argument("--region", help="region id (default: the first region of the configuration)")
    where.add_argument("--all-regions", action="store_true", help="every region of the configuration")
    scene.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    scene.add_argument("--duration", type=_positive_float, default=900.0, help="seconds (default 900)")
    scene.add_argument("--density", type=_positive_float, default=1.0, help="scales every count (default 1)")
    scene.add_argument(
        "--start",
        type=_start,
        default="now",
        help="scenario start, RFC 3339 (default: now, to the second); event ids depend on it",
    )
    scene.add_argument("--from", dest="source", type=Path, help="post a scenario folder written by --out")
    post = parser.add_argument_group("posting")
    post.add_argument("--ingest", default="http://127.0.0.1:8081", help="ingest base URL")
    post.add_argument(
        "--keys", type=Path, default=Path("config/demo-keys.yaml"), help="gateway id -> API key"
    )
    post.add_argument("--speed", type=float, default=10.0, help="simulated seconds per second; 0: flat out")
    post.add_argument("--batch", type=_positive_int, default=50, help="events per request (default 50)")
    post.add_argument(
        "--max-delay",
        type=float,
        default=0.5,
        help="longest wait to fill a batch, scenario seconds (default 0.5)",
    )
    post.add_argument(
        "--promise",
        action="store_true",
        help="gateways promise how far they have posted (Lindero-Complete-Through), so the correlator "
        "need not wait out its reorder window; needs --speed > 0",
    )
    post.add_argument("--no-post", action="store_true", help="only generate (and write with --out)")
    parser.add_argument("--out", type=Path, help="write the scenario files into this folder")
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default), ERROR")
    return parser


def _generate(args: argparse.Namespace) -> Simulation:
    config = load_config(args.config)
    if config.geography_path is None:
        raise UsageError(f"{args.config}: no `geography:` file configured (see `lindero geo extract`)")
    if args.region is not None and args.region not in config.regions_by_id:
        known = ", ".join(config.regions_by_id)
        raise UsageError(f"unknown region {args.region!r} (known: {known})")
    geography = Geography.load(config.geography_path)
    if args.all_regions:
        regions = [region.id for region in config.regions]
    else:
        regions = [args.region or config.regions[0].id]
    parts = [
        simulate(
            config,
            geography,
            region,
            seed=args.seed,
            start=args.start,
            duration_s=args.duration,
            density=args.density,
        )
        for region in regions
    ]
    return parts[0] if len(parts) == 1 else combine(parts)


def _report(simulation: Simulation, took_s: float) -> None:
    counts = simulation.counts()
    start = simulation.start.isoformat().replace("+00:00", "Z")
    _say(
        f"scenario: seed {simulation.seed}, {', '.join(simulation.regions)}, from {start} for "
        f"{simulation.duration_s:g} s, density {simulation.density:g} (generated in {took_s:.2f} s)"
    )
    per_minute = 60.0 / simulation.duration_s
    kinds = ", ".join(
        f"{kind} {count} ({count * per_minute:.0f}/min)" for kind, count in counts["by_type"].items()
    )
    _say(f"events:   {counts['events']}: {kinds}")
    _say(f"          {counts['detections_from_truth']} from truths, {counts['false_detections']} false")
    classes = ", ".join(f"{cls} {count}" for cls, count in counts["truths_by_class"].items())
    _say(f"truths:   {counts['truths']}: {classes}")
    expected = ", ".join(f"{kind} {count}" for kind, count in counts["expected_by_kind"].items())
    _say(f"expected: {expected or 'nothing'}")


def _post_report(stats: PostStats) -> None:
    _say(
        f"posted:   sent {stats.sent} of {stats.total}: accepted {stats.accepted}, duplicates "
        f"{stats.duplicates}, rejected {stats.rejected}, unconfirmed {stats.unconfirmed}, unsent "
        f"{stats.unsent}; {stats.requests} requests, {stats.retries} retries; "
        f"{stats.elapsed_s:.1f} s, {stats.rate_per_s:.0f} events/s"
    )
    if stats.rejected_reasons:
        _say(f"refused:  {dict(stats.rejected_reasons)}")


async def _post(poster: GatewayPoster, events: Sequence[SimEvent]) -> PostStats:
    """Post, stopping cleanly on Ctrl-C or SIGTERM (when run in the main thread)."""
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, poster.request_stop)
        except (ValueError, RuntimeError, NotImplementedError):
            continue  # not the main thread, or no signals here: Ctrl-C then just interrupts
        handled.append(signum)
    try:
        return await poster.post(events)
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


def main(argv: list[str]) -> int:
    """Run ``lindero simulate`` with ``argv`` (the arguments after ``simulate``).

    A leading ``--`` is ignored (``lindero simulate -- --region ...``).
    """
    if argv[:1] == ["--"]:
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    core_logging.configure(args.log_level)
    try:
        if args.source is not None:
            began = time.perf_counter()
            simulation = files.load(args.source)
            _say(f"loaded {args.source} in {time.perf_counter() - began:.2f} s")
        else:
            began = time.perf_counter()
            simulation = _generate(args)
            _report(simulation, time.perf_counter() - began)
    except (ConfigError, UsageError, files.ScenarioFileError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if args.out is not None and args.source is None:
        written = files.write(simulation, args.out)
        _say(f"wrote:    {len(written)} files into {args.out}")
    if args.no_post:
        return 0
    try:
        settings = PosterSettings(
            base_url=args.ingest,
            batch_size=args.batch,
            max_delay_s=args.max_delay,
            speed=args.speed,
            promise=args.promise,
        )
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    try:
        keys = load_keys(args.keys)
        pace = "flat out" if args.speed == 0 else f"{args.speed:g}x"
        wall_s = simulation.duration_s / args.speed if args.speed > 0 else 0.0
        _say(f"posting:  {len(simulation.events)} events to {args.ingest} ({pace}, ~{wall_s:.0f} s)")
        poster = GatewayPoster(settings, keys)
        stats = asyncio.run(_post(poster, simulation.events))
    except PosterError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    _post_report(stats)
    if poster.stop.is_set():
        return 130
    return 1 if stats.rejected or stats.unsent or stats.unconfirmed else 0
