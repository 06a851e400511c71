"""The audit trail page shows before and after values as labelled rows, with SKU and plan names."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from graphsync.models import Sku
from pools.audit import record_event
from pools.audit_display import SkuIndex, ValueRow, value_rows
from pools.choices import AuditAction
from pools.forms_bulk import service_plan_friendly_names
from pools.models import AuditEvent
from rbac.choices import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("require_postgresql")]

UNKNOWN_SKU_ID = "00000000-0000-4000-8000-0000000000aa"
UNKNOWN_PLAN_ID = "00000000-0000-4000-8000-0000000000bb"


@pytest.fixture
def admin(make_portal_user, synced_tenant):
    return make_portal_user("audit-admin", role=Role.TENANT_ADMIN, tenant=synced_tenant)


@pytest.fixture
def e3(synced_tenant) -> Sku:
    return Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")


def user_plan(sku: Sku) -> tuple[str, str]:
    """Return the ID and friendly name of one user service plan of the SKU."""
    plan = next(plan for plan in sku.service_plans if plan.get("appliesTo", "User") == "User")
    plan_id = plan["servicePlanId"].lower()
    return plan_id, service_plan_friendly_names().get(plan_id) or plan["servicePlanName"]


def audit_page(client, user, tenant) -> str:
    client.force_login(user)
    response = client.get(reverse("pools:audit", kwargs={"tenant_pk": tenant.pk}))
    assert response.status_code == 200
    return response.content.decode()


def test_license_values_named(client, synced_tenant, admin, e3):
    plan_id, plan_name = user_plan(e3)
    record_event(
        acting_user=admin, action=AuditAction.LICENSE_ASSIGNED, tenant=synced_tenant, sku=e3,
        before={"skuId": str(e3.sku_id), "disabledPlans": []},
        after={"skuId": str(e3.sku_id).upper(), "disabledPlans": [plan_id, UNKNOWN_PLAN_ID]},
    )

    body = audit_page(client, admin, synced_tenant)

    assert f"<dt>SKU</dt>\n    <dd>{e3.name}</dd>" in body
    assert "<dt>Disabled service plans</dt>\n    <dd>none</dd>" in body
    assert f"<dt>Disabled service plans</dt>\n    <dd>{plan_name}, {UNKNOWN_PLAN_ID}</dd>" in body
    assert "skuId" not in body
    assert "{&#x27;" not in body


def test_unknown_sku_shows_raw_ids(synced_tenant, e3):
    event = AuditEvent(sku_id=None)
    skus = SkuIndex.for_tenant(synced_tenant)

    rows = value_rows({"skuId": UNKNOWN_SKU_ID, "disabledPlans": [UNKNOWN_PLAN_ID]}, event=event, skus=skus)

    assert rows == [ValueRow("SKU", UNKNOWN_SKU_ID), ValueRow("Disabled service plans", UNKNOWN_PLAN_ID)]


def test_plans_use_event_sku(synced_tenant, e3):
    # Some events store only disabledPlans, so the event's SKU names them.
    plan_id, plan_name = user_plan(e3)
    event = AuditEvent(sku=e3)

    rows = value_rows({"disabledPlans": [plan_id]}, event=event, skus=SkuIndex.for_tenant(synced_tenant))

    assert rows == [ValueRow("Disabled service plans", plan_name)]


@pytest.mark.parametrize(
    "value, expected",
    [
        ({"seats": 3}, [ValueRow("Seats", "3")]),
        ({"is_active": False}, [ValueRow("Active", "no")]),
        ({"usageLocation": None}, [ValueRow("Usage location", "none")]),
        ({"role": "pool_manager"}, [ValueRow("Role", "Pool manager")]),
        ({"recipients": ["a@example.com", "b@example.com"]}, [ValueRow("Recipients", "a@example.com, b@example.com")]),
        ({"allotments": {"12": 5}}, [ValueRow("Allotments by pool ID", '{"12": 5}')]),
        ({"assignments": [{"user": "ana@contoso.com", "source": "direct"}]},
         [ValueRow("Assignments", '[{"user": "ana@contoso.com", "source": "direct"}]')]),
        ({"someNewKey": "x"}, [ValueRow("someNewKey", "x")]),
        (7, [ValueRow("", "7")]),
        (None, []),
    ],
    ids=["number", "bool", "null", "choice", "list", "nested-dict", "list-of-dicts", "unlabelled-key", "bare", "none"],
)
def test_value_rows_formats(value, expected):
    assert value_rows(value, event=AuditEvent(), skus=SkuIndex([])) == expected


def test_audit_page_query_count_flat(client, synced_tenant, admin, e3):
    def record(count: int) -> None:
        for _ in range(count):
            record_event(
                acting_user=admin, action=AuditAction.LICENSE_REVOKED, tenant=synced_tenant, sku=e3,
                before={"skuId": str(e3.sku_id), "disabledPlans": []},
            )

    record(1)
    client.force_login(admin)
    url = reverse("pools:audit", kwargs={"tenant_pk": synced_tenant.pk})
    with CaptureQueriesContext(connection) as one_event:
        client.get(url)
    record(20)
    with CaptureQueriesContext(connection) as many_events:
        client.get(url)

    assert len(many_events) == len(one_event)
