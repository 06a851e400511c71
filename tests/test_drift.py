"""Drift: assignments made outside the portal, detected by sync, adopted or referred by an administrator."""
import pytest

from graphsync.choices import DriftResolution, LicenseOrigin
from graphsync.models import DirectoryUser, Sku, UserLicense
from graphsync.testing import control
from pools.choices import AlertKind, AuditAction, PoolAttribute
from pools.drift import DriftError, adopt_drift, pool_drift, refer_drift
from pools.models import Alert, Allotment, AuditEvent, Pool
from pools.services import assign_license, set_allotment, set_scheme
from pools.alerts import evaluate_tenant

from conftest import sync_now


@pytest.fixture
def emulator_snapshot():
    from graphsync.emulator.generator import generate_tenant

    return generate_tenant(users=200, seed=11)


@pytest.fixture
def admin(make_portal_user, synced_tenant):
    user = make_portal_user("admin", role="tenant_admin", tenant=synced_tenant)
    user.email = "admin@example.com"
    user.save()
    return user


@pytest.fixture
def pool(synced_tenant, admin):
    """One pool holding every user: the scheme splits on the UPN domain, which all users share."""
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.UPN_DOMAIN)
    return Pool.objects.filter(tenant=synced_tenant, parent=None, is_unassigned=False).order_by("-pk").first()


@pytest.fixture
def sku(synced_tenant):
    return Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")


@pytest.fixture
def manager(make_portal_user, pool):
    user = make_portal_user("manager", role="pool_manager", pool=pool)
    user.email = "manager@example.com"
    user.save()
    return user


def unlicensed_user(pool: Pool, offset: int = 0) -> DirectoryUser:
    users = pool.members_queryset().exclude(usage_location="").exclude(licenses__isnull=False)
    return users.order_by("user_principal_name")[offset]


def assign_out_of_band(emulator, tenant, user: DirectoryUser, sku: Sku) -> None:
    """Assign a license the way an administrator in the Microsoft 365 admin center would."""
    control(
        emulator, "POST", f"tenants/{tenant.tenant_id}/users/{user.user_id}/licenses",
        {"addLicenses": [{"skuId": str(sku.sku_id), "disabledPlans": []}], "removeLicenses": []},
    )


def consumption(pool: Pool, sku: Sku) -> int:
    return pool.members_queryset().filter(licenses__sku=sku).exclude(licenses__state="Error").distinct().count()


def test_first_sync_is_not_drift(synced_tenant, pool):
    assert pool_drift(pool) == []
    assert UserLicense.objects.filter(tenant=synced_tenant, first_seen_at__isnull=True).count() == 0


def test_out_of_band_detected(emulator, synced_tenant, pool, sku):
    user = unlicensed_user(pool)
    assign_out_of_band(emulator, synced_tenant, user, sku)

    sync_now(synced_tenant)

    row = UserLicense.objects.get(user=user, sku=sku)
    assert row.origin == LicenseOrigin.EXTERNAL
    assert row.assigned_by_group == ""
    assert row.first_seen_at is not None
    lines = pool_drift(pool)
    assert [line.sku for line in lines] == [sku]
    assert [item.license for item in lines[0].assignments] == [row]
    assert lines[0].external_seats == 1
    assert lines[0].consumption == consumption(pool, sku)


def test_first_seen_kept_across_syncs(emulator, synced_tenant, pool, sku):
    user = unlicensed_user(pool)
    assign_out_of_band(emulator, synced_tenant, user, sku)
    sync_now(synced_tenant)
    first_seen = UserLicense.objects.get(user=user, sku=sku).first_seen_at

    sync_now(synced_tenant)

    assert UserLicense.objects.get(user=user, sku=sku).first_seen_at == first_seen


def test_first_seen_kept_by_incremental_sync(emulator, synced_tenant, pool, sku):
    from graphsync.choices import SyncKind, SyncStatus
    from graphsync.models import SyncRun
    from graphsync.sync import run_sync

    user = unlicensed_user(pool)
    assign_out_of_band(emulator, synced_tenant, user, sku)
    run = run_sync(SyncRun.objects.create(tenant=synced_tenant, kind=SyncKind.INCREMENTAL))
    assert run.status == SyncStatus.SUCCEEDED, run.error_message
    assert run.kind == SyncKind.INCREMENTAL
    first_seen = UserLicense.objects.get(user=user, sku=sku).first_seen_at
    assert first_seen is not None

    run = run_sync(SyncRun.objects.create(tenant=synced_tenant, kind=SyncKind.INCREMENTAL))
    assert run.status == SyncStatus.SUCCEEDED, run.error_message

    assert UserLicense.objects.get(user=user, sku=sku).first_seen_at == first_seen
    assert [item.user for item in pool_drift(pool)[0].assignments] == [user]


def test_portal_assignment_is_not_drift(emulator, synced_tenant, admin, pool, sku, manager):
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=consumption(pool, sku) + 1)
    user = unlicensed_user(pool)

    assign_license(acting_user=manager, pool=pool, user=user, sku=sku)
    row = UserLicense.objects.get(user=user, sku=sku)
    assert row.origin == LicenseOrigin.PORTAL
    assert row.first_seen_at is not None
    sync_now(synced_tenant)

    row.refresh_from_db()
    assert row.origin == LicenseOrigin.PORTAL
    assert pool_drift(pool) == []


