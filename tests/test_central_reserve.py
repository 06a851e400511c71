"""The central reserve, the spare a pool can use, blocked SKUs on the pool page, and trial subscriptions on the
stock page: none of them may promise seats that do not exist."""
from __future__ import annotations

import datetime as dt

import pytest
from rest_framework.test import APIClient

from conftest import sync_now
from graphsync.models import Sku, Subscription
from pools.choices import PoolAttribute, RequestStatus
from pools.models import Allotment, Pool
from pools.seat_requests import SeatRequestError, approve_request, create_request
from pools.services import set_allotment, set_scheme
from pools.stock import central_reserve, holders, pool_lines
from tests.test_assignment import control

LAPSED_TRIAL_END = "2026-02-26T00:00:00Z"


@pytest.fixture
def emulator_snapshot():
    """The default generated tenant, with E3's trial ended and every other lifecycle date a year ahead."""
    from graphsync.emulator.generator import generate_tenant

    snapshot = generate_tenant(users=60, seed=7)
    e3_sku_id = next(sku["skuId"] for sku in snapshot["subscribedSkus"] if sku["skuPartNumber"] == "SPE_E3")
    next_year = (dt.datetime.now(dt.UTC) + dt.timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for subscription in snapshot["subscriptions"]:
        lapsed = subscription["skuId"] == e3_sku_id and subscription["isTrial"]
        subscription["nextLifecycleDateTime"] = LAPSED_TRIAL_END if lapsed else next_year
    return snapshot


@pytest.fixture
def admin(make_portal_user, synced_tenant):
    return make_portal_user("admin", role="tenant_admin", tenant=synced_tenant)


@pytest.fixture
def us(synced_tenant, admin, require_postgresql) -> Pool:
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.COUNTRY)
    return Pool.objects.get(tenant=synced_tenant, parent=None, key="us")


def sku_of(tenant, part_number: str) -> Sku:
    return Sku.objects.get(tenant=tenant, part_number=part_number)


def set_units(emulator, tenant, sku: Sku, **body) -> Sku:
    """Change the SKU in the emulator, as someone in the admin center would, and sync it."""
    control(emulator, "POST", f"tenants/{tenant.tenant_id}/skus/{sku.sku_id}", json=body)
    sync_now(tenant)
    return Sku.objects.get(pk=sku.pk)


def busiest_pool(tenant, sku: Sku) -> tuple[Pool, int]:
    """Return the active level-1 pool whose members hold the most seats of ``sku``, with that count."""
    pools = Pool.objects.filter(tenant=tenant, parent=None, is_active=True, is_unassigned=False)
    return max(((pool, holders(tenant, sku, pool.subtree_ids())) for pool in pools), key=lambda item: item[1])


