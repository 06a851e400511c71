"""Sign-in times in the directory mirror: full and incremental sync, Entra ID P1/P2 detection."""
from __future__ import annotations

import datetime as dt

import pytest

from conftest import sync_now
from graphsync.choices import SyncKind, SyncStatus
from graphsync.models import DirectoryUser, SyncRun
from graphsync.sync import run_sync
from graphsync.testing import (
    GraphTraffic, clear_throttle_state, control, emulator_snapshot as read_snapshot, expected_mirror, mirror_state,
)

UTC = dt.timezone.utc
INTERACTIVE = "2025-03-01T08:15:00Z"
NON_INTERACTIVE = "2025-04-02T09:30:00Z"
SUCCESSFUL = "2025-04-01T10:45:00Z"


@pytest.fixture
def premium() -> bool:
    return True


@pytest.fixture
def emulator_snapshot(premium):
    """A generated tenant of 600 users, so that the user listing takes two pages of 500."""
    from graphsync.emulator.generator import generate_tenant

    snapshot = generate_tenant(users=600, seed=5)
    snapshot["premium"] = premium
    snapshot["users"][0]["signInActivity"] = {
        "lastSignInDateTime": INTERACTIVE,
        "lastNonInteractiveSignInDateTime": NON_INTERACTIVE,
        "lastSuccessfulSignInDateTime": SUCCESSFUL,
    }
    # Sign-ins before December 2023 have no lastSuccessfulSignInDateTime.
    snapshot["users"][1]["signInActivity"] = {
        "lastSignInDateTime": "2023-06-01T12:00:00Z",
        "lastNonInteractiveSignInDateTime": None,
    }
    return snapshot


@pytest.fixture(autouse=True)
def clean_throttle_state(emulator_snapshot):
    clear_throttle_state(emulator_snapshot["tenantId"])
    yield
    clear_throttle_state(emulator_snapshot["tenantId"])


def mirrored(tenant, user_data: dict) -> DirectoryUser:
    return DirectoryUser.objects.get(tenant=tenant, user_id=user_data["id"])


def assert_directory_complete(tenant, emulator) -> None:
    expected = expected_mirror(read_snapshot(emulator, str(tenant.tenant_id)))
    mirror = mirror_state(tenant)
    assert set(mirror["users"]) == set(expected["users"])
    assert mirror["users"] == expected["users"]
    assert mirror["licenses"] == expected["licenses"]


def test_full_sync_mirrors_sign_ins(tenant, emulator, emulator_snapshot, require_postgresql):
    traffic = GraphTraffic(emulator)
    try:
        run = sync_now(tenant)
    finally:
        traffic.close()

    assert tenant.sign_in_activity_available is True
    first = mirrored(tenant, emulator_snapshot["users"][0])
    assert first.last_interactive_sign_in_at == dt.datetime(2025, 3, 1, 8, 15, tzinfo=UTC)
    assert first.last_non_interactive_sign_in_at == dt.datetime(2025, 4, 2, 9, 30, tzinfo=UTC)
    assert first.last_successful_sign_in_at == dt.datetime(2025, 4, 1, 10, 45, tzinfo=UTC)
    second = mirrored(tenant, emulator_snapshot["users"][1])
    assert second.last_interactive_sign_in_at == dt.datetime(2023, 6, 1, 12, tzinfo=UTC)
    assert second.last_non_interactive_sign_in_at is None
    assert second.last_successful_sign_in_at is None
    third = mirrored(tenant, emulator_snapshot["users"][2])
    assert third.last_interactive_sign_in_at is None
    assert run.users_count == len(emulator_snapshot["users"])
    # 600 users at 500 per page: two pages, and no request was refused.
    assert traffic.paths["users"] == 2
    assert 403 not in traffic.statuses
    assert_directory_complete(tenant, emulator)


