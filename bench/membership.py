"""Benchmark recomputing pool membership of a large tenant after a scheme change.

Creates a tenant with generated users written straight into PostgreSQL (no emulator, no Graph calls),
then times:
1. ``recompute_membership`` after setting a one-level scheme (department), when every user moves out of
   Unassigned;
2. ``recompute_membership`` after changing to a two-level scheme (country, then department);
3. the scheme preview of a change back to department, which computes the same plan in memory.
The tenant is deleted at the end unless --keep is given.

Usage (PostgreSQL must run and the database must exist; it is migrated if needed):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lp_bench DJANGO_SECRET_KEY=bench \
        .venv/bin/python bench/membership.py --users 100000
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "licensepools.settings")

TARGET_SECONDS = 5.0


def create_tenant(users: int, seed: int):
    from django.utils import timezone

    from graphsync.emulator.generator import generate_tenant
    from graphsync.models import DirectoryUser, Tenant
    from graphsync.sync import user_from_graph

    snapshot = generate_tenant(users=users, seed=seed)
    tenant = Tenant.objects.create(
        name=f"Membership benchmark ({users} users)", tenant_id=uuid.uuid4(), client_id=uuid.uuid4(),
        client_secret_encrypted="",
    )
    now = timezone.now()
    DirectoryUser.objects.bulk_create(
        [user_from_graph(tenant, data, now) for data in snapshot["users"]], batch_size=5000
    )
    return tenant


def set_scheme_row(tenant, level1: str, level2: str = "") -> None:
    from pools.models import PoolScheme

    PoolScheme.objects.update_or_create(tenant=tenant, defaults={"level1_attribute": level1, "level2_attribute": level2})


def timed(label: str, function):
    from django.db import transaction

    started = time.perf_counter()
    with transaction.atomic():
        result = function()
    elapsed = time.perf_counter() - started
    verdict = "within" if elapsed < TARGET_SECONDS else "OVER"
    print(f"{label}: {elapsed:.2f} s ({verdict} the {TARGET_SECONDS:.0f} s target); result {result}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark tenant instead of deleting it")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from pools.membership import recompute_membership
    from pools.models import Pool
    from pools.schemes import _build_preview

    started = time.perf_counter()
    tenant = create_tenant(args.users, args.seed)
    print(f"Created tenant {tenant.pk} with {args.users} users in {time.perf_counter() - started:.1f} s "
          f"({connection.vendor}, Python {sys.version.split()[0]})")
    try:
        set_scheme_row(tenant, "department")
        timed("recompute, no scheme -> department", lambda: recompute_membership(tenant))
        set_scheme_row(tenant, "country", "department")
        timed("recompute, department -> country / department", lambda: recompute_membership(tenant))
        print(f"Active pools: {Pool.objects.filter(tenant=tenant, is_active=True).count()}")
        timed(
            "preview, country / department -> department",
            lambda: _build_preview(tenant, "department", "").users_moved,
        )
    finally:
        if not args.keep:
            tenant.delete()


if __name__ == "__main__":
    main()