def api_for(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


# Central reserve


def test_reserve_counts_holders_without_allotment(synced_tenant, admin, us):
    office = sku_of(synced_tenant, "ENTERPRISEPACK")
    in_use = holders(synced_tenant, office)
    us_holders = holders(synced_tenant, office, us.subtree_ids())
    assert 0 < us_holders < in_use

    central = central_reserve(synced_tenant, office)
    assert central.in_use == in_use
    assert central.allotted == 0
    assert central.seats == office.enabled_units - in_use
    assert central.seats == central.free_units

    # An allotment below the number of holders in the pool promises nothing new.
    set_allotment(acting_user=admin, pool=us, sku=office, seats=us_holders - 1)
    assert central_reserve(synced_tenant, office).seats == office.enabled_units - in_use

    # Seats allotted beyond the holders are promised, so they leave the reserve.
    set_allotment(acting_user=admin, pool=us, sku=office, seats=us_holders + 2)
    central = central_reserve(synced_tenant, office)
    assert central.unused_allotments == 2
    assert central.seats == office.enabled_units - in_use - 2
    us_line = next(item for item in central.pools if item.pool == us)
    assert (us_line.allotment, us_line.holders, us_line.committed) == (us_holders + 2, us_holders, us_holders + 2)
    unassigned = Pool.objects.get(tenant=synced_tenant, is_unassigned=True)
    assert holders(synced_tenant, office, unassigned.subtree_ids()) == sum(
        item.holders for item in central.pools if item.pool == unassigned
    )


def test_reserve_shown_with_parts(client, synced_tenant, admin, us):
    office = sku_of(synced_tenant, "ENTERPRISEPACK")
    in_use = holders(synced_tenant, office)
    us_holders = holders(synced_tenant, office, us.subtree_ids())
    set_allotment(acting_user=admin, pool=us, sku=office, seats=us_holders + 2)
    expected = office.enabled_units - in_use - 2
    client.force_login(admin)

    stock_page = client.get(f"/tenants/{synced_tenant.pk}/stock/").content.decode()
    section = stock_page.split(f'id="sku-{office.pk}"')[1].split("</section>")[0]
    assert f'data-cell="reserve">{expected}</td>' in section
    assert f'data-part="in-use">− {in_use}</td>' in section
    assert 'data-part="unused">− 2</td>' in section
    assert f'data-part="reserve">{expected}</td>' in section
    assert f'<tr data-pool="{us.pk}">' in section

    overview = client.get(f"/tenants/{synced_tenant.pk}/").content.decode()
    title = f"{office.enabled_units} enabled, minus {in_use} in use, minus 2 allotted but not used yet"
    assert f'#reserve-{office.pk}" title="{title}">{expected}</a>' in overview

    skus = api_for(admin).get(f"/api/v1/tenants/{synced_tenant.pk}/skus/").json()
    line = next(item for item in skus if item["partNumber"] == "ENTERPRISEPACK")
    assert line["reserve"] == expected
    assert (line["reserveInUse"], line["allottedUnused"], line["lapsedTrialUnits"]) == (in_use, 2, 0)


# Seat request approval


def test_approval_rejected_without_free_units(emulator, synced_tenant, admin, us, make_portal_user):
    visio = sku_of(synced_tenant, "VISIOCLIENT")
    in_use = holders(synced_tenant, visio)
    visio = set_units(emulator, synced_tenant, visio, prepaidUnits={"enabled": in_use})
    manager = make_portal_user("manager", role="pool_manager", pool=us)
    seat_request = create_request(acting_user=manager, pool=us, sku=visio, quantity=5, reason="New designers")
    us_holders = holders(synced_tenant, visio, us.subtree_ids())
    needed = max(5 - us_holders, 0)
    assert needed > 0

    with pytest.raises(SeatRequestError) as caught:
        approve_request(acting_user=admin, seat_request=seat_request)

    assert caught.value.message == (
        f"Cannot approve 5 seats of {visio.name} for US: this needs {needed} seats from the central reserve, which "
        f"has 0: {in_use} enabled units, minus {in_use} in use, minus 0 allotted to pools but not used yet. Buy more "
        "seats, lower another pool's unused allotment, or decline the request."
    )
    assert not Allotment.objects.filter(pool=us, sku=visio).exists()
    seat_request.refresh_from_db()
    assert seat_request.status == RequestStatus.PENDING


def test_approval_up_to_holders_needs_no_reserve(
    emulator, synced_tenant, admin, make_portal_user, require_postgresql
):
    e3 = sku_of(synced_tenant, "SPE_E3")
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.COUNTRY)
    pool, pool_holders = busiest_pool(synced_tenant, e3)
    e3 = set_units(emulator, synced_tenant, e3, prepaidUnits={"enabled": holders(synced_tenant, e3)})
    assert central_reserve(synced_tenant, e3).seats <= 0
    manager = make_portal_user("manager", role="pool_manager", pool=pool)
    seat_request = create_request(acting_user=manager, pool=pool, sku=e3, quantity=pool_holders, reason="Drift")

    approve_request(acting_user=admin, seat_request=seat_request)

    assert Allotment.objects.get(pool=pool, sku=e3).seats == pool_holders


def test_approval_rejected_for_lapsed_trial(synced_tenant, admin, us, make_portal_user):
    e3 = sku_of(synced_tenant, "SPE_E3")
    central = central_reserve(synced_tenant, e3)
    assert central.lapsed_trial_units == 25
    assert central.seats == e3.enabled_units - central.in_use - 25
    us_holders = holders(synced_tenant, e3, us.subtree_ids())
    quantity = us_holders + central.seats + 1
    manager = make_portal_user("manager", role="pool_manager", pool=us)
    seat_request = create_request(acting_user=manager, pool=us, sku=e3, quantity=quantity, reason="Project")

    with pytest.raises(SeatRequestError) as caught:
        approve_request(acting_user=admin, seat_request=seat_request)

    assert caught.value.message == (
        f"Cannot approve {quantity} seats of {e3.name} for US: this needs {central.seats + 1} seats from the central "
        f"reserve, which has {central.seats}: {e3.enabled_units} enabled units, minus {central.in_use} in use, minus 0 "
        "allotted to pools but not used yet, minus 25 of trials past their end date. Buy more seats, lower another "
        "pool's unused allotment, or decline the request."
    )


