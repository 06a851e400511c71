"""Allotment rules over the web form and the API: removing a level-1 allotment and lowering below use."""
from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from rest_framework.test import APIClient

from graphsync.models import Sku
from pools import stock
from pools.choices import AuditAction, Outcome
from pools.exceptions import AllotmentError
from pools.models import Allotment, AuditEvent, Pool
from pools.services import set_allotment, set_scheme
from rbac.choices import Role

# FLOW_FREE has 10,000 enabled units in generated tenants, so only pool allotments limit it.
FREE_SKU = "FLOW_FREE"


@pytest.fixture
def admin(synced_tenant, make_portal_user):
    return make_portal_user("admin", role=Role.TENANT_ADMIN, tenant=synced_tenant)


@pytest.fixture
def family(synced_tenant, admin, require_postgresql) -> tuple[Pool, Pool, Sku]:
    """A level-1 pool with the parent's and one level-2 pool's allotment of FLOW_FREE (40 and 30 seats)."""
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute="department", level2_attribute="country")
    child = (
        Pool.objects.filter(tenant=synced_tenant, parent__isnull=False, is_active=True)
        .select_related("parent")
        .order_by("parent__key", "key")
        .first()
    )
    sku = Sku.objects.get(tenant=synced_tenant, part_number=FREE_SKU)
    set_allotment(acting_user=admin, pool=child.parent, sku=sku, seats=40)
    set_allotment(acting_user=admin, pool=child, sku=sku, seats=30)
    return child.parent, child, sku


@pytest.fixture
def admin_api(admin) -> APIClient:
    api = APIClient()
    api.force_authenticate(admin)
    return api


def allotment_url(pool: Pool, sku: Sku) -> str:
    return f"/api/v1/pools/{pool.pk}/allotments/{sku.sku_id}/"


def removal_rejected_message(parent: Pool, child: Pool, sku: Sku) -> str:
    return (
        f"Cannot remove the allotment of {sku.name} from {parent}: its level-2 pools have allotments of it: "
        f"{child} (30 seats). Remove their allotments of {sku.name} first, or set a number of seats here instead."
    )


def test_service_rejects_parent_removal(family, admin):
    parent, child, sku = family

    with pytest.raises(AllotmentError) as raised:
        set_allotment(acting_user=admin, pool=parent, sku=sku, seats=None)

    assert raised.value.message == removal_rejected_message(parent, child, sku)
    assert Allotment.objects.get(pool=parent, sku=sku).seats == 40
    event = AuditEvent.objects.filter(action=AuditAction.ALLOTMENT_CHANGED).latest("pk")
    assert event.outcome == Outcome.REJECTED
    assert event.pool_id == parent.pk


def test_api_delete_parent_rejected(family, admin_api):
    parent, child, sku = family

    response = admin_api.delete(allotment_url(parent, sku))

    assert response.status_code == 400
    assert response.json() == {"detail": removal_rejected_message(parent, child, sku)}
    assert Allotment.objects.get(pool=parent, sku=sku).seats == 40


def test_api_delete_parent_after_children(family, admin_api):
    parent, child, sku = family

    child_removed = admin_api.delete(allotment_url(child, sku))
    parent_removed = admin_api.delete(allotment_url(parent, sku))

    assert child_removed.status_code == 204
    assert parent_removed.status_code == 204
    assert not Allotment.objects.filter(pool__in=[parent, child], sku=sku).exists()


def test_zero_child_allotment_blocks_removal(family, admin, admin_api):
    parent, child, sku = family
    set_allotment(acting_user=admin, pool=child, sku=sku, seats=0)

    response = admin_api.delete(allotment_url(parent, sku))

    assert response.status_code == 400
    assert f"{child} (0 seats)" in response.json()["detail"]


def test_form_remove_parent_rejected(family, admin, client):
    parent, child, sku = family
    client.force_login(admin)

    response = client.post(
        reverse("pools:pool_allot", kwargs={"pool_pk": parent.pk}),
        {"sku": sku.pk, "remove": "1", "confirm_remove": "1"},
        follow=True,
    )

    assert [str(message) for message in get_messages(response.wsgi_request)] == [removal_rejected_message(parent, child, sku)]
    assert Allotment.objects.get(pool=parent, sku=sku).seats == 40


def test_api_put_below_use_warns(synced_tenant, admin, admin_api, require_postgresql):
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute="department")
    pool, line = next(
        (pool, line)
        for pool in Pool.objects.filter(tenant=synced_tenant, parent=None, is_active=True).order_by("key")
        for line in stock.pool_lines(pool)
        if line.consumption >= 2
    )
    seats = line.consumption - 1

    response = admin_api.put(allotment_url(pool, line.sku), {"seats": seats}, format="json")

    assert response.status_code == 200
    assert response.json()["seats"] == seats
    assert response.json()["warnings"] == [
        f"{pool} already holds {line.consumption} licenses of {line.sku.name}, 1 more than the allotment. Nothing "
        "was revoked; the pool cannot assign more until licenses are revoked or the allotment is raised."
    ]
    assert Allotment.objects.get(pool=pool, sku=line.sku).seats == seats


def test_api_put_within_use_no_warnings(family, admin_api):
    parent, _child, sku = family

    response = admin_api.put(allotment_url(parent, sku), {"seats": 35}, format="json")

    assert response.status_code == 200
    assert response.json()["warnings"] == []


def test_schema_documents_warnings(client, admin):
    client.force_login(admin)

    schema = client.get("/api/schema/").content.decode()

    assert "AllotmentResult:" in schema
    assert "warnings:" in schema
