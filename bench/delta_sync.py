"""Benchmark an incremental sync after N users changed, against the Graph emulator.

Starts the emulator with a generated tenant, runs a full sync, changes the department of N users
through the emulator's control interface (as an administrator would in the admin center), then times
the incremental sync that follows the users delta link.

Usage (PostgreSQL must run; the database is emptied):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lp_bench DJANGO_SECRET_KEY=bench \\
        .venv/bin/python bench/delta_sync.py --users 100000 --changed 1000
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "licensepools.settings")

from full_sync import start_emulator  # noqa: E402

CONTROL_TOKEN = "bench-control"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--changed", type=int, default=1000)
    args = parser.parse_args()

    import django

    django.setup()
    import requests
    from django.core.management import call_command

    from graphsync.models import DirectoryUser, SyncRun
    from graphsync.services import connect_tenant
    from graphsync.sync import run_full_sync, run_sync

    with tempfile.TemporaryDirectory() as state_dir:
        emulator, endpoint = start_emulator(args.users, 1, Path(state_dir), control_token=CONTROL_TOKEN)
        try:
            call_command("migrate", verbosity=0)
            call_command("flush", interactive=False, verbosity=0)
            data = endpoint["tenants"][0]
            tenant = connect_tenant(
                acting_user=None, name="bench", tenant_id=data["tenantId"], client_id=data["clientId"],
                client_secret=data["clientSecret"], authority_host=endpoint["base_url"],
                graph_base_url=f"{endpoint['base_url']}/v1.0", ca_bundle=endpoint["ca_path"],
            )
            started = time.perf_counter()
            full = run_full_sync(SyncRun.objects.create(tenant=tenant))
            print(f"full sync: {full.users_count} users in {time.perf_counter() - started:.1f} s ({full.status})")

            session = requests.Session()
            session.verify = endpoint["ca_path"]
            session.trust_env = False
            user_ids = list(DirectoryUser.objects.filter(tenant=tenant).order_by("pk").values_list("user_id", flat=True))
            for user_id in user_ids[: args.changed]:
                response = session.patch(
                    f"{endpoint['base_url']}/_emulator/tenants/{tenant.tenant_id}/users/{user_id}",
                    json={"department": "Benchmark Movers"}, headers={"X-Emulator-Control": CONTROL_TOKEN}, timeout=30,
                )
                response.raise_for_status()

            started = time.perf_counter()
            run = run_sync(SyncRun.objects.create(tenant=tenant, kind="incremental"))
            elapsed = time.perf_counter() - started
            moved = DirectoryUser.objects.filter(tenant=tenant, department="Benchmark Movers").count()
            print(f"incremental sync after {args.changed} changed users: {elapsed:.2f} s ({run.status}, kind {run.kind}, "
                  f"{run.pages_count} pages); users with the new department in the mirror: {moved}")
        finally:
            emulator.terminate()
            emulator.wait(timeout=30)


if __name__ == "__main__":
    main()
