"""Audit trail export: CSV and JSON Lines downloads of the audit trail page and the API, filters and scoping.

Two tenants come from one Graph emulator over HTTPS, so that a leak between tenants would show up. Events
of the tests are dated in 2025 with a patched clock, apart from the events that connecting, syncing and
granting write at the current time.
"""
from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import re
from unittest import mock

import pytest
import yaml
from django.http import StreamingHttpResponse
from django.urls import reverse
from rest_framework.test import APIClient

from conftest import sync_now
from graphsync.models import Sku, Tenant
from pools.api.audit import AuditExportEventSerializer
from pools.audit import record_event
from pools.audit_export import EXPORT_CHUNK_SIZE
from pools.choices import AuditAction, Outcome
from pools.models import AuditEvent, Pool
from pools.services import set_scheme
from rbac.choices import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("require_postgresql")]

UTC = dt.timezone.utc
MARCH = {"from": "2025-03-01", "to": "2025-03-31"}
CSV_HEADER = [
    "ID", "Occurred at (UTC)", "Actor", "Action code", "Action", "Outcome", "Tenant", "Pool ID", "Pool",
    "Target user ID", "Target", "SKU", "Before", "After", "Message", "Graph request ID",
]


@pytest.fixture
def two_tenants(db, emulator_state_dir, make_portal_user):
    """Tenants X and Y from one emulator, each synced and split into pools by department, then country."""
    from graphsync.emulator.generator import generate_tenant
    from graphsync.emulator.server import EmulatorServer
    from graphsync.services import connect_tenant

    snapshots = [generate_tenant(users=40, seed=31), generate_tenant(users=40, seed=32)]
    server = EmulatorServer(snapshots, state_dir=emulator_state_dir, control_token="test-control-token")
    server.start()
    try:
        tenants = []
        for label, snapshot in zip(("X", "Y"), snapshots):
            client = snapshot["clients"][0]
            tenant = connect_tenant(
                acting_user=None, name=f"Tenant {label}", tenant_id=snapshot["tenantId"],
                client_id=client["clientId"], client_secret=client["clientSecret"], authority_host=server.base_url,
                graph_base_url=f"{server.base_url}/v1.0", ca_bundle=str(server.ca_path),
            )
            sync_now(tenant)
            admin = make_portal_user(f"admin-{label.lower()}", role=Role.TENANT_ADMIN, tenant=tenant)
            set_scheme(acting_user=admin, tenant=tenant, level1_attribute="department", level2_attribute="country")
            tenants.append(tenant)
        yield tenants[0], tenants[1]
    finally:
        server.stop()


@pytest.fixture
def tenant_x(two_tenants) -> Tenant:
    return two_tenants[0]


@pytest.fixture
def tenant_y(two_tenants) -> Tenant:
    return two_tenants[1]


@pytest.fixture
def admin_x(tenant_x):
    return tenant_x.grants.get(role=Role.TENANT_ADMIN).user


@pytest.fixture
def auditor_x(make_portal_user, tenant_x):
    return make_portal_user("auditor-x", role=Role.AUDITOR, tenant=tenant_x)


@pytest.fixture
def pool_x(tenant_x) -> Pool:
    """A level-1 pool of tenant X that has level-2 pools."""
    return Pool.objects.filter(tenant=tenant_x, parent=None, is_active=True, children__isnull=False).order_by("pk")[0]


@contextlib.contextmanager
def clock(when: dt.datetime):
    """Date the audit events written inside the block at ``when``, through the clock that ``auto_now_add`` reads."""
    with mock.patch("django.utils.timezone.now", return_value=when):
        yield


def record_at(when: dt.datetime, **fields) -> AuditEvent:
    with clock(when):
        return record_event(**fields)


def export_url(tenant: Tenant, file_format: str) -> str:
    return reverse(f"pools:audit_export_{file_format}", kwargs={"tenant_pk": tenant.pk})


