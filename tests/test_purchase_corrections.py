"""Purchase corrections: voiding keeps the row marked and lowers the allotment, and a likely duplicate
without an order reference needs confirmation."""
from __future__ import annotations

import csv
import io

import pytest
from rest_framework.test import APIClient

from graphsync.models import DirectoryUser, UserLicense
from pools.choices import AuditAction
from pools.models import AuditEvent, Purchase
from pools.purchases import LikelyDuplicatePurchase, PurchaseError, record_purchase, void_purchase
from pools.services import set_allotment
from pools.stock import holders
from tests.test_purchases import (  # noqa: F401 (fixtures)
    admin, emulator_snapshot, germany, login, purchase_input, scheme, seats, sku, us, us_sales,
)


# Voiding


def allot_in_use(admin, pool, sku_) -> int:
    """Allot the pool as many seats of the SKU as its users hold, so that voiding a purchase can lower it."""
    in_use = holders(pool.tenant, sku_, pool.subtree_ids())
    set_allotment(acting_user=admin, pool=pool, sku=sku_, seats=in_use)
    return in_use


def test_void_lowers_allotment_and_keeps_row(synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    in_use = allot_in_use(admin, us, flow)
    purchase = record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=10))

    voided = void_purchase(acting_user=admin, purchase=purchase, reason="Typed 10 instead of 1")

    assert seats(us, flow) == in_use
    assert voided.is_voided
    assert voided.voided_by == admin
    assert Purchase.objects.get().void_reason == "Typed 10 instead of 1"
    event = AuditEvent.objects.get(action=AuditAction.PURCHASE_VOIDED)
    assert event.actor == admin
    assert event.before == {"purchase": purchase.pk, "voided": False, "allotment": in_use + 10}
    assert event.after["allotment"] == in_use
    assert event.after["reason"] == "Typed 10 instead of 1"


def test_void_twice_rejected(synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    in_use = allot_in_use(admin, us, flow)
    purchase = record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=10))
    void_purchase(acting_user=admin, purchase=purchase, reason="Duplicate")

    with pytest.raises(PurchaseError) as caught:
        void_purchase(acting_user=admin, purchase=purchase, reason="Again")

    assert caught.value.message == f"Purchase {purchase.pk} is already voided."
    assert seats(us, flow) == in_use


def test_void_needs_reason(synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    purchase = record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=10))

    with pytest.raises(PurchaseError) as caught:
        void_purchase(acting_user=admin, purchase=purchase, reason="  ")

    assert caught.value.message == f"Give a reason for voiding purchase {purchase.pk}; the ledger shows it."
    assert seats(us, flow) == 10


def test_void_below_consumption_rejected(synced_tenant, admin, us):
    e3 = sku(synced_tenant, "SPE_E3")
    in_use = allot_in_use(admin, us, e3)
    purchase = record_purchase(acting_user=admin, data=purchase_input(us, e3, quantity=1))
    newcomer = DirectoryUser.objects.filter(pool__in=us.subtree_ids(), is_deleted=False).exclude(
        licenses__sku=e3
    ).first()
    UserLicense.objects.create(tenant=synced_tenant, user=newcomer, sku=e3, state="Active")

    with pytest.raises(PurchaseError) as caught:
        void_purchase(acting_user=admin, purchase=purchase, reason="Wrong pool")

    assert caught.value.message == (
        f"Cannot void purchase {purchase.pk} of 1 seats of {e3.name}: US would keep {in_use} seats, but its users "
        f"hold {in_use + 1}. Revoke or reclaim 1 licenses first."
    )
    assert not Purchase.objects.get(pk=purchase.pk).is_voided
    assert seats(us, e3) == in_use + 1


def test_void_after_allotment_lowered_rejected(synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    purchase = record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=10))
    set_allotment(acting_user=admin, pool=us, sku=flow, seats=4)

    with pytest.raises(PurchaseError) as caught:
        void_purchase(acting_user=admin, purchase=purchase, reason="Duplicate")

    assert "US has 4 seats allotted, fewer than the 10 the purchase added" in caught.value.message
    assert seats(us, flow) == 4


def test_void_frees_order_reference(synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    in_use = allot_in_use(admin, us, flow)
    purchase = record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=10))
    void_purchase(acting_user=admin, purchase=purchase, reason="Wrong quantity")

    record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=1))

    assert seats(us, flow) == in_use + 1


