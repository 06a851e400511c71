"""Command line: `python -m graphsync.emulator serve|generate|demo`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .generator import demo_tenant, generate_tenant
from .server import DEFAULT_STATE_DIR, EmulatorServer
from .snapshot import SnapshotError, load_snapshot, save_snapshot

logger = logging.getLogger("graphsync.emulator")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m graphsync.emulator", description="Microsoft Graph emulator")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve tenants over HTTPS")
    source = serve.add_mutually_exclusive_group()
    source.add_argument("--snapshot", action="append", type=Path, metavar="FILE", help="tenant snapshot to load (repeatable)")
    source.add_argument("--demo", action="store_true", help="serve the demo tenant (the default without --snapshot or --generate)")
    source.add_argument("--generate", type=int, metavar="N", help="serve a generated tenant with N users")
    serve.add_argument("--seed", type=int, default=1, help="random seed for --generate (default 1)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8443, help="TCP port; 0 picks a free one (default 8443)")
    serve.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="directory for certificates and endpoint.json (default var/emulator)")
    serve.add_argument("--control-token", default=os.environ.get("GRAPH_EMULATOR_CONTROL_TOKEN"), help="enable /_emulator/ and require this value in X-Emulator-Control (default: $GRAPH_EMULATOR_CONTROL_TOKEN; off when unset)")

    generate = commands.add_parser("generate", help="write a generated tenant snapshot")
    generate.add_argument("--users", type=int, required=True, help="number of users")
    generate.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    generate.add_argument("--out", type=Path, required=True, help="output JSON file")

    demo = commands.add_parser("demo", help="write the demo tenant snapshot")
    demo.add_argument("--out", type=Path, required=True, help="output JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        if args.command == "generate":
            save_snapshot(generate_tenant(args.users, args.seed), args.out)
            return 0
        if args.command == "demo":
            save_snapshot(demo_tenant(), args.out)
            return 0
        return serve(args)
    except (SnapshotError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def serve(args: argparse.Namespace) -> int:
    if args.snapshot:
        snapshots = [load_snapshot(path) for path in args.snapshot]
    elif args.generate is not None:
        snapshots = [generate_tenant(args.generate, args.seed)]
    else:
        snapshots = [demo_tenant()]

    stopping = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        logger.info("Received signal %s, stopping", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    server = EmulatorServer(snapshots, host=args.host, port=args.port, state_dir=args.state_dir, control_token=args.control_token)
    with server:
        write_endpoint_file(server, snapshots, args.state_dir / "endpoint.json")
        print(f"Graph emulator: {server.base_url}", flush=True)
        print(f"CA certificate: {server.ca_path.resolve()}", flush=True)
        print(f"Graph base URL: {server.base_url}/v1.0", flush=True)
        for snapshot in snapshots:
            for client in snapshot["clients"]:
                hint = client["clientSecret"][:4] + "…"
                print(
                    f"tenant {snapshot['tenantId']} ({len(snapshot['users'])} users): "
                    f"clientId {client['clientId']}, clientSecret {hint} (full value in {args.state_dir / 'endpoint.json'})",
                    flush=True,
                )
        print(f"Control interface: {'on' if args.control_token else 'off'}", flush=True)
        while not stopping.wait(timeout=1):
            pass
    return 0


def write_endpoint_file(server: EmulatorServer, snapshots: list[dict[str, Any]], path: Path) -> None:
    """Write base_url, ca_path and the tenants' client credentials for other local tools.

    The file contains client secrets, so it is readable by its owner only.
    """
    document = {
        "base_url": server.base_url,
        "graph_url": f"{server.base_url}/v1.0",
        "ca_path": str(server.ca_path.resolve()),
        "tenants": [
            {"tenantId": snapshot["tenantId"], "clientId": client["clientId"], "clientSecret": client["clientSecret"]}
            for snapshot in snapshots
            for client in snapshot["clients"]
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)


if __name__ == "__main__":
    sys.exit(main())