def api_url(tenant: Tenant) -> str:
    return f"/api/v1/tenants/{tenant.pk}/audit-events/export/"


def streamed_body(response) -> bytes:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content)


def csv_rows(response) -> list[list[str]]:
    text = streamed_body(response).decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))


def json_records(response) -> list[dict]:
    text = streamed_body(response).decode("utf-8")
    return [json.loads(line) for line in text.splitlines()]


def exported_ids(client, tenant: Tenant, **filters) -> list[int]:
    response = client.get(export_url(tenant, "jsonl"), filters)
    assert response.status_code == 200
    return [record["id"] for record in json_records(response)]


def test_csv_columns_and_values(client, tenant_x, admin_x, auditor_x, pool_x):
    member = pool_x.members_queryset().order_by("pk").first()
    sku = Sku.objects.filter(tenant=tenant_x).order_by("part_number").first()
    event = record_at(
        dt.datetime(2025, 3, 14, 9, 30, 5, 250000, tzinfo=UTC),
        acting_user=admin_x, action=AuditAction.LICENSE_ASSIGNED, tenant=tenant_x, pool=pool_x, user=member,
        sku=sku, before={"skuId": str(sku.sku_id), "disabledPlans": []},
        after={"skuId": str(sku.sku_id), "disabledPlans": ["a"], "note": "Zoë"}, message="Assigned.",
        graph_request_id="req-123",
    )
    client.force_login(auditor_x)

    response = client.get(export_url(tenant_x, "csv"), MARCH)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="audit-tenant-x-2025-03-01-to-2025-03-31.csv"'
    header, *rows = csv_rows(response)
    assert header == CSV_HEADER
    assert len(rows) == 1
    row = rows[0]
    # PostgreSQL's jsonb stores object keys in its own order, so before and after are compared as parsed JSON.
    before_text, after_text = row.pop(12), row.pop(12)
    assert row == [
        str(event.pk), "2025-03-14T09:30:05.250000Z", "admin-x", "license.assigned", "License assigned", "succeeded",
        "Tenant X", str(pool_x.pk), str(pool_x), str(member.user_id), member.user_principal_name, sku.part_number,
        "Assigned.", "req-123",
    ]
    assert json.loads(before_text) == {"skuId": str(sku.sku_id), "disabledPlans": []}
    assert json.loads(after_text) == {"skuId": str(sku.sku_id), "disabledPlans": ["a"], "note": "Zoë"}
    assert '"note":"Zoë"' in after_text


def test_csv_formula_injection_escaped(client, tenant_x, auditor_x, make_portal_user):
    dangerous = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]
    actor = make_portal_user("=cmd|'/c calc'!A0")
    for text in dangerous:
        record_at(
            dt.datetime(2025, 3, 2, tzinfo=UTC), acting_user=actor, action=AuditAction.POOL_RENAMED, tenant=tenant_x,
            target=text, before=-5, after="=1+1", message=text, graph_request_id=text,
        )
    client.force_login(auditor_x)

    header, *rows = csv_rows(client.get(export_url(tenant_x, "csv"), MARCH))

    column = {name: index for index, name in enumerate(header)}
    assert len(rows) == len(dangerous)
    for row, text in zip(rows, dangerous):
        assert row[column["Actor"]] == "'=cmd|'/c calc'!A0"
        assert row[column["Target"]] == "'" + text
        assert row[column["Message"]] == "'" + text
        assert row[column["Graph request ID"]] == "'" + text
        assert row[column["Before"]] == "'-5"
        assert row[column["After"]] == '"=1+1"'