def test_ledger_page_voids_and_marks(client, synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    purchase = record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=10))
    kept = record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=3, order_reference="PO-2"))
    login(client, admin)

    ledger = client.get(f"/tenants/{synced_tenant.pk}/purchases/").content.decode()
    assert f'action="/purchases/{purchase.pk}/void/"' in ledger
    response = client.post(f"/purchases/{purchase.pk}/void/", {"reason": "Duplicate of PO-2"}, follow=True)

    page = response.content.decode()
    assert f"Voided purchase {purchase.pk} and lowered the allotment of US by 10 seats of {flow.name}." in page
    assert f'<tr id="purchase-{purchase.pk}" class="voided">' in page
    assert "Duplicate of PO-2" in page
    assert f'action="/purchases/{purchase.pk}/void/"' not in page
    assert f'action="/purchases/{kept.pk}/void/"' in page
    assert [total.quantity for total in response.context["totals_by_sku"]] == [3]
    assert seats(us, flow) == 3
    export = client.get(f"/tenants/{synced_tenant.pk}/purchases/export.csv").content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(export)))
    assert rows[0][-3:] == ["Voided at", "Voided by", "Reason for voiding"]
    assert rows[1][-2:] == ["admin", "Duplicate of PO-2"]


def test_void_needs_tenant_admin(client, synced_tenant, admin, us, make_portal_user):
    flow = sku(synced_tenant, "FLOW_FREE")
    purchase = record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=10))
    finance = make_portal_user("finance", role="finance", tenant=synced_tenant)
    login(client, finance)

    assert client.post(f"/purchases/{purchase.pk}/void/", {"reason": "No"}).status_code == 404
    api = APIClient()
    api.force_authenticate(finance)
    assert api.post(f"/api/v1/purchases/{purchase.pk}/void/", {"reason": "No"}, format="json").status_code == 404
    assert not Purchase.objects.get().is_voided


def test_api_void(synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    allot_in_use(admin, us, flow)
    purchase = record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=10))
    api = APIClient()
    api.force_authenticate(admin)

    voided = api.post(f"/api/v1/purchases/{purchase.pk}/void/", {"reason": "Duplicate"}, format="json")
    again = api.post(f"/api/v1/purchases/{purchase.pk}/void/", {"reason": "Duplicate"}, format="json")

    assert voided.status_code == 200
    assert voided.json()["voidReason"] == "Duplicate"
    assert voided.json()["voidedBy"] == "admin"
    assert again.status_code == 409
    assert again.json()["detail"] == f"Purchase {purchase.pk} is already voided."


# Likely duplicates


def test_identical_purchase_needs_confirmation(synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    first = record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=2, order_reference=""))

    with pytest.raises(LikelyDuplicatePurchase) as caught:
        record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=2, order_reference=""))

    assert caught.value.message.startswith(f"Purchase {first.pk}, recorded at ")
    assert "by admin, has the same SKU, pool, seats, date and unit price." in caught.value.message
    assert seats(us, flow) == 2
    record_purchase(
        acting_user=admin, data=purchase_input(us, flow, quantity=2, order_reference=""), confirm_duplicate=True
    )
    assert seats(us, flow) == 4


def test_different_quantity_not_duplicate(synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=2, order_reference=""))

    record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=3, order_reference=""))

    assert seats(us, flow) == 5


def test_purchase_page_asks_confirmation(client, synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    login(client, admin)
    body = {"sku": flow.pk, "pool": us.pk, "quantity": 2, "purchased_on": "2025-02-01", "unit_price": "1.50",
            "currency": "", "term": "P1M", "order_reference": "", "subscription": ""}

    client.post(f"/tenants/{synced_tenant.pk}/purchases/new/", body)
    repeated = client.post(f"/tenants/{synced_tenant.pk}/purchases/new/", body)
    assert repeated.status_code == 200
    assert "has the same SKU, pool, seats, date and unit price" in repeated.content.decode()
    assert Purchase.objects.count() == 1

    confirmed = client.post(f"/tenants/{synced_tenant.pk}/purchases/new/", {**body, "confirm_duplicate": "on"})
    assert confirmed.status_code == 302
    assert Purchase.objects.count() == 2


def test_api_duplicate_needs_confirmation(synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    api = APIClient()
    api.force_authenticate(admin)
    body = {"pool": us.pk, "skuId": str(flow.sku_id), "quantity": 2, "purchasedOn": "2025-03-01", "unitPrice": "4.20"}

    assert api.post("/api/v1/purchases/", body, format="json").status_code == 201
    repeated = api.post("/api/v1/purchases/", body, format="json")
    confirmed = api.post("/api/v1/purchases/", {**body, "confirmDuplicate": True}, format="json")

    assert repeated.status_code == 400
    assert "has the same SKU, pool, seats, date and unit price" in repeated.json()["detail"]
    assert confirmed.status_code == 201
