"""Group-based licensing: inherited licenses in the pool, and group licensing errors shown and alerted."""
import pytest

from graphsync.models import DirectoryGroup, Sku, UserLicense
from graphsync.testing import control
from pools.alerts import evaluate_tenant
from pools.choices import AlertKind, PoolAttribute
from pools.drift import pool_drift
from pools.models import Alert, Pool
from pools.services import set_scheme

from conftest import sync_now

UNKNOWN_CODE = "FutureLicensingViolation"


@pytest.fixture
def emulator_snapshot():
    from graphsync.emulator.generator import generate_tenant

    snapshot = generate_tenant(users=200, seed=11)
    # One direct assignment carries an error code that Graph may add in future.
    for user in snapshot["users"]:
        states = user.get("licenseAssignmentStates") or []
        direct = [state for state in states if not state.get("assignedByGroup")]
        if direct:
            direct[0]["state"], direct[0]["error"] = "Error", UNKNOWN_CODE
            user["assignedLicenses"] = [item for item in user["assignedLicenses"] if item["skuId"] != direct[0]["skuId"]]
            snapshot["unknown_error_user"] = user["userPrincipalName"]
            break
    return snapshot


@pytest.fixture
def admin(make_portal_user, synced_tenant):
    user = make_portal_user("admin", role="tenant_admin", tenant=synced_tenant)
    user.email = "admin@example.com"
    user.save()
    return user


@pytest.fixture
def pool(synced_tenant, admin):
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.UPN_DOMAIN)
    return Pool.objects.filter(tenant=synced_tenant, parent=None, is_unassigned=False).order_by("-pk").first()


@pytest.fixture
def manager(make_portal_user, pool):
    user = make_portal_user("manager", role="pool_manager", pool=pool)
    user.email = "manager@example.com"
    user.save()
    return user


def visio_group(tenant) -> DirectoryGroup:
    return DirectoryGroup.objects.get(tenant=tenant, display_name="License - Visio Plan 2")


def test_count_violation_shown(synced_tenant, admin, pool, client):
    group = visio_group(synced_tenant)
    rows = UserLicense.objects.filter(tenant=synced_tenant, assigned_by_group=str(group.group_id), error="CountViolation")
    assert rows.count() == 2
    client.force_login(admin)

    page = client.get(f"/pools/{pool.pk}/").content.decode()

    assert "Licensing errors" in page
    for row in rows.select_related("user"):
        assert row.user.user_principal_name in page
    assert "group License - Visio Plan 2" in page
    assert "<code>CountViolation</code>" in page
    assert "The tenant has no free unit of this product, so the group could not give the user a seat." in page


def test_count_violation_alerted_to_manager(synced_tenant, pool, manager, mailoutbox):
    evaluate_tenant(synced_tenant)

    alert = Alert.objects.get(kind=AlertKind.GROUP_LICENSE_ERROR, details__error="CountViolation")
    assert alert.pool == pool
    assert alert.message == (
        f"2 members of pool {pool} do not get Visio Plan 2 from group License - Visio Plan 2: CountViolation. The "
        "tenant has no free unit of this product, so the group could not give the user a seat. Buy more units or "
        "free one; Microsoft 365 then retries, or reprocess the user's group licenses."
    )
    mails = [mail for mail in mailoutbox if mail.subject == f"[{synced_tenant.name}] Group licensing error: {pool}"]
    assert [mail.to for mail in mails if "CountViolation" in mail.body] == [["manager@example.com"]]
    alert.refresh_from_db()
    assert alert.emailed_at is not None


def test_member_added_through_control(emulator, synced_tenant, pool, manager):
    group = visio_group(synced_tenant)
    user = pool.members_queryset().exclude(usage_location="").exclude(licenses__isnull=False).order_by("pk").first()
    control(emulator, "POST", f"tenants/{synced_tenant.tenant_id}/groups/{group.group_id}/members", {"id": str(user.user_id)})

    sync_now(synced_tenant)
    evaluate_tenant(synced_tenant)

    row = UserLicense.objects.get(user=user, assigned_by_group=str(group.group_id))
    assert (row.state, row.error) == ("Error", "CountViolation")
    alert = Alert.objects.get(kind=AlertKind.GROUP_LICENSE_ERROR, details__error="CountViolation", resolved_at__isnull=True)
    assert alert.details["users"] == 3
    assert alert.message.startswith(f"3 members of pool {pool} do not get Visio Plan 2 from group")
    # A license in state Error occupies no seat, so it is not drift either.
    assert pool_drift(pool) == []


def test_inherited_license_drift_names_group(emulator, synced_tenant, pool):
    group = DirectoryGroup.objects.get(tenant=synced_tenant, display_name="License - Microsoft 365 E3")
    sku = Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")
    user = pool.members_queryset().exclude(usage_location="").exclude(licenses__isnull=False).order_by("pk").first()
    control(emulator, "POST", f"tenants/{synced_tenant.tenant_id}/groups/{group.group_id}/members", {"id": str(user.user_id)})

    sync_now(synced_tenant)

    line = pool_drift(pool)[0]
    assert line.sku == sku
    assert [(item.user, item.group_name) for item in line.assignments] == [(user, "License - Microsoft 365 E3")]
    assert pool.members_queryset().filter(pk=user.pk, licenses__sku=sku).exists()


def test_unknown_error_code_kept(synced_tenant, emulator_snapshot, admin, pool, client):
    upn = emulator_snapshot["unknown_error_user"]
    row = UserLicense.objects.get(user__user_principal_name=upn, error=UNKNOWN_CODE)
    assert row.state == "Error"
    client.force_login(admin)

    page = client.get(f"/pools/{pool.pk}/").content.decode()

    assert f"<code>{UNKNOWN_CODE}</code>" in page
    assert "unknown code" in page
    assert "The portal does not know this error code; it is shown exactly as Microsoft Graph reported it." in page
    evaluate_tenant(synced_tenant)
    alert = Alert.objects.get(kind=AlertKind.GROUP_LICENSE_ERROR, details__error=UNKNOWN_CODE)
    assert alert.message == (
        f"1 member of pool {pool} has a direct assignment of {row.sku.name} in error: {UNKNOWN_CODE}. The portal does "
        "not know this error code; it is shown exactly as Microsoft Graph reported it."
    )