def test_json_lines_shape(client, tenant_x, admin_x, auditor_x, pool_x):
    before = {"seats": 3, "nested": {"list": [1, None, True]}}
    event = record_at(
        dt.datetime(2025, 3, 5, 8, 0, tzinfo=UTC),
        acting_user=admin_x, action=AuditAction.ALLOTMENT_CHANGED, tenant=tenant_x, pool=pool_x, target=str(pool_x),
        before=before, after=None, outcome=Outcome.REJECTED, message="Ventes – Île-de-France",
    )
    client.force_login(auditor_x)

    response = client.get(export_url(tenant_x, "jsonl"), MARCH)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="audit-tenant-x-2025-03-01-to-2025-03-31.jsonl"'
    body = streamed_body(response).decode("utf-8")
    assert body.endswith("\n")
    assert "Île-de-France" in body
    records = [json.loads(line) for line in body.splitlines()]
    assert records == [{
        "id": event.pk,
        "occurredAt": "2025-03-05T08:00:00.000000Z",
        "actor": "admin-x",
        "action": "allotment.changed",
        "actionLabel": "Allotment changed",
        "outcome": "rejected",
        "tenantId": tenant_x.pk,
        "tenant": "Tenant X",
        "poolId": pool_x.pk,
        "pool": str(pool_x),
        "targetUserId": None,
        "target": str(pool_x),
        "skuPartNumber": "",
        "before": before,
        "after": None,
        "message": "Ventes – Île-de-France",
        "graphRequestId": "",
    }]
    assert dt.datetime.fromisoformat(records[0]["occurredAt"]) == event.occurred_at
    assert set(records[0]) == set(AuditExportEventSerializer().fields)


def test_filters_select_like_page(client, tenant_x, admin_x, auditor_x, pool_x, make_portal_user):
    child = pool_x.children.order_by("pk").first()
    other_pool = Pool.objects.filter(tenant=tenant_x, parent=None, is_active=True).exclude(pk=pool_x.pk)[0]
    operator = make_portal_user("Operator.One")
    march = dt.datetime(2025, 3, 10, tzinfo=UTC)
    assigned = record_at(march, acting_user=admin_x, action=AuditAction.LICENSE_ASSIGNED, tenant=tenant_x, pool=pool_x,
                         target="ana@contoso.com")
    in_child = record_at(march, acting_user=operator, action=AuditAction.LICENSE_ASSIGNED, tenant=tenant_x,
                         pool=child, target="bo@contoso.com", outcome=Outcome.FAILED)
    revoked = record_at(march, acting_user=admin_x, action=AuditAction.LICENSE_REVOKED, tenant=tenant_x,
                        pool=other_pool, target="ana@contoso.com", outcome=Outcome.REJECTED)
    by_system = record_at(march, acting_user=None, action=AuditAction.DRIFT_ADOPTED, tenant=tenant_x)
    client.force_login(auditor_x)

    cases = [
        ({}, [assigned.pk, in_child.pk, revoked.pk, by_system.pk]),
        ({"action": "license.assigned"}, [assigned.pk, in_child.pk]),
        ({"outcome": "rejected"}, [revoked.pk]),
        ({"pool": pool_x.pk}, [assigned.pk, in_child.pk]),
        ({"pool": child.pk}, [in_child.pk]),
        ({"actor": "operator.one"}, [in_child.pk]),
        ({"actor": "system"}, [by_system.pk]),
        ({"target": "ANA@"}, [assigned.pk, revoked.pk]),
        ({"action": "license.assigned", "outcome": "failed", "pool": pool_x.pk}, [in_child.pk]),
    ]
    for filters, expected in cases:
        query = {**MARCH, **filters}
        assert exported_ids(client, tenant_x, **query) == expected, filters
        page = client.get(reverse("pools:audit", kwargs={"tenant_pk": tenant_x.pk}), query)
        assert page.status_code == 200
        assert page.context["page"].paginator.count == len(expected), filters
        assert sorted(event.pk for event in page.context["page"]) == sorted(expected), filters


