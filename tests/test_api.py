"""REST API under /api/v1/, against a tenant served by the Graph emulator over HTTPS."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
import uuid

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from conftest import sync_now
from graphsync.models import DirectoryUser, Sku, SyncRun
from pools import stock
from pools.choices import AuditAction
from pools.models import Allotment, AuditEvent, Pool
from pools.services import set_allotment, set_scheme
from rbac.choices import Role

PASSWORD = "correct-horse-42"
# FLOW_FREE has 10,000 enabled units in generated tenants, so only pool allotments limit it.
FREE_SKU = "FLOW_FREE"


@pytest.fixture
def admin(synced_tenant, make_portal_user):
    return make_portal_user("admin", role=Role.TENANT_ADMIN, tenant=synced_tenant)


@pytest.fixture
def sales(synced_tenant, admin, require_postgresql) -> Pool:
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute="department")
    return Pool.objects.get(tenant=synced_tenant, parent=None, key="sales")


@pytest.fixture
def free_sku(synced_tenant) -> Sku:
    return Sku.objects.get(tenant=synced_tenant, part_number=FREE_SKU)


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def admin_api(api, admin) -> APIClient:
    api.force_authenticate(admin)
    return api


def candidates(pool: Pool, sku: Sku) -> list[DirectoryUser]:
    """Members of the pool who could receive the SKU: a usage location and no assignment of it yet."""
    return list(
        pool.members_queryset()
        .exclude(usage_location="")
        .exclude(licenses__sku=sku)
        .order_by("user_principal_name")
    )


def licenses_url(pool: Pool, user: DirectoryUser, sku: Sku | None = None) -> str:
    url = f"/api/v1/pools/{pool.pk}/users/{user.user_id}/licenses/"
    return f"{url}{sku.sku_id}/" if sku else url


def held_in_emulator(state, user: DirectoryUser, sku: Sku) -> bool:
    return str(sku.sku_id).lower() in {sku_id.lower() for sku_id in state.held_skus(str(user.user_id))}


def test_schema_renders(client, admin):
    client.force_login(admin)

    response = client.get("/api/schema/")

    assert response.status_code == 200
    schema = response.content.decode()
    assert "/api/v1/pools/{id}/users/{user_id}/licenses/:" in schema
    assert "/api/v1/tenants/{tenant_pk}/chargeback/:" in schema


def test_tenants_list_and_detail(admin_api, synced_tenant):
    listing = admin_api.get("/api/v1/tenants/")
    detail = admin_api.get(f"/api/v1/tenants/{synced_tenant.pk}/")

    assert listing.status_code == 200
    assert [item["id"] for item in listing.json()["results"]] == [synced_tenant.pk]
    assert detail.status_code == 200
    assert detail.json()["tenantId"] == str(synced_tenant.tenant_id)
    assert detail.json()["currency"] == "EUR"
    assert detail.json()["lastSyncedAt"] is not None


def test_tenant_skus_stock(admin_api, synced_tenant, sales, admin, free_sku, emulator_snapshot):
    set_allotment(acting_user=admin, pool=sales, sku=free_sku, seats=25)
    holders = sum(
        1
        for user in emulator_snapshot["users"]
        if any(item["skuId"] == str(free_sku.sku_id) for item in user.get("assignedLicenses", []))
    )

    response = admin_api.get(f"/api/v1/tenants/{synced_tenant.pk}/skus/")

    assert response.status_code == 200
    by_part = {item["partNumber"]: item for item in response.json()}
    assert set(by_part) == {sku["skuPartNumber"] for sku in emulator_snapshot["subscribedSkus"]}
    line = by_part[FREE_SKU]
    assert (line["enabled"], line["warning"], line["suspended"]) == (10000, 0, 0)
    assert line["inUse"] == holders
    assert line["allotted"] == 25
    sales_holders = stock.holders(synced_tenant, free_sku, sales.subtree_ids())
    assert line["reserve"] == 10000 - holders - max(25 - sales_holders, 0)
    assert (line["reserveInUse"], line["allottedUnused"]) == (holders, max(25 - sales_holders, 0))
    assert by_part["POWER_BI_PRO"]["warning"] == 13
    assert by_part["PROJECTPROFESSIONAL"]["suspended"] == 1


def test_sync_request_queued(admin_api, synced_tenant, admin):
    response = admin_api.post(f"/api/v1/tenants/{synced_tenant.pk}/sync/")

    assert response.status_code == 202
    run = SyncRun.objects.get(pk=response.json()["id"])
    assert response.json()["status"] == "queued"
    assert run.tenant == synced_tenant
    assert run.requested_by == admin
    assert AuditEvent.objects.filter(action=AuditAction.SYNC_REQUESTED, actor=admin).count() == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_sync_request_runs_on_worker(celery_worker, synced_tenant, make_portal_user):
    api = APIClient()
    api.force_authenticate(make_portal_user("admin", role=Role.TENANT_ADMIN, tenant=synced_tenant))

    run_id = api.post(f"/api/v1/tenants/{synced_tenant.pk}/sync/").json()["id"]

    deadline = time.monotonic() + 60
    run = SyncRun.objects.get(pk=run_id)
    while run.status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        run.refresh_from_db()
    assert run.status == "succeeded", run.error_message


def test_sync_needs_admin(api, synced_tenant, sales, make_portal_user):
    api.force_authenticate(make_portal_user("manager", role=Role.POOL_MANAGER, pool=sales))

    response = api.post(f"/api/v1/tenants/{synced_tenant.pk}/sync/")

    assert response.status_code == 403
    assert not SyncRun.objects.filter(requested_by__username="manager").exists()


def test_pools_list_filter(admin_api, synced_tenant, sales):
    every = admin_api.get("/api/v1/pools/", {"tenant": synced_tenant.pk}).json()
    none = admin_api.get("/api/v1/pools/", {"tenant": synced_tenant.pk + 1000}).json()

    expected = set(Pool.objects.filter(tenant=synced_tenant, is_active=True).values_list("pk", flat=True))
    assert {item["id"] for item in every["results"]} == expected
    assert every["count"] == len(expected)
    assert {"Sales", "Unassigned"} <= {item["name"] for item in every["results"]}
    assert none["results"] == []


def test_pool_detail_lines(admin_api, sales, admin, free_sku):
    set_allotment(acting_user=admin, pool=sales, sku=free_sku, seats=5)
    consumption = sales.members_queryset().filter(licenses__sku=free_sku).distinct().count()

    response = admin_api.get(f"/api/v1/pools/{sales.pk}/")

    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["level"], body["parent"]) == ("Sales", 1, None)
    line = next(item for item in body["skus"] if item["partNumber"] == FREE_SKU)
    assert line == {
        "skuId": str(free_sku.sku_id),
        "partNumber": FREE_SKU,
        "name": free_sku.name,
        "allotment": 5,
        "consumption": consumption,
        "spare": 5 - consumption,
        "usableSpare": 5 - consumption,
        "tenantFreeUnits": free_sku.enabled_units - stock.holders(free_sku.tenant, free_sku),
        "assignable": True,
    }


def test_pool_users_paginated_search(admin_api, sales):
    members = list(sales.members_queryset().order_by("user_principal_name"))
    target = members[0]

    listing = admin_api.get(f"/api/v1/pools/{sales.pk}/users/")
    found = admin_api.get(f"/api/v1/pools/{sales.pk}/users/", {"search": target.user_principal_name.upper()})

    assert listing.status_code == 200
    assert listing.json()["count"] == len(members)
    assert [item["userPrincipalName"] for item in listing.json()["results"]] == [
        member.user_principal_name for member in members
    ]
    assert [item["id"] for item in found.json()["results"]] == [str(target.user_id)]
    assert found.json()["results"][0]["licenses"] == [
        {
            "skuId": str(item.sku.sku_id),
            "partNumber": item.sku.part_number,
            "assignedByGroup": item.assigned_by_group,
            "state": item.state,
            "disabledPlans": item.disabled_plans,
        }
        for item in target.licenses.select_related("sku").order_by("pk")
    ]


def test_pool_users_page_beyond_last(admin_api, sales):
    response = admin_api.get(f"/api/v1/pools/{sales.pk}/users/", {"page": 2})

    assert response.status_code == 404
    assert response.json() == {"detail": "Page 2 does not exist: the last page is 1. Send a page from 1 to 1."}


def test_put_allotment(admin_api, sales, free_sku):
    url = f"/api/v1/pools/{sales.pk}/allotments/{free_sku.sku_id}/"

    response = admin_api.put(url, {"seats": 12}, format="json")

    assert response.status_code == 200
    assert response.json() == {
        "pool": sales.pk, "skuId": str(free_sku.sku_id), "partNumber": FREE_SKU, "seats": 12, "warnings": []
    }
    assert Allotment.objects.get(pool=sales, sku=free_sku).seats == 12

    removed = admin_api.delete(url)

    assert removed.status_code == 204
    assert not Allotment.objects.filter(pool=sales, sku=free_sku).exists()
    event = AuditEvent.objects.filter(action=AuditAction.ALLOTMENT_CHANGED).latest("pk")
    assert (event.before, event.after) == ({"seats": 12}, {"seats": None})


def test_put_allotment_null_keeps_allotment(admin_api, sales, free_sku):
    url = f"/api/v1/pools/{sales.pk}/allotments/{free_sku.sku_id}/"
    admin_api.put(url, {"seats": 12}, format="json")
    message = "seats is empty. Send 0 to allot no seats, or send DELETE to this URL to remove the allotment."

    as_json = admin_api.put(url, {"seats": None}, format="json")
    as_form = admin_api.put(url, {"seats": ""}, format="multipart")

    assert as_json.status_code == 400
    assert as_json.json() == {"seats": [message]}
    assert as_form.status_code == 400
    assert as_form.json() == {"seats": [message]}
    assert Allotment.objects.get(pool=sales, sku=free_sku).seats == 12


def test_put_allotment_zero_keeps_row(admin_api, sales, free_sku):
    url = f"/api/v1/pools/{sales.pk}/allotments/{free_sku.sku_id}/"
    admin_api.put(url, {"seats": 12}, format="json")

    response = admin_api.put(url, {"seats": 0}, format="json")

    assert response.status_code == 200
    assert Allotment.objects.get(pool=sales, sku=free_sku).seats == 0


def test_delete_missing_allotment_404(admin_api, sales, free_sku):
    events_before = AuditEvent.objects.count()

    response = admin_api.delete(f"/api/v1/pools/{sales.pk}/allotments/{free_sku.sku_id}/")

    assert response.status_code == 404
    assert response.json() == {"detail": f"Sales has no allotment of {free_sku.name} to remove."}
    assert AuditEvent.objects.count() == events_before


def test_delete_allotment_by_manager_403(synced_tenant, admin, sales, free_sku, make_portal_user):
    set_allotment(acting_user=admin, pool=sales, sku=free_sku, seats=4)
    manager = APIClient()
    manager.force_authenticate(make_portal_user("sales-manager", role=Role.POOL_MANAGER, pool=sales))

    response = manager.delete(f"/api/v1/pools/{sales.pk}/allotments/{free_sku.sku_id}/")

    assert response.status_code == 403
    assert response.json()["detail"].startswith("Only tenant administrators change allotments")
    assert Allotment.objects.get(pool=sales, sku=free_sku).seats == 4


def test_put_allotment_over_stock(admin_api, sales, free_sku):
    response = admin_api.put(f"/api/v1/pools/{sales.pk}/allotments/{free_sku.sku_id}/", {"seats": 10001}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": f"Cannot allot 10001 seats of {free_sku.name} to Sales: the tenant has 10000 enabled units and "
        "other pools hold 0, so at most 10000 can go here. Buy more seats or lower another pool's allotment first."
    }


def test_put_allotment_negative(admin_api, sales, free_sku):
    response = admin_api.put(f"/api/v1/pools/{sales.pk}/allotments/{free_sku.sku_id}/", {"seats": -1}, format="json")

    assert response.status_code == 400
    assert response.json() == {"detail": "An allotment cannot be negative; -1 was given."}


def test_put_allotment_unknown_sku(admin_api, sales):
    response = admin_api.put(f"/api/v1/pools/{sales.pk}/allotments/{uuid.uuid4()}/", {"seats": 1}, format="json")

    assert response.status_code == 404
    assert response.json() == {"detail": "SKU not found."}


def test_unknown_user_not_found(admin_api, sales, free_sku):
    outsider = DirectoryUser.objects.filter(tenant=sales.tenant, is_deleted=False).exclude(pool=sales).first()
    missing_id = uuid.uuid4()

    for user_id in (missing_id, outsider.user_id):
        assigned = admin_api.post(
            f"/api/v1/pools/{sales.pk}/users/{user_id}/licenses/", {"skuId": str(free_sku.sku_id)}, format="json"
        )
        revoked = admin_api.delete(f"/api/v1/pools/{sales.pk}/users/{user_id}/licenses/{free_sku.sku_id}/")

        assert assigned.status_code == 404, user_id
        assert assigned.json() == {"detail": "User not found."}, user_id
        assert revoked.status_code == 404, user_id
        assert revoked.json() == {"detail": "User not found."}, user_id


def test_missing_objects_named(admin_api, synced_tenant):
    cases = [
        ("/api/v1/tenants/999999/", "Tenant not found."),
        ("/api/v1/tenants/999999/skus/", "Tenant not found."),
        ("/api/v1/tenants/999999/chargeback/", "Tenant not found."),
        ("/api/v1/pools/999999/", "Pool not found."),
        ("/api/v1/pools/999999/users/", "Pool not found."),
        ("/api/v1/pools/999999/reclaim-candidates/", "Pool not found."),
        ("/api/v1/purchases/999999/", "Purchase not found."),
        ("/api/v1/seat-requests/999999/", "Seat request not found."),
    ]
    for url, message in cases:
        response = admin_api.get(url)

        assert response.status_code == 404, url
        assert response["Content-Type"] == "application/json", url
        assert response.json() == {"detail": message}, url


def test_unknown_endpoint_json_404(admin_api):
    for url in ["/api/v1/no-such-thing/", "/api/v1/pools/abc/", "/api/v2/pools/"]:
        response = admin_api.get(url)

        assert response.status_code == 404, url
        assert response["Content-Type"] == "application/json", url
        assert response.json() == {
            "detail": f"No API endpoint matches {url}. The endpoints are listed at /api/schema/."
        }, url


def test_html_404_outside_api(admin_api):
    response = admin_api.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_assign_and_revoke(admin_api, sales, admin, free_sku, emulated_tenant_state):
    member = candidates(sales, free_sku)[0]
    consumption = sales.members_queryset().filter(licenses__sku=free_sku).distinct().count()
    set_allotment(acting_user=admin, pool=sales, sku=free_sku, seats=consumption + 1)

    assigned = admin_api.post(licenses_url(sales, member), {"skuId": str(free_sku.sku_id)}, format="json")

    assert assigned.status_code == 201
    assert assigned.json() == {
        "skuId": str(free_sku.sku_id),
        "partNumber": FREE_SKU,
        "assignedByGroup": "",
        "state": "Active",
        "disabledPlans": [],
        "warnings": [],
    }
    assert held_in_emulator(emulated_tenant_state, member, free_sku)

    revoked = admin_api.delete(licenses_url(sales, member, free_sku))

    assert revoked.status_code == 204
    assert not held_in_emulator(emulated_tenant_state, member, free_sku)
    assert not member.licenses.filter(sku=free_sku).exists()
    assert list(
        AuditEvent.objects.filter(target_user=member).order_by("pk").values_list("action", "outcome")
    ) == [(AuditAction.LICENSE_ASSIGNED, "succeeded"), (AuditAction.LICENSE_REVOKED, "succeeded")]


def test_assign_beyond_allotment(admin_api, sales, admin, free_sku, emulated_tenant_state):
    first, second = candidates(sales, free_sku)[:2]
    consumption = sales.members_queryset().filter(licenses__sku=free_sku).distinct().count()
    seats = consumption + 1
    set_allotment(acting_user=admin, pool=sales, sku=free_sku, seats=seats)
    assert admin_api.post(licenses_url(sales, first), {"skuId": str(free_sku.sku_id)}, format="json").status_code == 201

    response = admin_api.post(licenses_url(sales, second), {"skuId": str(free_sku.sku_id)}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Pool Sales has no spare seat of {free_sku.name}: {seats} allotted, {seats} in use, 0 spare. "
        "Revoke a license in this pool or ask a tenant administrator to raise its allotment.",
        "code": "rejected",
    }
    assert not held_in_emulator(emulated_tenant_state, second, free_sku)


def test_assign_graph_rejected(admin_api, sales, admin, free_sku, emulated_tenant_state):
    member = candidates(sales, free_sku)[0]
    set_allotment(acting_user=admin, pool=sales, sku=free_sku, seats=100)
    # Someone cleared the usage location in Entra ID after the last sync: the mirror still has one.
    emulated_tenant_state.update_user(str(member.user_id), {"usageLocation": None})
    graph_message = "License assignment cannot be done for user with invalid usage location."

    response = admin_api.post(licenses_url(sales, member), {"skuId": str(free_sku.sku_id)}, format="json")

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "graph_rejected"
    assert body["graph_message"] == graph_message
    assert body["graph_request_id"]
    assert body["detail"] == (
        f"{member.user_principal_name} has no usage location in Microsoft 365. Set the user's usage location in the "
        "Microsoft 365 admin center or Entra ID, run a sync, and try again. "
        f"Graph said: {graph_message} (request ID {body['graph_request_id']})"
    )
    assert not member.licenses.filter(sku=free_sku).exists()


def test_assign_unknown_plan_rejected(admin_api, sales, admin, free_sku):
    member = candidates(sales, free_sku)[0]
    set_allotment(acting_user=admin, pool=sales, sku=free_sku, seats=100)
    plan = str(uuid.uuid4())

    response = admin_api.post(
        licenses_url(sales, member), {"skuId": str(free_sku.sku_id), "disabledPlans": [plan]}, format="json"
    )

    assert response.status_code == 409
    assert response.json() == {
        "detail": (
            f"\"{plan}\" is not a service plan of {free_sku.name} that applies to users, so it cannot be disabled. "
            f"Choose among the service plans listed for {free_sku.name}, or run a sync if its plans changed recently."
        ),
        "code": "rejected",
    }
    assert not member.licenses.filter(sku=free_sku).exists()


def test_assign_unknown_sku(admin_api, sales, free_sku):
    member = candidates(sales, free_sku)[0]
    sku_id = str(uuid.uuid4())

    response = admin_api.post(licenses_url(sales, member), {"skuId": sku_id}, format="json")

    assert response.status_code == 400
    assert response.json() == {"skuId": [f"The tenant has no SKU with the ID {sku_id}."]}


def test_revoke_not_held(admin_api, sales, free_sku):
    member = candidates(sales, free_sku)[0]

    response = admin_api.delete(licenses_url(sales, member, free_sku))

    assert response.status_code == 409
    assert response.json() == {
        "detail": f"{member.user_principal_name} does not hold {free_sku.name}.",
        "code": "rejected",
    }


def test_chargeback_json_and_csv(admin_api, synced_tenant, sales, admin, free_sku):
    member = candidates(sales, free_sku)[0]
    set_allotment(acting_user=admin, pool=sales, sku=free_sku, seats=100)
    assert admin_api.post(licenses_url(sales, member), {"skuId": str(free_sku.sku_id)}, format="json").status_code == 201
    month = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m")
    url = f"/api/v1/tenants/{synced_tenant.pk}/chargeback/"

    report = admin_api.get(url, {"month": month})
    download = admin_api.get(url, {"month": month, "format": "csv"})

    assert report.status_code == 200
    body = report.json()
    assert body["month"] == month
    sales_row = next(row for row in body["rows"] if row["poolName"] == "Sales" and row["partNumber"] == FREE_SKU)
    holders = sales.members_queryset().filter(licenses__sku=free_sku).distinct().count()
    # Sync and assignment both ran today, so each holder has held the SKU for one day this month.
    assert sales_row["licenseDays"] == holders
    assert sales_row["cost"] is None
    assert sales_row["pool"] == sales.pk
    assert sales_row["poolActive"] is True
    assert sales_row["poolMergedInto"] is None
    assert sales_row["currency"] == ""
    assert download.status_code == 200
    assert download["Content-Disposition"] == f'attachment; filename="chargeback-contoso-generated-seed-7-{month}.csv"'
    text = download.content.decode("utf-8")
    assert text.startswith("\ufeffMonth,Pool ID,Pool,Pool status,SKU,Product,License-days,Cost,Currency\r\n")
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert [month, str(sales.pk), "Sales", "Active", FREE_SKU, free_sku.name, str(holders), "", ""] in rows


def test_chargeback_bad_month(admin_api, synced_tenant):
    response = admin_api.get(f"/api/v1/tenants/{synced_tenant.pk}/chargeback/", {"month": "2025-13"})

    assert response.status_code == 400
    assert response.json()["detail"] == "The month 13 is invalid: use a month from 1 to 12."


def test_token_auth(api, synced_tenant, admin):
    token = Token.objects.create(user=admin)

    api.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    accepted = api.get("/api/v1/tenants/")
    api.credentials(HTTP_AUTHORIZATION="Token not-a-valid-token")
    refused = api.get("/api/v1/tenants/")

    assert accepted.status_code == 200
    assert [item["id"] for item in accepted.json()["results"]] == [synced_tenant.pk]
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"] == "Token"
    assert refused.json() == {"detail": "Invalid token."}


def test_missing_credentials_401(api, synced_tenant):
    response = api.get("/api/v1/tenants/")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_invalid_token_beats_session(synced_tenant, admin):
    api = APIClient()
    assert api.login(username="admin", password=PASSWORD)
    api.credentials(HTTP_AUTHORIZATION="Token not-a-valid-token")

    response = api.get("/api/v1/tenants/")

    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_session_writes_need_csrf(synced_tenant, admin):
    api = APIClient(enforce_csrf_checks=True)
    assert api.login(username="admin", password=PASSWORD)
    sync_url = f"/api/v1/tenants/{synced_tenant.pk}/sync/"

    refused = api.post(sync_url)
    # The browsable API's page sets the CSRF cookie, as a browser session would get it.
    browsable = api.get("/api/v1/tenants/", HTTP_ACCEPT="text/html")
    accepted = api.post(sync_url, HTTP_X_CSRFTOKEN=api.cookies["csrftoken"].value)

    assert refused.status_code == 403
    assert refused.json() == {"detail": "CSRF Failed: CSRF cookie not set."}
    assert browsable.status_code == 200
    assert browsable["Content-Type"].startswith("text/html")
    assert accepted.status_code == 202


def test_token_writes_skip_csrf(synced_tenant, admin):
    api = APIClient(enforce_csrf_checks=True)
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin).key}")

    response = api.post(f"/api/v1/tenants/{synced_tenant.pk}/sync/")

    assert response.status_code == 202


def test_session_auth(api, synced_tenant, admin):
    assert api.login(username="admin", password=PASSWORD)

    response = api.get(f"/api/v1/tenants/{synced_tenant.pk}/")

    assert response.status_code == 200


def test_sync_after_assignment_keeps_interval(admin_api, synced_tenant, sales, admin, free_sku):
    member = candidates(sales, free_sku)[0]
    set_allotment(acting_user=admin, pool=sales, sku=free_sku, seats=100)
    admin_api.post(licenses_url(sales, member), {"skuId": str(free_sku.sku_id)}, format="json")

    sync_now(synced_tenant)

    intervals = member.license_intervals.filter(sku=free_sku)
    assert intervals.count() == 1
    assert intervals.get().ended_at is None
    assert intervals.get().pool == sales


def test_api_docs_served_without_cdn(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("reader"))

    body = client.get("/api/docs/").content.decode()

    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in body
    assert "cdn." not in body
    assert "https://" not in body


def test_server_error_json_under_api(rf):
    from licensepools.api_errors import bad_request, server_error

    api_error = server_error(rf.get("/api/v1/tenants/"))
    page_error = server_error(rf.get("/pools/1/"))
    api_bad_request = bad_request(rf.get("/api/v1/tenants/"), Exception("Invalid HTTP_HOST header"))

    assert api_error.status_code == 500
    assert api_error["Content-Type"] == "application/json"
    assert json.loads(api_error.content) == {
        "detail": "The server failed to handle the request. Try again; if it fails again, tell the administrator."
    }
    assert page_error.status_code == 500
    assert page_error["Content-Type"].startswith("text/html")
    assert api_bad_request.status_code == 400
    assert json.loads(api_bad_request.content) == {
        "detail": "The request is invalid. Check its headers and body against the schema at /api/schema/."
    }