def test_adopt_raises_allotment(emulator, synced_tenant, admin, pool, sku):
    before = consumption(pool, sku)
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=before)
    user = unlicensed_user(pool)
    assign_out_of_band(emulator, synced_tenant, user, sku)
    sync_now(synced_tenant)
    assert pool_drift(pool)[0].spare == -1

    adopt_drift(acting_user=admin, pool=pool, sku=sku)

    assert Allotment.objects.get(pool=pool, sku=sku).seats == before + 1
    row = UserLicense.objects.get(user=user, sku=sku)
    assert row.drift_resolution == DriftResolution.ADOPTED
    assert row.drift_resolved_by == admin
    assert row.drift_resolved_at is not None
    assert pool_drift(pool) == []
    event = AuditEvent.objects.get(action=AuditAction.DRIFT_ADOPTED)
    assert event.actor == admin
    assert event.before == {"seats": before, "consumption": before + 1}
    assert event.after["seats"] == before + 1
    assert event.after["assignments"][0]["user"] == user.user_principal_name
    assert event.after["assignments"][0]["source"] == "direct"
    assert AuditEvent.objects.filter(action=AuditAction.ALLOTMENT_CHANGED, pool=pool, after={"seats": before + 1}).exists()


def test_adopt_beyond_enabled_units_rejected(emulator, synced_tenant, admin, pool, sku):
    before = consumption(pool, sku)
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=before)
    user = unlicensed_user(pool)
    assign_out_of_band(emulator, synced_tenant, user, sku)
    control(emulator, "POST", f"tenants/{synced_tenant.tenant_id}/skus/{sku.sku_id}", {"prepaidUnits": {"enabled": before}})
    sync_now(synced_tenant)

    with pytest.raises(DriftError) as caught:
        adopt_drift(acting_user=admin, pool=pool, sku=sku)

    assert caught.value.message == (
        f"Cannot adopt the assignments of Microsoft 365 E3 made outside the portal in {pool}, because its allotment "
        f"cannot rise from {before} to the {before + 1} seats in use. Cannot allot {before + 1} seats of Microsoft 365 "
        f"E3 to {pool}: the tenant has {before} enabled units and other pools hold 0, so at most {before} can go here. "
        "Buy more seats or lower another pool's allotment first."
    )
    assert Allotment.objects.get(pool=pool, sku=sku).seats == before
    assert UserLicense.objects.get(user=user, sku=sku).drift_resolution == ""
    assert not AuditEvent.objects.filter(action=AuditAction.DRIFT_ADOPTED).exists()


def test_adopt_without_drift_rejected(synced_tenant, admin, pool, sku):
    with pytest.raises(DriftError) as caught:
        adopt_drift(acting_user=admin, pool=pool, sku=sku)

    assert caught.value.message == (
        f"Pool {pool} has no unresolved assignment of Microsoft 365 E3 made outside the portal."
    )


def test_adopt_by_manager_not_found(emulator, synced_tenant, pool, sku, manager):
    from django.http import Http404

    with pytest.raises(Http404):
        adopt_drift(acting_user=manager, pool=pool, sku=sku)


def test_refer_mails_manager(emulator, synced_tenant, admin, pool, sku, manager, mailoutbox):
    user = unlicensed_user(pool)
    assign_out_of_band(emulator, synced_tenant, user, sku)
    sync_now(synced_tenant)

    line, addresses = refer_drift(acting_user=admin, pool=pool, sku=sku)

    assert addresses == ["manager@example.com"]
    referrals = [mail for mail in mailoutbox if mail.subject.endswith("made outside the portal")]
    assert len(referrals) == 1
    mail = referrals[0]
    assert mail.to == ["manager@example.com"]
    assert mail.subject == (
        f"[{synced_tenant.name}] 1 assignment of Microsoft 365 E3 in {pool} made outside the portal"
    )
    assert f"admin, a tenant administrator of {synced_tenant.name}, refers to you these assignments of Microsoft " \
        f"365 E3 in the pool {pool}." in mail.body
    assert f"- {user.user_principal_name}: direct, first seen" in mail.body
    assert f"/pools/{pool.pk}/#drift" in mail.body
    assert user.user_principal_name in mail.alternatives[0][0]
    row = UserLicense.objects.get(user=user, sku=sku)
    assert row.drift_resolution == DriftResolution.REFERRED
    event = AuditEvent.objects.get(action=AuditAction.DRIFT_REFERRED)
    assert event.after["recipients"] == ["manager@example.com"]
    assert event.after["managers"] == ["manager"]
    [listed] = pool_drift(pool)
    assert [item.user for item in listed.referred] == [user]
    assert listed.unreferred == []
    assert listed.referral.managers == ["manager"]
    assert listed.referral.referred_by == "admin"


