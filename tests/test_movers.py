"""Movers: a sync that changes a user's attribute moves the user and their licenses to another pool."""
import datetime as dt

import pytest
import requests
from django.urls import reverse
from django.utils import timezone

from chargeback.models import LicenseInterval
from chargeback.reports import build_report
from graphsync.models import DirectoryUser, UserLicense
from pools import stock
from pools.choices import AuditAction, PoolAttribute
from pools.models import AuditEvent, Pool
from pools.services import set_allotment, set_scheme
from rbac import scoping
from rbac.choices import Action

from conftest import sync_now

CONTROL_HEADERS = {"X-Emulator-Control": "test-control-token"}


@pytest.fixture
def emulator_snapshot():
    from graphsync.emulator.generator import generate_tenant

    return generate_tenant(users=200, seed=11)


@pytest.fixture
def admin(make_portal_user, synced_tenant):
    return make_portal_user("admin", role="tenant_admin", tenant=synced_tenant)


@pytest.fixture
def department_scheme(synced_tenant, admin):
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.DEPARTMENT)
    return synced_tenant


def control(emulator, method: str, path: str, **kwargs) -> requests.Response:
    response = requests.request(
        method, f"{emulator.base_url}/_emulator/{path}", headers=CONTROL_HEADERS, verify=emulator.ca_path,
        timeout=10, **kwargs
    )
    assert response.status_code < 300, response.text
    return response


def pool_by_key(tenant, key: str) -> Pool:
    return Pool.objects.get(tenant=tenant, parent=None, attribute=PoolAttribute.DEPARTMENT, key=key)


def licensed_member(pool: Pool) -> tuple[DirectoryUser, UserLicense]:
    """A member of the pool with an active direct license."""
    user_license = (
        UserLicense.objects.filter(user__pool=pool, user__is_deleted=False, assigned_by_group="", state="Active")
        .select_related("user", "sku")
        .order_by("user__user_principal_name", "sku__part_number")
        .first()
    )
    assert user_license is not None, f"no member of {pool} holds a direct license"
    return user_license.user, user_license


def report_days(tenant, admin, now) -> dict[tuple[int, int], int]:
    report = build_report(
        tenant=tenant, year=now.year, month=now.month, pools=scoping.pools_for(admin, Action.CHARGEBACK), now=now
    )
    return {(row.pool_id, row.sku_id): row.license_days for row in report.rows}


def test_mover_takes_licenses_along(emulator, department_scheme, admin):
    tenant = department_scheme
    marketing, finance = pool_by_key(tenant, "marketing"), pool_by_key(tenant, "finance")
    user, user_license = licensed_member(marketing)
    sku = user_license.sku
    # Pretend the user has held the license since the start of the month, so the move splits the month.
    now = timezone.now()
    month_start = dt.datetime(now.year, now.month, 1, tzinfo=dt.timezone.utc)
    LicenseInterval.objects.filter(user=user, sku=sku, ended_at__isnull=False).delete()
    LicenseInterval.objects.filter(user=user, sku=sku, ended_at__isnull=True).update(started_at=month_start)
    days_before = report_days(tenant, admin, now)
    held_before = set(user.licenses.values_list("sku_id", flat=True))

    control(emulator, "PATCH", f"tenants/{tenant.tenant_id}/users/{user.user_id}", json={"department": "Finance"})
    sync_now(tenant)

    user.refresh_from_db()
    assert user.pool_id == finance.pk
    assert set(user.licenses.values_list("sku_id", flat=True)) == held_before
    intervals = list(LicenseInterval.objects.filter(user=user, sku=sku).order_by("started_at"))
    assert [interval.pool_id for interval in intervals] == [marketing.pk, finance.pk]
    assert intervals[0].ended_at == intervals[1].started_at
    assert intervals[1].ended_at is None

    days_after = report_days(tenant, admin, now)
    # The day of the move is charged to the new pool, the days before it to the old one.
    assert days_after.get((finance.pk, sku.pk), 0) - days_before.get((finance.pk, sku.pk), 0) == 1
    assert days_before[(marketing.pk, sku.pk)] - days_after.get((marketing.pk, sku.pk), 0) == 1


def test_mover_over_allotment_flagged(client, emulator, department_scheme, admin):
    tenant = department_scheme
    marketing, finance = pool_by_key(tenant, "marketing"), pool_by_key(tenant, "finance")
    user, user_license = licensed_member(marketing)
    sku = user_license.sku
    used = stock.holders(tenant, sku, finance.subtree_ids())
    set_allotment(acting_user=admin, pool=finance, sku=sku, seats=used)

    control(emulator, "PATCH", f"tenants/{tenant.tenant_id}/users/{user.user_id}", json={"department": "finance"})
    sync_now(tenant)

    line = next(line for line in stock.pool_lines(finance) if line.sku == sku)
    assert (line.allotment, line.consumption, line.spare) == (used, used + 1, -1)
    assert line.over_allotment
    graph_user = control(emulator, "GET", f"tenants/{tenant.tenant_id}/users/{user.user_id}").json()
    assert str(sku.sku_id) in {item["skuId"].lower() for item in graph_user["assignedLicenses"]}
    assert UserLicense.objects.filter(user=user, sku=sku, state="Active").exists()
    assert not AuditEvent.objects.filter(action=AuditAction.LICENSE_REVOKED).exists()

    client.force_login(admin)
    content = client.get(reverse("pools:pool", kwargs={"pool_pk": finance.pk})).content.decode()
    assert 'class="over-allotment"' in content
    assert "over allotment" in content


def test_mover_back_to_unassigned(emulator, department_scheme):
    tenant = department_scheme
    marketing = pool_by_key(tenant, "marketing")
    user, user_license = licensed_member(marketing)

    control(emulator, "PATCH", f"tenants/{tenant.tenant_id}/users/{user.user_id}", json={"department": None})
    sync_now(tenant)

    user.refresh_from_db()
    assert user.pool.is_unassigned
    open_interval = LicenseInterval.objects.get(user=user, sku=user_license.sku, ended_at__isnull=True)
    assert open_interval.pool_id == user.pool_id