@pytest.mark.parametrize("premium", [False])
def test_non_premium_syncs_without_sign_ins(tenant, emulator, emulator_snapshot, require_postgresql):
    traffic = GraphTraffic(emulator)
    try:
        run = sync_now(tenant)
    finally:
        traffic.close()

    assert tenant.sign_in_activity_available is False
    assert run.users_count == len(emulator_snapshot["users"])
    # The listing with signInActivity is refused; the listing without it takes one page of 999.
    assert traffic.statuses[403] == 1
    assert traffic.paths["users"] == 2
    assert not DirectoryUser.objects.filter(tenant=tenant, last_interactive_sign_in_at__isnull=False).exists()
    assert_directory_complete(tenant, emulator)


def test_tenant_losing_premium(tenant, emulator, emulated_tenant_state, emulator_snapshot, require_postgresql):
    sync_now(tenant)
    assert mirrored(tenant, emulator_snapshot["users"][0]).last_interactive_sign_in_at is not None

    emulated_tenant_state.premium = False
    sync_now(tenant)

    assert tenant.sign_in_activity_available is False
    assert mirrored(tenant, emulator_snapshot["users"][0]).last_interactive_sign_in_at is None
    assert_directory_complete(tenant, emulator)


def test_incremental_sync_updates_sign_ins(tenant, emulator, emulator_snapshot, require_postgresql, settings):
    # Sign-in times have no delta entry; they come with the listing of every user.
    settings.GRAPH_LICENSE_LISTING_INTERVAL_MINUTES = 0
    sync_now(tenant)
    user = emulator_snapshot["users"][2]
    control(emulator, "PATCH", f"tenants/{tenant.tenant_id}/users/{user['id']}", {
        "signInActivity": {
            "lastSignInDateTime": "2025-05-05T05:05:05Z",
            "lastNonInteractiveSignInDateTime": "2025-05-06T06:06:06Z",
            "lastSuccessfulSignInDateTime": "2025-05-06T06:06:06Z",
        },
    })
    control(emulator, "PATCH", f"tenants/{tenant.tenant_id}/users/{emulator_snapshot['users'][0]['id']}", {
        "signInActivity": None,
    })

    run = run_sync(SyncRun.objects.create(tenant=tenant, kind=SyncKind.INCREMENTAL))

    assert run.status == SyncStatus.SUCCEEDED, run.error_message
    assert run.kind == SyncKind.INCREMENTAL
    changed = mirrored(tenant, user)
    assert changed.last_interactive_sign_in_at == dt.datetime(2025, 5, 5, 5, 5, 5, tzinfo=UTC)
    assert changed.last_non_interactive_sign_in_at == dt.datetime(2025, 5, 6, 6, 6, 6, tzinfo=UTC)
    assert changed.last_successful_sign_in_at == dt.datetime(2025, 5, 6, 6, 6, 6, tzinfo=UTC)
    cleared = mirrored(tenant, emulator_snapshot["users"][0])
    assert cleared.last_interactive_sign_in_at is None
    assert cleared.last_successful_sign_in_at is None
    tenant.refresh_from_db()
    assert tenant.sign_in_activity_available is True


@pytest.mark.parametrize("premium", [False])
def test_incremental_sync_non_premium(tenant, emulator, emulator_snapshot, require_postgresql):
    sync_now(tenant)
    user = emulator_snapshot["users"][3]
    control(emulator, "PATCH", f"tenants/{tenant.tenant_id}/users/{user['id']}", {"department": "Procurement"})

    run = run_sync(SyncRun.objects.create(tenant=tenant, kind=SyncKind.INCREMENTAL))

    assert run.status == SyncStatus.SUCCEEDED, run.error_message
    assert run.kind == SyncKind.INCREMENTAL
    assert mirrored(tenant, user).department == "Procurement"
    tenant.refresh_from_db()
    assert tenant.sign_in_activity_available is False
    assert_directory_complete(tenant, emulator)