def test_refer_without_manager_rejected(emulator, synced_tenant, admin, pool, sku, mailoutbox):
    user = unlicensed_user(pool)
    assign_out_of_band(emulator, synced_tenant, user, sku)
    sync_now(synced_tenant)

    with pytest.raises(DriftError) as caught:
        refer_drift(acting_user=admin, pool=pool, sku=sku)

    assert caught.value.message == (
        f"Pool {pool} has no manager with an e-mail address, so nobody would receive the referral. Appoint a pool "
        "manager with an e-mail address, or adopt the assignments instead."
    )
    assert mailoutbox == []
    assert UserLicense.objects.get(user=user, sku=sku).drift_resolution == ""


def test_drift_alert_resolved_by_adopt(emulator, synced_tenant, admin, pool, sku, manager, mailoutbox):
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=consumption(pool, sku))
    user = unlicensed_user(pool)
    assign_out_of_band(emulator, synced_tenant, user, sku)
    sync_now(synced_tenant)
    evaluate_tenant(synced_tenant)
    drift_alert = Alert.objects.get(kind=AlertKind.DRIFT, pool=pool, resolved_at__isnull=True)
    over = Alert.objects.get(kind=AlertKind.POOL_OVER_ALLOTMENT, pool=pool, resolved_at__isnull=True)
    assert drift_alert.message.startswith(f"1 assignment of Microsoft 365 E3 in pool {pool} was made outside the portal")
    assert over.details["spare"] == -1

    adopt_drift(acting_user=admin, pool=pool, sku=sku)

    drift_alert.refresh_from_db()
    over.refresh_from_db()
    assert drift_alert.resolved_at is not None
    assert over.resolved_at is not None


def test_pool_page_lists_drift(emulator, synced_tenant, admin, pool, sku, client):
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=consumption(pool, sku))
    user = unlicensed_user(pool)
    assign_out_of_band(emulator, synced_tenant, user, sku)
    sync_now(synced_tenant)
    client.force_login(admin)

    page = client.get(f"/pools/{pool.pk}/").content.decode()

    assert "Assignments made outside the portal" in page
    assert user.user_principal_name in page
    assert "outside the portal</td>" in page
    assert "Adopt: raise the allotment" in page

    response = client.post(f"/pools/{pool.pk}/drift/adopt/", {"sku": sku.pk}, follow=True)
    assert "Adopted 1 assignment of Microsoft 365 E3 made outside the portal." in response.content.decode()
    assert pool_drift(pool) == []


def test_referred_drift_stays_listed(emulator, synced_tenant, admin, pool, sku, manager, client, mailoutbox):
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=consumption(pool, sku))
    user = unlicensed_user(pool)
    assign_out_of_band(emulator, synced_tenant, user, sku)
    sync_now(synced_tenant)
    refer_drift(acting_user=admin, pool=pool, sku=sku)
    evaluate_tenant(synced_tenant)

    for viewer in (admin, manager):
        client.force_login(viewer)
        page = client.get(f"/pools/{pool.pk}/").content.decode()
        assert "No unresolved assignment made outside the portal." not in page
        assert user.user_principal_name in page
        assert 'id="drift-referral-' in page
        assert "Referred to manager on " in page
        assert "by admin, awaiting the manager." in page
        assert "revoke these licenses in this pool" in page
        assert "awaiting the manager</td>" in page
        assert "Refer to the pool managers" not in page
    assert Alert.objects.filter(kind=AlertKind.POOL_OVER_ALLOTMENT, pool=pool, resolved_at__isnull=True).exists()
    assert not Alert.objects.filter(kind=AlertKind.DRIFT, pool=pool, resolved_at__isnull=True).exists()

    with pytest.raises(DriftError) as caught:
        refer_drift(acting_user=admin, pool=pool, sku=sku)
    assert caught.value.message == (
        f"Every assignment of Microsoft 365 E3 made outside the portal in pool {pool} has been referred to the pool "
        "managers already. Wait for them to revoke the licenses, or adopt the assignments."
    )


def test_referred_drift_cleared_by_revoke(emulator, synced_tenant, admin, pool, sku, manager, mailoutbox):
    from pools.services import revoke_license

    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=consumption(pool, sku))
    user = unlicensed_user(pool)
    assign_out_of_band(emulator, synced_tenant, user, sku)
    sync_now(synced_tenant)
    refer_drift(acting_user=admin, pool=pool, sku=sku)

    revoke_license(acting_user=manager, pool=pool, user=user, sku=sku)

    assert pool_drift(pool) == []


def test_referred_drift_cleared_by_adopt(emulator, synced_tenant, admin, pool, sku, manager, mailoutbox):
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=consumption(pool, sku))
    user = unlicensed_user(pool)
    assign_out_of_band(emulator, synced_tenant, user, sku)
    sync_now(synced_tenant)
    refer_drift(acting_user=admin, pool=pool, sku=sku)

    adopt_drift(acting_user=admin, pool=pool, sku=sku)

    assert pool_drift(pool) == []
    assert UserLicense.objects.get(user=user, sku=sku).drift_resolution == DriftResolution.ADOPTED
    assert Allotment.objects.get(pool=pool, sku=sku).seats == consumption(pool, sku)
