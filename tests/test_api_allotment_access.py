"""REST API: who gets 403 or 404 on allotment changes, and the page and page_size parameters of list endpoints."""
from __future__ import annotations

import pytest
import yaml
from rest_framework.test import APIClient

from graphsync.models import Sku
from pools.choices import AuditAction
from pools.models import Allotment, AuditEvent, Pool
from pools.services import set_allotment, set_scheme
from rbac.choices import Role

FREE_SKU = "FLOW_FREE"


@pytest.fixture
def admin(synced_tenant, make_portal_user):
    return make_portal_user("admin", role=Role.TENANT_ADMIN, tenant=synced_tenant)


@pytest.fixture
def pools(synced_tenant, admin, require_postgresql) -> list[Pool]:
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute="department")
    return list(Pool.objects.filter(tenant=synced_tenant, parent=None, is_unassigned=False).order_by("key"))


@pytest.fixture
def free_sku(synced_tenant) -> Sku:
    return Sku.objects.get(tenant=synced_tenant, part_number=FREE_SKU)


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def allotment_url(pool: Pool, sku: Sku) -> str:
    return f"/api/v1/pools/{pool.pk}/allotments/{sku.sku_id}/"


# Allotment changes


def test_manager_allotment_forbidden(synced_tenant, admin, pools, free_sku, make_portal_user):
    own = pools[0]
    set_allotment(acting_user=admin, pool=own, sku=free_sku, seats=4)
    manager = make_portal_user("manager", role=Role.POOL_MANAGER, pool=own)
    events_before = AuditEvent.objects.filter(action=AuditAction.ALLOTMENT_CHANGED).count()

    response = api_as(manager).put(allotment_url(own, free_sku), {"seats": 40}, format="json")

    assert response.status_code == 403
    assert response.json() == {
        "detail": f"Only tenant administrators change allotments, and you are not one in {synced_tenant.name}. "
                  f"Ask a tenant administrator to change the allotment of pool {own}, or send a seat request."
    }
    assert Allotment.objects.get(pool=own, sku=free_sku).seats == 4
    assert AuditEvent.objects.filter(action=AuditAction.ALLOTMENT_CHANGED).count() == events_before


def test_manager_other_pool_not_found(pools, free_sku, make_portal_user):
    own, other = pools[0], pools[1]
    manager = make_portal_user("manager", role=Role.POOL_MANAGER, pool=own)

    response = api_as(manager).put(allotment_url(other, free_sku), {"seats": 1}, format="json")

    assert response.status_code == 404
    assert response.json() == {"detail": "Pool not found."}


def test_missing_pool_not_found(admin, pools, free_sku, make_portal_user):
    manager = make_portal_user("manager", role=Role.POOL_MANAGER, pool=pools[0])
    missing = Pool(pk=max(pool.pk for pool in pools) + 1000)

    response = api_as(manager).put(allotment_url(missing, free_sku), {"seats": 1}, format="json")

    assert response.status_code == 404
    assert response.json() == {"detail": "Pool not found."}


def test_admin_allotment_allowed(admin, pools, free_sku):
    response = api_as(admin).put(allotment_url(pools[0], free_sku), {"seats": 7}, format="json")

    assert response.status_code == 200
    assert Allotment.objects.get(pool=pools[0], sku=free_sku).seats == 7


# page_size on list endpoints


def test_page_size_limits_pools(admin, pools):
    response = api_as(admin).get("/api/v1/pools/", {"page_size": 2})

    assert response.status_code == 200
    body = response.json()
    assert len(body["results"]) == 2
    assert body["count"] == Pool.objects.filter(is_active=True).count()
    assert "page_size=2" in body["next"]


def test_page_size_limits_members(admin, pools):
    pool = max(pools, key=lambda candidate: candidate.members_queryset().count())

    response = api_as(admin).get(f"/api/v1/pools/{pool.pk}/users/", {"page_size": 3})

    assert response.status_code == 200
    assert len(response.json()["results"]) == 3


def test_page_size_maximum_accepted(admin, pools):
    response = api_as(admin).get("/api/v1/pools/", {"page_size": 500})

    assert response.status_code == 200


@pytest.mark.parametrize("value", ["0", "-1", "501", "abc", "1.5", "", "²"])
def test_page_size_invalid_rejected(admin, pools, value):
    response = api_as(admin).get("/api/v1/pools/", {"page_size": value})

    assert response.status_code == 400
    assert response.json() == {
        "page_size": [f'"{value}" is not a valid page_size. Send a whole number from 1 to 500.']
    }


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", "²", " "])
def test_page_invalid_rejected(admin, pools, value):
    response = api_as(admin).get("/api/v1/pools/", {"page": value})

    assert response.status_code == 400
    assert response.json() == {
        "page": [f'"{value}" is not a valid page. Send a whole number from 1, or "last" for the last page.']
    }


def test_page_beyond_last_not_found(admin, pools):
    count = Pool.objects.filter(is_active=True).count()

    response = api_as(admin).get("/api/v1/pools/", {"page": count + 1, "page_size": 1})

    assert response.status_code == 404
    assert response.json() == {
        "detail": f"Page {count + 1} does not exist: the last page is {count}. Send a page from 1 to {count}."
    }


def test_page_last_and_blank(admin, pools):
    count = Pool.objects.filter(is_active=True).count()

    last = api_as(admin).get("/api/v1/pools/", {"page": "last", "page_size": 1})
    blank = api_as(admin).get("/api/v1/pools/", {"page": "", "page_size": 1})

    assert last.status_code == 200
    assert last.json()["next"] is None
    assert f"page={count - 1}" in last.json()["previous"]
    assert blank.status_code == 200
    assert blank.json()["previous"] is None


def test_page_size_in_schema(client, admin):
    client.force_login(admin)

    schema = yaml.safe_load(client.get("/api/schema/").content)

    for path in ("/api/v1/pools/", "/api/v1/pools/{id}/users/", "/api/v1/purchases/", "/api/v1/tenants/"):
        parameters = {parameter["name"]: parameter for parameter in schema["paths"][path]["get"]["parameters"]}
        assert parameters["page_size"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}, path
        assert "from 1 to 500" in parameters["page_size"]["description"], path
