"""Seat reservations under contention: every quota holds when many delegates race for the last seats.

On PostgreSQL a reservation locks the SKU, checks the quotas and inserts its row in one request, with
the quota rule written in SQL. These tests compare that SQL with the Python rule, and race real
threads, each with its own connection, against the emulator over HTTPS.
"""
import itertools

import pytest
from django.db import connection, transaction
from django.db.models import F

from graphsync.choices import LicenseState
from graphsync.models import DirectoryUser, Sku, UserLicense
from pools.choices import PoolAttribute
from pools.exceptions import AssignmentRejected
from pools.models import Pool
from pools.seats import _check_quotas, _quotas_allow_sql, reserve_seat
from pools.services import assign_license, set_allotment, set_scheme

from conftest import sync_now
from tests.test_assignment import eligible_users, graph_sku_ids, holders, race


@pytest.fixture
def emulator_snapshot():
    from graphsync.emulator.generator import generate_tenant

    return generate_tenant(users=400, seed=11)


def quota_rule_cases():
    """Every combination of usage that decides a reservation, for a level-1 pool and a level-2 chain."""
    level1 = Pool(pk=1, display_name="Sales")
    parent = Pool(pk=2, display_name="Germany")
    child = Pool(pk=3, display_name="Sales", parent=parent)
    seat_values = [None, 0, 1, 2]
    holder_values = [0, 1, 2]
    flags = [False, True]
    units = [(4, 5), (5, 5), (6, 5)]
    for seats, holders, has_direct, occupies, (consumed, enabled) in itertools.product(
        seat_values, holder_values, flags, flags, units
    ):
        yield [level1], {"seats_1": seats, "holders_1": holders}, has_direct, occupies, consumed, enabled
    for child_seats, child_holders, parent_seats, parent_holders, occupies in itertools.product(
        seat_values, holder_values, seat_values, holder_values, flags
    ):
        usage = {"seats_3": child_seats, "holders_3": child_holders, "seats_2": parent_seats, "holders_2": parent_holders}
        yield [child, parent], usage, False, occupies, 4, 5


def python_allows(chain, usage) -> bool:
    try:
        _check_quotas(chain, DirectoryUser(user_principal_name="u@example.com"), Sku(display_name="E3"), usage)
    except AssignmentRejected:
        return False
    return True


def test_sql_quota_rule_matches_python(require_postgresql, db):
    disagreements = []
    with connection.cursor() as cursor:
        for chain, pool_usage, has_direct, occupies, consumed, enabled in quota_rule_cases():
            usage = {
                **pool_usage, "has_direct": has_direct, "occupies_seat": occupies,
                "consumed_units": consumed, "enabled_units": enabled,
            }
            names = list(usage)
            placeholders = ", ".join(f"%s::{'boolean' if isinstance(usage[name], bool) else 'integer'}" for name in names)
            cursor.execute(
                f"SELECT {_quotas_allow_sql(chain)} FROM (SELECT {placeholders}) AS usage({', '.join(names)})",
                [usage[name] for name in names],
            )
            in_sql = bool(cursor.fetchone()[0])
            if in_sql != python_allows(chain, usage):
                disagreements.append((len(chain), usage, in_sql))
    assert disagreements == []


@pytest.fixture
def two_levels(require_postgresql, emulator, tenant, make_portal_user):
    """A tenant split by UPN domain, then by department; the largest department's pool and its parent."""
    sync_now(tenant)
    admin = make_portal_user("admin", role="tenant_admin", tenant=tenant)
    set_scheme(
        acting_user=admin, tenant=tenant, level1_attribute=PoolAttribute.UPN_DOMAIN,
        level2_attribute=PoolAttribute.DEPARTMENT,
    )
    children = Pool.objects.filter(tenant=tenant, parent__isnull=False, is_unassigned=False)
    child = max(children, key=lambda candidate: candidate.members_queryset().count())
    sku = Sku.objects.get(tenant=tenant, part_number="SPE_E3")
    return admin, child, child.parent, sku


