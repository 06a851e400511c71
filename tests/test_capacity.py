"""Tenant stock per SKU: subscriptions that add up, trial labels, grace-period and suspended units, overage,
and the assignment rejections that follow from them."""
from __future__ import annotations

import pytest

from conftest import sync_now
from graphsync.models import Sku, UserLicense
from pools.capacity import tenant_capacity
from pools.choices import PoolAttribute
from pools.exceptions import AssignmentRejected
from pools.models import Pool
from pools.services import assign_license, set_allotment, set_scheme
from tests.test_assignment import control, eligible_users

PASSWORD = "correct-horse-42"


@pytest.fixture
def emulator_snapshot():
    from graphsync.emulator.generator import generate_tenant

    return generate_tenant(users=200, seed=11)


@pytest.fixture
def admin(make_portal_user, synced_tenant):
    return make_portal_user("admin", role="tenant_admin", tenant=synced_tenant)


@pytest.fixture
def pool(synced_tenant, admin):
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.UPN_DOMAIN)
    return Pool.objects.filter(tenant=synced_tenant, parent=None, is_unassigned=False).order_by("-pk").first()


def line_of(tenant, part_number: str):
    return next(line for line in tenant_capacity(tenant) if line.sku.part_number == part_number)


def test_subscriptions_add_up(synced_tenant):
    e3 = line_of(synced_tenant, "SPE_E3")

    assert [(item.subscription.total_licenses, item.subscription.is_trial) for item in e3.subscriptions] == [
        (103, False), (25, True)
    ]
    assert e3.subscription_licenses == e3.total_units == 128
    assert e3.has_trial
    assert e3.free_units == 128 - e3.holders
    assert e3.overage == 0


def test_warning_units_not_enabled(synced_tenant):
    ems = line_of(synced_tenant, "EMS")
    power_bi = line_of(synced_tenant, "POWER_BI_PRO")

    assert (ems.sku.enabled_units, ems.sku.warning_units) == (23, 5)
    assert ems.subscription_licenses == 28
    assert (power_bi.sku.enabled_units, power_bi.sku.warning_units) == (0, 27)
    assert power_bi.in_grace == power_bi.holders == 22
    assert power_bi.overage == 0
    assert not power_bi.accepts_assignments


def test_lowered_units_show_overage(emulator, synced_tenant):
    e3 = Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")
    holders = line_of(synced_tenant, "SPE_E3").holders
    control(emulator, "POST", f"tenants/{synced_tenant.tenant_id}/skus/{e3.sku_id}",
            json={"prepaidUnits": {"enabled": holders - 3, "suspended": 10}})

    sync_now(synced_tenant)

    line = line_of(synced_tenant, "SPE_E3")
    assert line.sku.enabled_units == holders - 3
    assert line.sku.suspended_units == 10
    assert line.overage == 3
    assert line.in_grace == 0
    assert line.free_units == 0


def test_overage_blocks_assignment(emulator, synced_tenant, admin, pool):
    e3 = Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")
    holders = line_of(synced_tenant, "SPE_E3").holders
    set_allotment(acting_user=admin, pool=pool, sku=e3, seats=holders + 5)
    control(emulator, "POST", f"tenants/{synced_tenant.tenant_id}/skus/{e3.sku_id}",
            json={"prepaidUnits": {"enabled": holders - 2}})
    sync_now(synced_tenant)
    e3.refresh_from_db()
    user = eligible_users(pool, e3, 1)[0]

    with pytest.raises(AssignmentRejected) as caught:
        assign_license(acting_user=admin, pool=pool, user=user, sku=e3)

    assert caught.value.message == (
        f"The tenant has no free seat of Microsoft 365 E3: {holders - 2} enabled units, {holders} in use. Buy more "
        "seats in the Microsoft 365 admin center, then run a sync."
    )
    assert not UserLicense.objects.filter(user=user, sku=e3).exists()


def test_suspended_sku_rejected(synced_tenant, admin, pool):
    project = Sku.objects.get(tenant=synced_tenant, part_number="PROJECTPROFESSIONAL")
    user = eligible_users(pool, project, 1)[0]

    with pytest.raises(AssignmentRejected) as caught:
        assign_license(acting_user=admin, pool=pool, user=user, sku=project)

    assert caught.value.message == (
        f"{project.name} is Suspended in the tenant; no new seats can be assigned. Renew the subscription first."
    )


def test_locked_out_sku_rejected(emulator, synced_tenant, admin, pool):
    e3 = Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")
    set_allotment(acting_user=admin, pool=pool, sku=e3, seats=e3.enabled_units)
    control(emulator, "POST", f"tenants/{synced_tenant.tenant_id}/skus/{e3.sku_id}",
            json={"prepaidUnits": {"enabled": 0, "lockedOut": 128}, "capabilityStatus": "LockedOut"})
    sync_now(synced_tenant)
    e3.refresh_from_db()
    user = eligible_users(pool, e3, 1)[0]

    with pytest.raises(AssignmentRejected) as caught:
        assign_license(acting_user=admin, pool=pool, user=user, sku=e3)

    assert caught.value.message == (
        "Microsoft 365 E3 is Locked out in the tenant; no new seats can be assigned. Renew the subscription first."
    )
    assert line_of(synced_tenant, "SPE_E3").is_blocked


def test_stock_page(client, synced_tenant, admin):
    assert client.login(username="admin", password=PASSWORD)

    response = client.get(f"/tenants/{synced_tenant.pk}/stock/")

    assert response.status_code == 200
    page = response.content.decode()
    assert page.count('<span class="badge">Trial</span>') == 1
    assert "5 units are in their grace period and will lapse unless the subscription is renewed." in page
    assert (
        "22 users hold it beyond the 0 enabled units, on units in their grace period: their licenses work until "
        "those units lapse." in page
    )
    assert "over the stock" not in page
    assert "Status: Suspended" in page
    e3 = next(line for line in response.context["lines"] if line.sku.part_number == "SPE_E3")
    assert len(e3.subscriptions) == 2


def test_stock_page_scope(client, synced_tenant, pool, make_portal_user):
    make_portal_user("auditor", role="auditor", tenant=synced_tenant)
    make_portal_user("manager", role="pool_manager", pool=pool)
    make_portal_user("finance", role="finance", tenant=synced_tenant)

    # Tenant-wide finance may open the stock page beside the purchase ledger. A pool manager may not,
    # because the page shows tenant-wide figures.
    for username in ("auditor", "finance"):
        assert client.login(username=username, password=PASSWORD)
        assert client.get(f"/tenants/{synced_tenant.pk}/stock/").status_code == 200
    assert client.login(username="manager", password=PASSWORD)
    assert client.get(f"/tenants/{synced_tenant.pk}/stock/").status_code == 404
