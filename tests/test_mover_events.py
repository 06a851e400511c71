"""Movers are recorded in the audit trail, listed on both pools' pages, and alerted when a pool lacks seats."""
import pytest
from django.urls import reverse

from graphsync.models import UserLicense
from pools import movers
from pools.audit_display import SkuIndex, ValueRow, value_rows
from pools.alerts import evaluate_tenant, pool_sku_key
from pools.choices import AlertKind, AuditAction
from pools.membership import apply_plan, plan_membership
from pools.models import Alert, Allotment, AuditEvent
from pools.services import set_allotment

from conftest import sync_now
from tests.test_movers import admin, control, department_scheme, emulator_snapshot, licensed_member, pool_by_key  # noqa: F401


@pytest.fixture(params=["postgresql", "in_memory_plan"])
def membership_path(request, monkeypatch):
    """Run the sync's membership step through the set-based PostgreSQL path or the plan that SQLite uses."""
    if request.param == "in_memory_plan":
        monkeypatch.setattr("pools.membership._recompute_in_database", lambda tenant: apply_plan(plan_membership(tenant)))
    return request.param


def move(emulator, tenant, user, department: str) -> None:
    control(emulator, "PATCH", f"tenants/{tenant.tenant_id}/users/{user.user_id}", json={"department": department})


def test_sync_records_mover(client, emulator, department_scheme, admin, membership_path):
    tenant = department_scheme
    marketing, finance = pool_by_key(tenant, "marketing"), pool_by_key(tenant, "finance")
    user, _license = licensed_member(marketing)
    skus = sorted(UserLicense.objects.filter(user=user).values_list("sku__part_number", flat=True).distinct())

    move(emulator, tenant, user, "Finance")
    sync_now(tenant)
    sync_now(tenant)

    event = AuditEvent.objects.get(action=AuditAction.USER_MOVED)
    assert event.target_user == user
    assert ValueRow("Pool name", str(finance)) in value_rows(event.after, event=event, skus=SkuIndex.for_tenant(tenant))
    assert event.pool == finance
    assert event.actor_name == "system"
    assert event.before == {"pool": marketing.pk, "poolName": str(marketing)}
    assert event.after == {"pool": finance.pk, "poolName": str(finance), "skus": skus}

    client.force_login(admin)
    for pool, direction, other in ((finance, "Moved in", marketing), (marketing, "Moved out", finance)):
        page = client.get(reverse("pools:pool", kwargs={"pool_pk": pool.pk})).content.decode()
        assert 'id="mover-list"' in page
        assert user.user_principal_name in page
        assert direction in page
        assert str(other) in page


def test_unmoved_pool_lists_no_movers(client, department_scheme, admin):
    client.force_login(admin)
    page = client.get(reverse("pools:pool", kwargs={"pool_pk": pool_by_key(department_scheme, "finance").pk}))

    assert "No licensed user moved into or out of this pool." in page.content.decode()


def test_many_movers_summarised(emulator, department_scheme, monkeypatch):
    tenant = department_scheme
    marketing, finance = pool_by_key(tenant, "marketing"), pool_by_key(tenant, "finance")
    holders = list(
        UserLicense.objects.filter(user__pool=marketing, assigned_by_group="", state="Active")
        .values_list("user__user_principal_name", flat=True).distinct().order_by("user__user_principal_name")[:2]
    )
    assert len(holders) == 2
    monkeypatch.setattr(movers, "MAX_EVENTS_PER_USER", 1)
    for user in marketing.members_queryset().filter(user_principal_name__in=holders):
        move(emulator, tenant, user, "Finance")

    sync_now(tenant)

    event = AuditEvent.objects.get(action=AuditAction.USER_MOVED)
    assert event.pool == finance
    assert event.target == "2 users"
    assert event.after["count"] == 2
    assert [entry["userPrincipalName"] for entry in event.after["users"]] == holders
    listed = movers.recent_moves(finance)
    assert [(entry.direction, entry.count) for entry in listed] == [("in", 2)]


def test_unallotted_pool_alerted(emulator, department_scheme, admin, membership_path):
    tenant = department_scheme
    marketing, finance = pool_by_key(tenant, "marketing"), pool_by_key(tenant, "finance")
    user, user_license = licensed_member(marketing)
    sku = user_license.sku
    assert not Allotment.objects.filter(pool=finance, sku=sku).exists()
    key = pool_sku_key(AlertKind.POOL_OVER_ALLOTMENT, finance.pk, sku.pk)
    evaluate_tenant(tenant, notify=False)
    assert not Alert.objects.filter(dedup_key=key).exists()

    move(emulator, tenant, user, "Finance")
    sync_now(tenant)
    evaluate_tenant(tenant, notify=False)

    alert = Alert.objects.get(dedup_key=key, resolved_at__isnull=True)
    assert alert.details["sku"] == sku.part_number
    assert alert.details["allotment"] is None
    assert alert.details["moved_in"] == 1
    assert alert.message.startswith(f"Pool {finance} has no allotment of {sku.name}, but ")
    assert UserLicense.objects.filter(user=user, sku=sku, state="Active").exists()
    assert not AuditEvent.objects.filter(action=AuditAction.LICENSE_REVOKED).exists()

    set_allotment(acting_user=admin, pool=finance, sku=sku, seats=alert.details["consumption"])
    evaluate_tenant(tenant, notify=False)

    alert.refresh_from_db()
    assert alert.resolved_at is not None
