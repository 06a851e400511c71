"""Assignments and revocations whose response is lost after Graph may have applied them.

The emulator drops the connection of the assignLicense request before or after applying it, and a
latency longer than the read-back timeout makes reading the user's licenses back fail too. Every case
keeps the pool within its allotment.
"""
import pytest

from conftest import sync_now
from graphsync.choices import LicenseOrigin, LicenseState
from graphsync.client import GraphClient
from graphsync.errors import GraphConnectionError
from graphsync.models import Sku, UserLicense
from graphsync.testing import clear_throttle_state, control, set_faults
from chargeback.models import LicenseInterval
from pools import graph_messages, stock
from pools.choices import AuditAction, Outcome
from pools.drift import unresolved_drift
from pools.exceptions import AssignmentRejected, GraphRejected, OutcomeUnknown
from pools.models import AuditEvent
from pools.services import assign_license, revoke_license, set_allotment

# The same tenant administrator, pool split by UPN domain and pool manager as the assignment tests.
from tests.test_assignment import admin, manager, pool  # noqa: F401

# The emulator's latency outlasts the read-back timeout, so only the read-back times out.
READBACK_TIMEOUT_SECONDS = 0.4
SLOW_GRAPH_MS = 1200


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch, settings, emulator_snapshot):
    monkeypatch.setattr(GraphClient, "_backoff", staticmethod(lambda attempt: 0.0))
    settings.GRAPH_READBACK_TIMEOUT_SECONDS = READBACK_TIMEOUT_SECONDS
    clear_throttle_state(emulator_snapshot["tenantId"])
    yield
    clear_throttle_state(emulator_snapshot["tenantId"])


@pytest.fixture
def sku(synced_tenant, admin, pool):
    """SPE_E3 with exactly one spare seat in the pool."""
    sku = Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")
    used = stock.holders(synced_tenant, sku, pool.subtree_ids())
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=used + 1)
    return sku


@pytest.fixture
def users(pool):
    """Two members without licenses who have a usage location."""
    return list(
        pool.members_queryset().exclude(usage_location="").exclude(pk__in=UserLicense.objects.values("user_id"))
        .order_by("user_principal_name")[:2]
    )


def assign_license_posts(emulator) -> int:
    """Count the assignLicense requests the emulator applied."""
    return sum(1 for entry in control(emulator, "GET", "requests")["value"] if entry["path"].endswith("/assignLicense"))


def graph_holds(tenant, user, sku) -> bool:
    states = GraphClient(tenant).read_user_licenses(str(user.user_id), timeout=10)
    return any(str(state["skuId"]).lower() == str(sku.sku_id).lower() for state in states)


def assert_within_allotment(pool, sku) -> None:
    allotment = pool.allotments.get(sku=sku).seats
    assert stock.holders(pool.tenant, sku, pool.subtree_ids()) <= allotment


def host_of(emulator) -> str:
    return emulator.base_url.split("://", 1)[1]


def last_event(user, sku) -> AuditEvent:
    return AuditEvent.objects.filter(target_user=user, sku=sku).order_by("-pk").first()


# The client


def test_client_sends_assign_license_once(emulator, synced_tenant, users, sku):
    set_faults(emulator, dropAfterWriteRate=1.0)

    with pytest.raises(GraphConnectionError) as caught:
        GraphClient(synced_tenant).assign_license(
            str(users[0].user_id), add=[{"skuId": str(sku.sku_id), "disabledPlans": []}], remove=[]
        )

    assert caught.value.request_sent is True
    assert assign_license_posts(emulator) == 1, "a POST that may have been applied must not be sent again"


def test_client_retries_read_after_drop(emulator, synced_tenant):
    set_faults(emulator, dropRate=0.5, seed=3)

    body = GraphClient(synced_tenant).get("subscribedSkus")

    assert body["value"]


# Assignment


def test_assign_applied_then_dropped_confirmed(emulator, synced_tenant, pool, manager, users, sku):
    user = users[0]
    set_faults(emulator, dropAfterWriteRate=1.0)

    license = assign_license(acting_user=manager, pool=pool, user=user, sku=sku)

    license.refresh_from_db()
    assert license.state == LicenseState.ACTIVE
    assert license.origin == LicenseOrigin.PORTAL
    assert license.first_seen_at is not None
    assert LicenseInterval.objects.filter(user=user, sku=sku, ended_at__isnull=True).exists()
    event = last_event(user, sku)
    assert event.action == AuditAction.LICENSE_ASSIGNED
    assert event.outcome == Outcome.SUCCEEDED
    assert event.message == graph_messages.describe_assignment_confirmed()
    assert assign_license_posts(emulator) == 1
    assert_within_allotment(pool, sku)