def test_page_links_carry_filters(client, tenant_x, auditor_x, pool_x):
    client.force_login(auditor_x)

    page = client.get(
        reverse("pools:audit", kwargs={"tenant_pk": tenant_x.pk}), {**MARCH, "pool": pool_x.pk, "actor": " ", "page": 1}
    )

    body = page.content.decode()
    query = f"from=2025-03-01&amp;to=2025-03-31&amp;pool={pool_x.pk}"
    assert f'href="{export_url(tenant_x, "csv")}?{query}" download>Download CSV</a>' in body
    assert f'href="{export_url(tenant_x, "jsonl")}?{query}" download>Download JSON</a>' in body


def test_date_range_inclusive_utc(client, tenant_x, admin_x, auditor_x):
    times = {
        "before": dt.datetime(2025, 2, 28, 23, 59, 59, 999999, tzinfo=UTC),
        "first": dt.datetime(2025, 3, 1, 0, 0, tzinfo=UTC),
        "last": dt.datetime(2025, 3, 31, 23, 59, 59, 999999, tzinfo=UTC),
        "after": dt.datetime(2025, 4, 1, 0, 0, tzinfo=UTC),
    }
    events = {
        name: record_at(when, acting_user=admin_x, action=AuditAction.POOL_RENAMED, tenant=tenant_x, target=name)
        for name, when in times.items()
    }
    client.force_login(auditor_x)

    assert exported_ids(client, tenant_x, **MARCH) == [events["first"].pk, events["last"].pk]
    assert exported_ids(client, tenant_x, to="2025-02-28") == [events["before"].pk]
    assert exported_ids(client, tenant_x, **{"from": "2025-04-01", "to": "2025-04-01"}) == [events["after"].pk]


def test_filename_without_dates(client, tenant_x, auditor_x):
    first_event = AuditEvent.objects.filter(tenant=tenant_x).order_by("occurred_at").first()
    today = dt.datetime.now(UTC).date()
    client.force_login(auditor_x)

    response = client.get(export_url(tenant_x, "csv"))

    first_day = first_event.occurred_at.astimezone(UTC).date()
    expected = f'attachment; filename="audit-tenant-x-{first_day.isoformat()}-to-{today.isoformat()}.csv"'
    assert response["Content-Disposition"] == expected


def test_invalid_filters_rejected(client, tenant_x, tenant_y, auditor_x):
    pool_y = Pool.objects.filter(tenant=tenant_y).order_by("pk").first()
    client.force_login(auditor_x)
    reversed_range = {"from": "2025-03-31", "to": "2025-03-01"}
    reversed_message = (
        "The range from 2025-03-31 to 2025-03-01 ends before it starts. Enter a From date on or before the To date."
    )

    page = client.get(reverse("pools:audit", kwargs={"tenant_pk": tenant_x.pk}), reversed_range)
    download = client.get(export_url(tenant_x, "csv"), reversed_range)
    wrong_pool = client.get(export_url(tenant_x, "jsonl"), {"pool": pool_y.pk})
    wrong_date = client.get(export_url(tenant_x, "jsonl"), {"from": "March"})

    assert page.status_code == 400
    assert reversed_message in page.content.decode()
    assert "Download CSV" not in page.content.decode()
    assert download.status_code == 400
    assert download.content.decode() == reversed_message
    assert wrong_pool.status_code == 400
    assert wrong_pool.content.decode() == (
        f"Pool: Pool {pool_y.pk} is not a pool of this tenant. Choose one of the tenant's pools."
    )
    assert wrong_date.status_code == 400
    assert wrong_date.content.decode() == 'From: "March" is not a date. Enter it as YYYY-MM-DD.'
    assert not AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORTED).exists()


