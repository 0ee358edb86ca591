"""The ``lindero`` command.

lindero kafka up|down|status|logs   a local Apache Kafka (KRaft) provisioned by the project
lindero kafka fetch                 only resolve Kafka's jars into the cache
lindero topics create               create Lindero's topics on the configured cluster
lindero schemas export [--check]    regenerate (or check) the exported JSON Schema files
lindero config check [FILE]         validate a configuration file
lindero gateway new-key GATEWAY     create an API key for a gateway (shown once)
lindero ingest                      run the ingest service
lindero correlator                  run the correlator
lindero alerts                      run the alerts service (feeds, lifecycle, dispatch)
lindero token issue ...             a signed token for an operator, supervisor, team or admin
lindero simulate ...                play a seeded sensor scenario through the ingest API
lindero demo                        Kafka + every service + the simulator, live (Ctrl-C stops it all)
lindero up [--simulate] / down      the same in the background / stop it
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from services.core import localkafka


def _say(message: str) -> None:
    print(message, flush=True)


def _external_bootstrap() -> str | None:
    return os.environ.get("LINDERO_KAFKA_BOOTSTRAP") or None


def _local_cluster(args: argparse.Namespace) -> localkafka.LocalCluster:
    ports = [localkafka.DEFAULT_PORT + 10 * i for i in range(args.nodes)] if args.name == "local" else None
    return localkafka.LocalCluster(name=args.name, size=args.nodes, ports=ports)


def cmd_kafka(args: argparse.Namespace) -> int:
    external = _external_bootstrap()
    if external and args.action in {"up", "down"}:
        _say(f"LINDERO_KAFKA_BOOTSTRAP={external}: using that cluster; nothing to provision.")
        if args.action == "up" and not asyncio.run(localkafka.cluster_answers(external)):
            _say(f"warning: no Kafka answers at {external}")
            return 1
        return 0
    try:
        if args.action == "fetch":
            localkafka.ensure_runtime(progress=_say)
            return 0
        cluster = _local_cluster(args)
        if args.action == "up":
            bootstrap = cluster.start(progress=_say)
            _say(f"bootstrap: {bootstrap}   (logs: {cluster.home})")
        elif args.action == "down":
            if args.purge:
                cluster.purge()
                _say(f"stopped and deleted {cluster.home}")
            else:
                cluster.stop(progress=_say)
                _say("stopped")
        elif args.action == "status":
            running = 0
            for node, pid, port_open in cluster.status():
                state = f"running (pid {pid})" if pid else "stopped"
                running += pid is not None
                port = f"127.0.0.1:{node.broker_port} {'open' if port_open else 'closed'}"
                _say(f"node {node.node_id}: {state}, {port}")
            if running and asyncio.run(localkafka.cluster_answers(cluster.bootstrap, running)):
                _say(f"Kafka {localkafka.KAFKA_VERSION} answers at {cluster.bootstrap}")
            return 0 if running else 3
        elif args.action == "logs":
            _say(cluster.log_tail(args.lines))
    except localkafka.LocalKafkaError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from schemas.topics import REGISTRY
    from services.core.kafka import KafkaSettings, ensure_topics

    settings = KafkaSettings()
    created = asyncio.run(ensure_topics(settings, list(REGISTRY)))
    _say(f"created: {', '.join(created) if created else 'nothing (all exist)'}")
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from schemas import export

    return export.main(["--check"] if args.check else [])


def cmd_config(args: argparse.Namespace) -> int:
    from services.core.config import ConfigError, load_config

    try:
        config = load_config(args.file)
    except ConfigError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    _say(
        f"{args.file}: valid ({len(config.countries)} countries, {len(config.regions)} regions, "
        f"{len(config.sensors)} sensors, {len(config.gateways)} gateways)"
    )
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    from services.core import apikeys

    key = apikeys.generate(args.key_id or f"{args.gateway}-k1")
    _say("API key (give it to the gateway; it is not stored and cannot be shown again):")
    _say(f"  {key.token}")
    _say(f"Add to gateway {args.gateway!r} in the configuration:")
    _say(f"  api_keys:\n    - {{id: {key.key_id}, sha256: {key.sha256}}}")
    return 0


def cmd_geo(args: argparse.Namespace) -> int:
    import json

    from services.core import geography
    from services.core.config import ConfigError, parse_config

    path = Path(args.config)
    try:
        config = parse_config(path.read_text("utf-8"), path)  # the file to write may not exist yet
    except (ConfigError, OSError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    source = geography.fetch_world_atlas(localkafka.project_root() / ".cache" / "npm")
    topology = json.loads(source.read_text("utf-8"))
    numeric = {c.code: c.iso_numeric for c in config.countries}
    regions = [(r.id, r.area, {code: numeric[code] for code in r.countries}) for r in config.regions]
    document = geography.extract(topology, regions)
    out = Path(args.out) if args.out else config.geography_path
    if out is None:
        sys.stderr.write("no --out and no `geography:` in the configuration\n")
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, separators=(",", ":")) + "\n", "utf-8")
    kinds = [f["properties"]["kind"] for f in document["features"]]
    _say(f"wrote {out}: {kinds.count('country')} country outlines, {kinds.count('border')} border lines")
    return 0


def cmd_correlator(_: argparse.Namespace) -> int:
    from services.correlator.__main__ import main as correlator_main

    return correlator_main()


def cmd_alerts(_: argparse.Namespace) -> int:
    from services.alerts.__main__ import main as alerts_main

    return alerts_main()


def cmd_ingest(_: argparse.Namespace) -> int:
    from services.ingest.__main__ import main as ingest_main

    return ingest_main()


def cmd_demo(args: argparse.Namespace) -> int:
    from services import demo

    return demo.run(
        config=Path(args.config),
        keys=Path(args.keys),
        speed=args.speed,
        seed=args.seed,
        duration_s=args.duration,
        base_port=args.base_port,
    )


def cmd_up(args: argparse.Namespace) -> int:
    from services import demo

    return demo.up(
        config=Path(args.config),
        keys=Path(args.keys),
        simulate=args.simulate,
        speed=args.speed,
        base_port=args.base_port,
    )


def cmd_down(_: argparse.Namespace) -> int:
    from services import demo

    return demo.down()


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="lindero", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = root.add_subparsers(dest="command", required=True)

    kafka = sub.add_parser("kafka", help="a local Apache Kafka for the demo and the tests")
    kafka.add_argument("action", choices=["up", "down", "status", "logs", "fetch"])
    kafka.add_argument("--name", default="local", help="local cluster name (default: local)")
    kafka.add_argument("--nodes", type=int, default=1, choices=[1, 3], help="1 broker, or 3 (RF 3)")
    kafka.add_argument("--purge", action="store_true", help="with down: delete data and logs too")
    kafka.add_argument("--lines", type=int, default=40, help="with logs: lines per node")
    kafka.set_defaults(func=cmd_kafka)

    topics = sub.add_parser("topics", help="Lindero's topics on the configured cluster")
    topics.add_argument("action", choices=["create"])
    topics.set_defaults(func=cmd_topics)

    schemas = sub.add_parser("schemas", help="the exported JSON Schema files")
    schemas.add_argument("action", choices=["export"])
    schemas.add_argument("--check", action="store_true", help="fail if the files are stale")
    schemas.set_defaults(func=cmd_schemas)

    config = sub.add_parser("config", help="validate a configuration file")
    config.add_argument("action", choices=["check"])
    config.add_argument("file", nargs="?", default=os.environ.get("LINDERO_CONFIG", "config/demo.yaml"))
    config.set_defaults(func=cmd_config)

    gateway = sub.add_parser("gateway", help="gateway API keys")
    gateway.add_argument("action", choices=["new-key"])
    gateway.add_argument("gateway", help="the gateway id")
    gateway.add_argument("--key-id", help="public id of the key (default: <gateway>-k1)")
    gateway.set_defaults(func=cmd_gateway)

    geo = sub.add_parser("geo", help="country outlines and borders from Natural Earth (world-atlas)")
    geo.add_argument("action", choices=["extract"])
    geo.add_argument("--config", default=os.environ.get("LINDERO_CONFIG", "config/demo.yaml"))
    geo.add_argument("--out", help="output GeoJSON (default: the configuration's `geography:`)")
    geo.set_defaults(func=cmd_geo)

    sub.add_parser(
        "simulate", help="play a seeded scenario through the ingest API (see lindero simulate --help)"
    )

    ingest = sub.add_parser("ingest", help="run the ingest service (settings: LINDERO_INGEST_*)")
    ingest.set_defaults(func=cmd_ingest)

    correlator = sub.add_parser("correlator", help="run the correlator (settings: LINDERO_CORRELATOR_*)")
    correlator.set_defaults(func=cmd_correlator)

    alerts = sub.add_parser(
        "alerts", help="run the alerts service (settings: LINDERO_ALERTS_*, LINDERO_AUTH_*)"
    )
    alerts.set_defaults(func=cmd_alerts)

    demo = sub.add_parser("demo", help="Kafka + every service + the simulator, live (Ctrl-C stops it all)")
    demo.add_argument("--config", default="config/demo.yaml")
    demo.add_argument("--keys", default="config/demo-keys.yaml")
    demo.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second (default 1)")
    demo.add_argument("--seed", type=int, default=7, help="scenario seed")
    demo.add_argument("--duration", type=int, default=3_600, help="scenario length, simulated seconds")
    demo.add_argument("--base-port", type=int, default=8081, help="ingest; correlator +1, alerts +2")
    demo.set_defaults(func=cmd_demo)

    up = sub.add_parser("up", help="start Kafka and every service in the background")
    up.add_argument("--config", default="config/demo.yaml")
    up.add_argument("--keys", default="config/demo-keys.yaml")
    up.add_argument("--simulate", action="store_true", help="also play the demo scenario")
    up.add_argument("--speed", type=float, default=1.0)
    up.add_argument("--base-port", type=int, default=8081, help="ingest; correlator +1, alerts +2")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop what `lindero up` started")
    down.set_defaults(func=cmd_down)
    return root


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "simulate":  # the simulator parses its own options (argparse REMAINDER cannot)
        from services.simulator.cli import main as simulate_main

        return simulate_main(argv[1:])
    if argv[:2] == ["token", "issue"]:
        from services.core.tokens import token_cli

        return token_cli(argv[2:])
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
