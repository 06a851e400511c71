"""Benchmark concurrent license assignment against pools with limited spare, on PostgreSQL.

Starts the Graph emulator in its own process with a generated tenant, syncs it, splits it into pools
by department, gives each pool a few spare seats of one SKU, then lets N worker threads make M
assignment attempts in all through `pools.services.assign_license`. It reports:
- over-allotment, checked against both the emulator and the mirror (must be zero);
- throughput in attempts and assignments per second;
- the portal's own time per attempt, excluding the Graph call (p50 and p95).

Usage (PostgreSQL must run; the database is created if missing and emptied):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lp_bench DJANGO_SECRET_KEY=bench DATABASE_CONN_MAX_AGE=0 \
        .venv/bin/python bench/concurrent_assign.py --users 5000 --attempts 1000 --workers 50
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "licensepools.settings")

from full_sync import start_emulator  # noqa: E402

_timing = threading.local()
CONTROL_TOKEN = "bench-control"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--attempts", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--spare", type=int, default=5, help="spare seats given to each pool")
    args = parser.parse_args()

    import django

    django.setup()
    import requests
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from graphsync import client as graph_client
    from graphsync.models import Sku, SyncRun, UserLicense
    from graphsync.services import connect_tenant
    from graphsync.sync import run_full_sync
    from pools import services
    from pools.choices import PoolAttribute
    from pools.exceptions import AssignmentRejected, GraphRejected
    from pools.models import Pool
    from pools.stock import holders
    from rbac.services import grant_role

    with tempfile.TemporaryDirectory() as state_dir:
        emulator, endpoint = start_emulator(args.users, 3, Path(state_dir), control_token=CONTROL_TOKEN)
        try:
            call_command("migrate", verbosity=0)
            call_command("flush", interactive=False, verbosity=0)
            data = endpoint["tenants"][0]
            tenant = connect_tenant(
                acting_user=None, name="bench", tenant_id=data["tenantId"], client_id=data["clientId"],
                client_secret=data["clientSecret"], authority_host=endpoint["base_url"],
                graph_base_url=f"{endpoint['base_url']}/v1.0", ca_bundle=endpoint["ca_path"],
            )
            run_full_sync(SyncRun.objects.create(tenant=tenant))
            admin = get_user_model().objects.create_user("bench-admin")
            grant_role(acting_user=None, role="tenant_admin", tenant=tenant, user=admin)
            services.set_scheme(acting_user=admin, tenant=tenant, level1_attribute=PoolAttribute.DEPARTMENT)
            sku = Sku.objects.get(tenant=tenant, part_number="SPE_E3")
            # Room in the tenant for every pool's spare seats, so that only allotments limit assignments.
            response = requests.post(
                f"{endpoint['base_url']}/_emulator/tenants/{tenant.tenant_id}/skus/{sku.sku_id}",
                json={"prepaidUnits": {"enabled": 1_000_000}}, verify=endpoint["ca_path"], timeout=30,
                headers={"X-Emulator-Control": CONTROL_TOKEN},
            )
            response.raise_for_status()
            sku.enabled_units = 1_000_000
            sku.save(update_fields=["enabled_units"])

            licensed = set(UserLicense.objects.filter(tenant=tenant).values_list("user_id", flat=True))
            candidates = []
            for pool in Pool.objects.filter(tenant=tenant, parent=None, is_unassigned=False):
                used = holders(tenant, sku, pool.subtree_ids())
                services.set_allotment(acting_user=admin, pool=pool, sku=sku, seats=used + args.spare)
                members = [u for u in pool.members_queryset().exclude(usage_location="") if u.pk not in licensed]
                candidates.extend((pool, user) for user in members)
            random.Random(7).shuffle(candidates)
            attempts = candidates[: args.attempts]
            pools = {pool.pk: pool for pool, _user in attempts}
            before = {pk: holders(tenant, sku, pool.subtree_ids()) for pk, pool in pools.items()}

            real_assign = graph_client.GraphClient.assign_license

            def timed_assign(self, *a, **k):
                started = time.perf_counter()
                try:
                    return real_assign(self, *a, **k)
                finally:
                    _timing.graph += time.perf_counter() - started

            graph_client.GraphClient.assign_license = timed_assign

            outcomes: Counter = Counter()
            portal_times: list[float] = []
            lock = threading.Lock()
            queue = list(attempts)

            def worker() -> None:
                while True:
                    with lock:
                        if not queue:
                            break
                        pool, user = queue.pop()
                    _timing.graph = 0.0
                    started = time.perf_counter()
                    try:
                        services.assign_license(acting_user=admin, pool=pool, user=user, sku=sku)
                        outcome = "assigned"
                    except AssignmentRejected:
                        outcome = "rejected"
                    except GraphRejected:
                        outcome = "graph_rejected"
                    elapsed = time.perf_counter() - started - _timing.graph
                    with lock:
                        outcomes[outcome] += 1
                        portal_times.append(elapsed)
                connection.close()

            threads = [threading.Thread(target=worker) for _ in range(args.workers)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started

            over_mirror = 0
            for pk, pool in pools.items():
                allotment = pool.allotments.get(sku=sku).seats
                over_mirror += max(holders(tenant, sku, pool.subtree_ids()) - allotment, 0)
            assigned_users = {user.user_id for _pool, user in attempts}
            snapshot = requests.get(
                f"{endpoint['base_url']}/_emulator/tenants/{tenant.tenant_id}/snapshot",
                verify=endpoint["ca_path"], timeout=60, headers={"X-Emulator-Control": CONTROL_TOKEN},
            )
            over_graph = "not checked (control interface off)"
            if snapshot.ok:
                in_graph = sum(
                    1 for user in snapshot.json()["users"]
                    if user["id"] in {str(u) for u in assigned_users}
                    and any(a["skuId"] == str(sku.sku_id) for a in user.get("assignedLicenses") or [])
                )
                over_graph = in_graph - outcomes["assigned"]
            portal_times.sort()
            print(f"{len(attempts)} attempts by {args.workers} threads in {wall:.1f} s: {dict(outcomes)}")
            print(f"throughput: {len(attempts) / wall:.1f} attempts/s, {outcomes['assigned'] / wall:.1f} assignments/s")
            print(f"portal time per attempt excluding Graph: p50 {statistics.median(portal_times) * 1000:.1f} ms, "
                  f"p95 {portal_times[int(len(portal_times) * 0.95)] * 1000:.1f} ms")
            print(f"over-allotment in the mirror: {over_mirror}; assignments in Graph beyond those reported: {over_graph}")
            expected = sum(min(args.spare, sum(1 for p, _u in attempts if p.pk == pk)) for pk in pools)
            print(f"assignments expected from spare: {expected}; made: {outcomes['assigned']}; pools: {len(pools)}; "
                  f"spare before: {sum(pools[pk].allotments.get(sku=sku).seats - before[pk] for pk in pools)}")
        finally:
            emulator.terminate()
            emulator.wait(timeout=30)


if __name__ == "__main__":
    main()
