"""Full sync from the Graph emulator into the mirror, pools and license history."""
import time

import pytest
from django.db import connection

from chargeback.models import LicenseInterval
from graphsync.models import DirectoryGroup, DirectoryUser, Sku, Subscription, SyncRun, UserLicense
from graphsync.sync import run_full_sync
from pools.choices import PoolAttribute
from pools.models import Pool
from pools.normalization import normalize_value
from pools.services import set_scheme

from conftest import sync_now


def test_full_sync_mirrors_tenant(tenant, emulator_snapshot):
    run = sync_now(tenant)

    assert run.users_count == len(emulator_snapshot["users"])
    assert DirectoryUser.objects.filter(tenant=tenant, is_deleted=False).count() == len(emulator_snapshot["users"])
    assert DirectoryGroup.objects.filter(tenant=tenant).count() == len(emulator_snapshot["groups"])
    assert Sku.objects.filter(tenant=tenant).count() == len(emulator_snapshot["subscribedSkus"])
    assert Subscription.objects.filter(tenant=tenant).count() == len(emulator_snapshot["subscriptions"])
    assert tenant.last_synced_at is not None


def test_full_sync_mirrors_license_states(tenant, emulated_tenant_state):
    sync_now(tenant)

    snapshot = emulated_tenant_state.to_snapshot()
    expected = set()
    for user in snapshot["users"]:
        for state in user.get("licenseAssignmentStates") or []:
            expected.add((user["id"], state["skuId"].lower(), (state.get("assignedByGroup") or "").lower()))
    mirrored = {
        (str(user_id), str(sku_id), group)
        for user_id, sku_id, group in UserLicense.objects.filter(tenant=tenant).values_list(
            "user__user_id", "sku__sku_id", "assigned_by_group"
        )
    }
    assert mirrored == expected
    assert any(group for _user, _sku, group in expected), "the generated tenant should license through a group"


def test_sku_counts_match_subscribed_skus(tenant, emulator_snapshot):
    sync_now(tenant)

    for data in emulator_snapshot["subscribedSkus"]:
        sku = Sku.objects.get(tenant=tenant, sku_id=data["skuId"])
        assert sku.enabled_units == data["prepaidUnits"]["enabled"]
        assert sku.warning_units == data["prepaidUnits"]["warning"]
        assert sku.suspended_units == data["prepaidUnits"]["suspended"]
        assert sku.part_number == data["skuPartNumber"].strip()


def test_sku_names_come_from_licensing_table(tenant):
    sync_now(tenant)

    e3 = Sku.objects.filter(tenant=tenant, part_number="SPE_E3").first()
    assert e3 is not None
    assert e3.name == "Microsoft 365 E3"


def test_client_secret_stored_encrypted(tenant, emulator_snapshot):
    secret = emulator_snapshot["clients"][0]["clientSecret"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT client_secret_encrypted FROM graphsync_tenant WHERE id = %s", [tenant.pk])
        stored = cursor.fetchone()[0]

    assert secret not in stored
    assert tenant.get_client_secret() == secret


def test_wrong_secret_fails_and_keeps_mirror(tenant):
    sync_now(tenant)
    users_before = DirectoryUser.objects.filter(tenant=tenant).count()
    tenant.set_client_secret("wrong-secret")
    tenant.save()

    run = run_full_sync(SyncRun.objects.create(tenant=tenant))

    assert run.status == "failed"
    assert "invalid_client" in run.error_message
    assert DirectoryUser.objects.filter(tenant=tenant, is_deleted=False).count() == users_before


def test_sync_derives_pools_from_scheme(tenant, make_portal_user, emulator_snapshot):
    sync_now(tenant)
    admin = make_portal_user("admin", role="tenant_admin", tenant=tenant)

    set_scheme(acting_user=admin, tenant=tenant, level1_attribute=PoolAttribute.DEPARTMENT)

    departments = {normalize_value(user.get("department")) for user in emulator_snapshot["users"]} - {""}
    level1 = Pool.objects.filter(tenant=tenant, parent=None, is_unassigned=False, is_active=True)
    assert {pool.key for pool in level1} == departments
    unassigned = Pool.objects.get(tenant=tenant, is_unassigned=True)
    blank = [u for u in emulator_snapshot["users"] if not normalize_value(u.get("department"))]
    assert unassigned.members.count() == len(blank)
    assert DirectoryUser.objects.filter(tenant=tenant, pool__isnull=True).count() == 0


def test_case_variants_share_one_pool(tenant, make_portal_user, emulator_snapshot):
    spellings = {}
    for user in emulator_snapshot["users"]:
        value = user.get("department")
        if value:
            spellings.setdefault(normalize_value(value), set()).add(value)
    variants = {key: values for key, values in spellings.items() if len(values) > 1}
    assert variants, "the generated tenant should spell some department in several ways"
    sync_now(tenant)
    admin = make_portal_user("admin", role="tenant_admin", tenant=tenant)

    set_scheme(acting_user=admin, tenant=tenant, level1_attribute=PoolAttribute.DEPARTMENT)

    for key in variants:
        assert Pool.objects.filter(tenant=tenant, parent=None, key=key).count() == 1


def test_sync_opens_license_intervals(tenant):
    sync_now(tenant)

    holders = (
        UserLicense.objects.filter(tenant=tenant, user__is_deleted=False)
        .exclude(state__in=["Error", "Pending"])
        .values_list("user_id", "sku_id")
        .distinct()
        .count()
    )
    assert LicenseInterval.objects.filter(tenant=tenant, ended_at__isnull=True).count() == holders


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_sync_runs_in_celery_worker(celery_worker, tenant, emulator_snapshot):
    from graphsync.services import request_sync

    run = request_sync(tenant, acting_user=None)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in ("succeeded", "failed"):
            break
        time.sleep(0.2)
    assert run.status == "succeeded", run.error_message
    assert run.users_count == len(emulator_snapshot["users"])
    assert DirectoryUser.objects.filter(tenant=tenant).count() == len(emulator_snapshot["users"])