def test_assign_dropped_before_apply_released(emulator, synced_tenant, pool, manager, users, sku):
    user = users[0]
    consumed = Sku.objects.get(pk=sku.pk).consumed_units
    set_faults(emulator, dropWriteRate=1.0)

    with pytest.raises(GraphRejected) as caught:
        assign_license(acting_user=manager, pool=pool, user=user, sku=sku)

    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.message == (
        f"The connection to Microsoft Graph at {host_of(emulator)} failed after the request was sent: the "
        f"connection was closed before a response arrived. Reading {user.user_principal_name}'s licenses back "
        f"showed that {sku.name} was not assigned, so nothing was changed and the seat was released. Try again."
    )
    assert not UserLicense.objects.filter(user=user, sku=sku).exists()
    assert Sku.objects.get(pk=sku.pk).consumed_units == consumed
    event = last_event(user, sku)
    assert event.outcome == Outcome.FAILED
    assert event.message == caught.value.message
    assert assign_license_posts(emulator) == 0


def test_assign_unknown_keeps_seat(emulator, synced_tenant, pool, manager, users, sku):
    user, other = users
    set_faults(emulator, dropAfterWriteRate=1.0, latencyMs=SLOW_GRAPH_MS)

    with pytest.raises(OutcomeUnknown) as caught:
        assign_license(acting_user=manager, pool=pool, user=user, sku=sku)

    assert "Reading " + user.user_principal_name + "'s licenses back failed too" in caught.value.message
    assert "the next sync settles it" in caught.value.message
    row = UserLicense.objects.get(user=user, sku=sku)
    assert row.state == LicenseState.ASSIGNMENT_UNCONFIRMED
    assert last_event(user, sku).outcome == Outcome.FAILED
    assert_within_allotment(pool, sku)

    # The unconfirmed seat still counts, so the pool's last seat cannot go to someone else.
    set_faults(emulator, dropAfterWriteRate=0.0, latencyMs=0)
    with pytest.raises(AssignmentRejected):
        assign_license(acting_user=manager, pool=pool, user=other, sku=sku)
    # Nor can the same user be assigned again before a sync settles the first attempt.
    with pytest.raises(AssignmentRejected) as again:
        assign_license(acting_user=manager, pool=pool, user=user, sku=sku)
    assert "The next sync settles it" in again.value.message
    assert_within_allotment(pool, sku)


def test_sync_confirms_unconfirmed_assignment(emulator, synced_tenant, pool, manager, users, sku):
    user = users[0]
    set_faults(emulator, dropAfterWriteRate=1.0, latencyMs=SLOW_GRAPH_MS)
    with pytest.raises(OutcomeUnknown):
        assign_license(acting_user=manager, pool=pool, user=user, sku=sku)
    set_faults(emulator, dropAfterWriteRate=0.0, latencyMs=0)

    sync_now(synced_tenant)

    row = UserLicense.objects.get(user=user, sku=sku)
    assert row.state == LicenseState.ACTIVE
    assert row.origin == LicenseOrigin.PORTAL
    assert not unresolved_drift(synced_tenant).filter(pk=row.pk).exists()
    assert LicenseInterval.objects.filter(user=user, sku=sku, ended_at__isnull=True).exists()
    event = last_event(user, sku)
    assert event.outcome == Outcome.SUCCEEDED
    assert event.actor_name == "system"
    assert event.message == graph_messages.describe_sync_settlement(removal=False, held=True)
    assert_within_allotment(pool, sku)


def test_sync_releases_unconfirmed_assignment(emulator, synced_tenant, pool, manager, users, sku):
    user, other = users
    set_faults(emulator, dropWriteRate=1.0, latencyMs=SLOW_GRAPH_MS)
    with pytest.raises(OutcomeUnknown):
        assign_license(acting_user=manager, pool=pool, user=user, sku=sku)
    set_faults(emulator, dropWriteRate=0.0, latencyMs=0)

    sync_now(synced_tenant)

    assert not UserLicense.objects.filter(user=user, sku=sku).exists()
    event = last_event(user, sku)
    assert event.outcome == Outcome.FAILED
    assert event.message == graph_messages.describe_sync_settlement(removal=False, held=False)
    # The released seat is free for another member again.
    assign_license(acting_user=manager, pool=pool, user=other, sku=sku)
    assert_within_allotment(pool, sku)