def test_scoping_of_downloads(client, tenant_x, tenant_y, admin_x, auditor_x, pool_x, make_portal_user):
    record_at(dt.datetime(2025, 3, 3, tzinfo=UTC), acting_user=None, action=AuditAction.DRIFT_ADOPTED, tenant=tenant_x)
    record_at(dt.datetime(2025, 3, 3, tzinfo=UTC), acting_user=None, action=AuditAction.DRIFT_ADOPTED, tenant=tenant_y)
    manager = make_portal_user("manager-x", role=Role.POOL_MANAGER, pool=pool_x)
    finance = make_portal_user("finance-x", role=Role.FINANCE, tenant=tenant_x)

    client.force_login(auditor_x)
    for file_format in ("csv", "jsonl"):
        assert client.get(export_url(tenant_y, file_format)).status_code == 404
    records = json_records(client.get(export_url(tenant_x, "jsonl")))
    assert {record["tenantId"] for record in records} == {tenant_x.pk}
    assert len(records) == AuditEvent.objects.filter(tenant=tenant_x).count() - 1

    # The audit trail page is open to tenant administrators and auditors only, so are its downloads.
    for user in (manager, finance):
        client.force_login(user)
        assert client.get(reverse("pools:audit", kwargs={"tenant_pk": tenant_x.pk})).status_code == 404
        for file_format in ("csv", "jsonl"):
            assert client.get(export_url(tenant_x, file_format)).status_code == 404, user
    client.logout()
    response = client.get(export_url(tenant_x, "csv"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORTED, tenant=tenant_y).exists()


def test_export_recorded_in_audit_trail(client, tenant_x, auditor_x, pool_x):
    client.force_login(auditor_x)
    filters = {**MARCH, "action": "license.assigned", "pool": pool_x.pk, "actor": "admin-x", "target": "ana"}

    first = json_records(client.get(export_url(tenant_x, "jsonl"), filters))
    exports = AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORTED)
    assert first == []
    assert exports.count() == 1
    event = exports.get()
    assert event.tenant == tenant_x
    assert event.actor == auditor_x
    assert event.actor_name == "auditor-x"
    assert event.outcome == Outcome.SUCCEEDED
    assert event.after == {
        "format": "jsonl", "channel": "web", "from": "2025-03-01", "to": "2025-03-31", "action": "license.assigned",
        "poolId": pool_x.pk, "actor": "admin-x", "target": "ana",
    }
    assert event.message == "Exported the events from 2025-03-01 to 2025-03-31 (UTC)."

    # An export leaves out its own event, and the next export includes it.
    today = {"from": dt.datetime.now(UTC).date().isoformat(), "action": "audit.exported"}
    assert exported_ids(client, tenant_x, **today) == [event.pk]
    page = client.get(reverse("pools:audit", kwargs={"tenant_pk": tenant_x.pk}), {"action": "audit.exported"})
    body = page.content.decode()
    assert "Audit trail exported" in body
    assert "<dt>Action</dt>\n    <dd>License assigned</dd>" in body
    assert f"<dt>Pool ID</dt>\n    <dd>{pool_x.pk}</dd>" in body