@pytest.mark.django_db(transaction=True)
def test_race_within_parent_allotment(two_levels, emulator, tenant, make_portal_user):
    admin, child, parent, sku = two_levels
    set_allotment(acting_user=admin, pool=parent, sku=sku, seats=holders(parent, sku) + 3)
    manager = make_portal_user("manager", role="pool_manager", pool=child)
    users = eligible_users(child, sku, 10)

    outcomes = race(manager, child, users, sku)

    assert outcomes.count("assigned") == 3, outcomes
    assert all(f"Pool {parent} has no spare seat" in outcome for outcome in outcomes if outcome != "assigned")
    in_graph = [user for user in users if str(sku.sku_id) in graph_sku_ids(emulator, tenant, user)]
    assert len(in_graph) == 3
    assert holders(parent, sku) == parent.allotments.get(sku=sku).seats


@pytest.mark.django_db(transaction=True)
def test_race_within_child_allotment(two_levels, emulator, tenant, make_portal_user):
    admin, child, parent, sku = two_levels
    set_allotment(acting_user=admin, pool=parent, sku=sku, seats=holders(parent, sku) + 6)
    set_allotment(acting_user=admin, pool=child, sku=sku, seats=holders(child, sku) + 2)
    manager = make_portal_user("manager", role="pool_manager", pool=child)
    users = eligible_users(child, sku, 8)

    outcomes = race(manager, child, users, sku)

    assert outcomes.count("assigned") == 2, outcomes
    assert all(f"Pool {child} has no spare seat" in outcome for outcome in outcomes if outcome != "assigned")
    assert holders(child, sku) == child.allotments.get(sku=sku).seats


@pytest.mark.django_db(transaction=True)
def test_race_within_tenant_stock(require_postgresql, emulator, tenant, make_portal_user):
    sync_now(tenant)
    admin = make_portal_user("admin", role="tenant_admin", tenant=tenant)
    set_scheme(acting_user=admin, tenant=tenant, level1_attribute=PoolAttribute.UPN_DOMAIN)
    pool = Pool.objects.filter(tenant=tenant, parent=None, is_unassigned=False).first()
    sku = Sku.objects.get(tenant=tenant, part_number="SPE_E3")
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=holders(pool, sku) + 8)
    # Two units stay free in the tenant, fewer than the pool's spare.
    Sku.objects.filter(pk=sku.pk).update(enabled_units=F("consumed_units") + 2)
    manager = make_portal_user("manager", role="pool_manager", pool=pool)
    users = eligible_users(pool, sku, 6)

    outcomes = race(manager, pool, users, sku)

    assert outcomes.count("assigned") == 2, outcomes
    assert all("The tenant has no free seat" in outcome for outcome in outcomes if outcome != "assigned")
    sku.refresh_from_db()
    assert sku.consumed_units == sku.enabled_units


def test_reservation_joins_the_callers_transaction(require_postgresql, synced_tenant, make_portal_user):
    admin = make_portal_user("admin", role="tenant_admin", tenant=synced_tenant)
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.UPN_DOMAIN)
    pool = Pool.objects.filter(tenant=synced_tenant, parent=None, is_unassigned=False).first()
    sku = Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=holders(pool, sku) + 1)
    user = eligible_users(pool, sku, 1)[0]
    consumed = sku.consumed_units

    with pytest.raises(RuntimeError), transaction.atomic():
        reservation = reserve_seat(chain=[pool], user=user, sku=sku, disabled_plans=["plan-a"])
        stored = UserLicense.objects.get(pk=reservation.pk)
        assert (stored.state, stored.disabled_plans, stored.assigned_by_group) == (LicenseState.PENDING, ["plan-a"], "")
        assert Sku.objects.get(pk=sku.pk).consumed_units == consumed + 1
        raise RuntimeError("roll back")

    assert not UserLicense.objects.filter(user=user, sku=sku).exists()
    assert Sku.objects.get(pk=sku.pk).consumed_units == consumed