# Revocation


@pytest.fixture
def assigned(emulator, synced_tenant, pool, manager, users, sku):
    user = users[0]
    assign_license(acting_user=manager, pool=pool, user=user, sku=sku)
    return user


def test_revoke_applied_then_dropped_confirmed(emulator, synced_tenant, pool, manager, assigned, sku):
    set_faults(emulator, dropAfterWriteRate=1.0)

    event = revoke_license(acting_user=manager, pool=pool, user=assigned, sku=sku)

    assert event.outcome == Outcome.SUCCEEDED
    assert event.action == AuditAction.LICENSE_REVOKED
    assert event.message == graph_messages.describe_removal_confirmed()
    assert not UserLicense.objects.filter(user=assigned, sku=sku).exists()
    assert not LicenseInterval.objects.filter(user=assigned, sku=sku, ended_at__isnull=True).exists()
    set_faults(emulator, dropAfterWriteRate=0.0)
    assert not graph_holds(synced_tenant, assigned, sku)


def test_revoke_dropped_before_apply_not_made(emulator, synced_tenant, pool, manager, assigned, sku):
    set_faults(emulator, dropWriteRate=1.0)

    with pytest.raises(GraphRejected) as caught:
        revoke_license(acting_user=manager, pool=pool, user=assigned, sku=sku)

    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.message.endswith(
        f"Reading {assigned.user_principal_name}'s licenses back showed that {assigned.user_principal_name} still "
        f"holds {sku.name}, so nothing was changed. Try again."
    )
    assert UserLicense.objects.get(user=assigned, sku=sku).state == LicenseState.ACTIVE
    assert last_event(assigned, sku).outcome == Outcome.FAILED


@pytest.mark.parametrize("fault, removed", [("dropAfterWriteRate", True), ("dropWriteRate", False)])
def test_sync_settles_unconfirmed_removal(emulator, synced_tenant, pool, manager, assigned, sku, fault, removed):
    set_faults(emulator, **{fault: 1.0, "latencyMs": SLOW_GRAPH_MS})
    with pytest.raises(OutcomeUnknown) as caught:
        revoke_license(acting_user=manager, pool=pool, user=assigned, sku=sku)
    assert "the next sync settles it" in caught.value.message
    assert UserLicense.objects.get(user=assigned, sku=sku).state == LicenseState.REMOVAL_UNCONFIRMED
    assert_within_allotment(pool, sku)
    set_faults(emulator, **{fault: 0.0, "latencyMs": 0})

    sync_now(synced_tenant)

    event = last_event(assigned, sku)
    assert event.action == AuditAction.LICENSE_REVOKED
    assert event.message == graph_messages.describe_sync_settlement(removal=True, held=not removed)
    if removed:
        assert event.outcome == Outcome.SUCCEEDED
        assert not UserLicense.objects.filter(user=assigned, sku=sku).exists()
        assert not LicenseInterval.objects.filter(user=assigned, sku=sku, ended_at__isnull=True).exists()
    else:
        assert event.outcome == Outcome.FAILED
        assert UserLicense.objects.get(user=assigned, sku=sku).state == LicenseState.ACTIVE
    assert_within_allotment(pool, sku)


@pytest.mark.parametrize("fault", ["dropAfterWriteRate", "dropWriteRate"])
def test_sync_write_keeps_unconfirmed_rows(monkeypatch, emulator, synced_tenant, pool, manager, users, sku, fault):
    # A row that became unconfirmed after the settlement step is left for the next sync, whatever Graph lists.
    user = users[0]
    set_faults(emulator, **{fault: 1.0, "latencyMs": SLOW_GRAPH_MS})
    with pytest.raises(OutcomeUnknown):
        assign_license(acting_user=manager, pool=pool, user=user, sku=sku)
    set_faults(emulator, **{fault: 0.0, "latencyMs": 0})
    monkeypatch.setattr("pools.unconfirmed.settle_unconfirmed_licenses", lambda tenant: 0)

    sync_now(synced_tenant)

    row = UserLicense.objects.get(user=user, sku=sku)
    assert row.state == LicenseState.ASSIGNMENT_UNCONFIRMED
    assert_within_allotment(pool, sku)