def test_large_export_streams_in_chunks(client, tenant_x, admin_x, auditor_x):
    count = 4500
    with clock(dt.datetime(2025, 3, 20, 12, 0, tzinfo=UTC)):
        AuditEvent.objects.bulk_create(
            AuditEvent(
                actor=admin_x, actor_name="admin-x", action=AuditAction.LICENSE_ASSIGNED, tenant=tenant_x,
                target=f"user{number}@contoso.com", after={"number": number},
            )
            for number in range(count)
        )
    client.force_login(auditor_x)

    response = client.get(export_url(tenant_x, "csv"), MARCH)

    assert isinstance(response, StreamingHttpResponse)
    chunks = list(response.streaming_content)
    lines = count + 1
    assert len(chunks) == -(-lines // EXPORT_CHUNK_SIZE)
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8").removeprefix("\ufeff"), newline="")))
    assert len(rows) == lines
    ids = [int(row[0]) for row in rows[1:]]
    assert ids == sorted(ids)
    assert [json.loads(row[13])["number"] for row in rows[1:]] == list(range(count))

    records = json_records(client.get(export_url(tenant_x, "jsonl"), MARCH))
    assert len(records) == count
    assert records[-1]["after"] == {"number": count - 1}


@pytest.fixture
def auditor_api(auditor_x) -> APIClient:
    api = APIClient()
    api.force_authenticate(auditor_x)
    return api


def test_api_export_formats(auditor_api, tenant_x, admin_x):
    event = record_at(
        dt.datetime(2025, 3, 8, tzinfo=UTC), acting_user=admin_x, action=AuditAction.PRICE_CHANGED, tenant=tenant_x,
        target="=SUM(A1)", after={"monthly_price": "31.00"},
    )

    as_jsonl = auditor_api.get(api_url(tenant_x), MARCH)
    as_csv = auditor_api.get(api_url(tenant_x), {**MARCH, "format": "csv"})
    by_accept = auditor_api.get(api_url(tenant_x), MARCH, HTTP_ACCEPT="text/csv")

    assert as_jsonl.status_code == 200
    assert as_jsonl["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert [(record["id"], record["after"]) for record in json_records(as_jsonl)] == [
        (event.pk, {"monthly_price": "31.00"})
    ]
    for response in (as_csv, by_accept):
        assert response.status_code == 200
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert response["Content-Disposition"] == 'attachment; filename="audit-tenant-x-2025-03-01-to-2025-03-31.csv"'
        header, row = csv_rows(response)
        assert header == CSV_HEADER
        assert row[10] == "'=SUM(A1)"
    channels = AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORTED).order_by("pk")
    assert [(event.after["channel"], event.after["format"]) for event in channels] == [
        ("api", "jsonl"), ("api", "csv"), ("api", "csv")
    ]


def test_api_export_errors_are_json(auditor_api, tenant_x, tenant_y):
    reversed_range = auditor_api.get(api_url(tenant_x), {"from": "2025-03-31", "to": "2025-03-01", "format": "csv"})
    bad_outcome = auditor_api.get(api_url(tenant_x), {"outcome": "maybe"})
    other_tenant = auditor_api.get(api_url(tenant_y), {"format": "csv"})
    not_acceptable = auditor_api.get(api_url(tenant_x), HTTP_ACCEPT="application/json")
    unknown_format = auditor_api.get(api_url(tenant_x), {"format": "xlsx"})

    message = (
        "The range from 2025-03-31 to 2025-03-01 ends before it starts. Enter a From date on or before the To date."
    )
    assert reversed_range.status_code == 400
    assert reversed_range["Content-Type"] == "application/json"
    assert reversed_range.json() == {"detail": message, "non_field_errors": [message]}
    outcome_message = "Outcome: Select a valid choice. maybe is not one of the available choices."
    assert bad_outcome.json() == {"detail": outcome_message, "outcome": [outcome_message]}
    assert other_tenant.status_code == 404
    assert other_tenant.json() == {"detail": "Tenant not found."}
    assert not_acceptable.status_code == 406
    assert re.match(r"The export comes as JSON Lines \(application/x-ndjson\) or CSV", not_acceptable.json()["detail"])
    assert unknown_format.status_code == 406
    assert unknown_format.json() == {
        "detail": '"xlsx" is not an export format. Send format=jsonl for JSON Lines or format=csv for CSV.'
    }
    assert APIClient().get(api_url(tenant_x)).status_code == 401
    assert not AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORTED).exists()


def test_api_export_in_schema(auditor_api):
    schema = yaml.safe_load(auditor_api.get("/api/schema/").content)

    operation = schema["paths"]["/api/v1/tenants/{tenant_pk}/audit-events/export/"]["get"]
    parameters = {parameter["name"] for parameter in operation["parameters"]}
    assert parameters == {"tenant_pk", "format", "from", "to", "action", "outcome", "pool", "actor", "target"}
    assert set(operation["responses"]["200"]["content"]) == {"application/x-ndjson", "text/csv"}
    event_schema = schema["components"]["schemas"]["AuditExportEvent"]
    assert set(event_schema["properties"]) == set(AuditExportEventSerializer().fields)