# Spare a pool can use


def test_pool_spare_limited_by_tenant(emulator, client, synced_tenant, admin, us):
    office = sku_of(synced_tenant, "ENTERPRISEPACK")
    us_holders = holders(synced_tenant, office, us.subtree_ids())
    set_allotment(acting_user=admin, pool=us, sku=office, seats=us_holders + 3)
    set_units(emulator, synced_tenant, office, prepaidUnits={"enabled": holders(synced_tenant, office)})

    line = next(item for item in pool_lines(us) if item.sku.pk == office.pk)
    assert line.spare == 3
    assert line.tenant_free == 0
    assert line.usable_spare == 0
    assert line.limited_by_tenant

    client.force_login(admin)
    pool_page = client.get(f"/pools/{us.pk}/").content.decode()
    assert "3 by allotment, but the tenant has 0 free units." in pool_page
    home = client.get("/").content.decode()
    assert f"{us_holders} in use / {us_holders + 3} allotted / 0 spare" in home
    assert "3 by allotment, but the tenant has 0 free units." in home

    detail = api_for(admin).get(f"/api/v1/pools/{us.pk}/").json()
    api_line = next(item for item in detail["skus"] if item["partNumber"] == "ENTERPRISEPACK")
    assert (api_line["spare"], api_line["usableSpare"], api_line["tenantFreeUnits"]) == (3, 0, 0)
    assert api_line["assignable"] is True


def test_suspended_sku_not_assignable(emulator, client, synced_tenant, admin, us, make_portal_user):
    office = sku_of(synced_tenant, "ENTERPRISEPACK")
    us_holders = holders(synced_tenant, office, us.subtree_ids())
    set_allotment(acting_user=admin, pool=us, sku=office, seats=us_holders + 2)
    office = set_units(emulator, synced_tenant, office, capabilityStatus="Suspended")
    assert office.enabled_units > holders(synced_tenant, office)

    line = next(item for item in pool_lines(us) if item.sku.pk == office.pk)
    assert line.spare == 2
    assert line.is_blocked
    assert line.usable_spare == 0
    assert central_reserve(synced_tenant, office).seats == 0

    client.force_login(make_portal_user("manager", role="pool_manager", pool=us))
    pool_page = client.get(f"/pools/{us.pk}/").content.decode()
    assert f"Not assignable: the SKU is Suspended in the tenant. Renew the subscription first." in pool_page
    detail = api_for(admin).get(f"/api/v1/pools/{us.pk}/").json()
    api_line = next(item for item in detail["skus"] if item["partNumber"] == "ENTERPRISEPACK")
    assert (api_line["usableSpare"], api_line["assignable"]) == (0, False)


# Trials and lifecycle dates


def test_trial_labelled_and_lapsed_flagged(client, synced_tenant, admin):
    e3 = sku_of(synced_tenant, "SPE_E3")
    client.force_login(admin)

    page = client.get(f"/tenants/{synced_tenant.pk}/stock/").content.decode()
    section = page.split(f'id="sku-{e3.pk}"')[1].split("</section>")[0]
    assert "Trial: 25 units; the trial ended on 02/26/2026, but the last sync still reported it as Enabled." in section
    assert 'data-part="lapsed">− 25</td>' in section
    assert section.count("Date passed:") == 1

    trial = Subscription.objects.get(tenant=synced_tenant, sku_id=e3.sku_id, is_trial=True)
    trial.next_lifecycle_at = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
    trial.save(update_fields=["next_lifecycle_at"])
    page = client.get(f"/tenants/{synced_tenant.pk}/stock/").content.decode()
    section = page.split(f'id="sku-{e3.pk}"')[1].split("</section>")[0]
    label = "Trial: 25 units, counted in Enabled and in the central reserve until the trial ends on 03/01/2027."
    assert label in section
    assert "Date passed:" not in section
    assert central_reserve(synced_tenant, e3).lapsed_trial_units == 0


# Demo data


def test_demo_allotment_within_reserve(emulator, synced_tenant, admin, us):
    from graphsync.management.commands.run_demo import Command

    office = sku_of(synced_tenant, "ENTERPRISEPACK")
    office = set_units(emulator, synced_tenant, office, prepaidUnits={"enabled": holders(synced_tenant, office) + 3})
    us_holders = holders(synced_tenant, office, us.subtree_ids())

    Command().allot_demo_seats(admin, us)

    assert Allotment.objects.get(pool=us, sku=office).seats == us_holders + 3
    assert central_reserve(synced_tenant, office).seats == 0
