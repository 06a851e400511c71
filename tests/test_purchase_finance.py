"""Finance reads the purchase ledger (web, CSV and API) and, tenant-wide, the stock; it records nothing."""
from __future__ import annotations

from rest_framework.test import APIClient

from pools.purchases import record_purchase
from tests.test_purchases import (  # noqa: F401 (fixtures)
    admin, emulator_snapshot, germany, login, purchase_input, scheme, sku, us, us_sales,
)


def test_tenant_finance_reads_ledger(client, synced_tenant, admin, us, germany, make_portal_user):
    flow = sku(synced_tenant, "FLOW_FREE")
    record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=4))
    record_purchase(acting_user=admin, data=purchase_input(germany, flow, quantity=9, order_reference="PO-1002"))
    finance = make_portal_user("finance", role="finance", tenant=synced_tenant)
    login(client, finance)

    ledger = client.get(f"/tenants/{synced_tenant.pk}/purchases/")
    assert ledger.status_code == 200
    assert sorted(purchase.quantity for purchase in ledger.context["page"]) == [4, 9]
    assert "Record a purchase" not in ledger.content.decode()
    assert client.get(f"/tenants/{synced_tenant.pk}/purchases/export.csv").status_code == 200
    assert client.get(f"/tenants/{synced_tenant.pk}/stock/").status_code == 200
    assert client.get(f"/pools/{germany.pk}/purchases/").status_code == 200
    assert client.get(f"/tenants/{synced_tenant.pk}/purchases/new/").status_code == 404
    assert "Purchase ledger" in client.get("/").content.decode()


def test_tenant_finance_reads_api(synced_tenant, admin, us, germany, make_portal_user):
    flow = sku(synced_tenant, "FLOW_FREE")
    record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=4))
    finance = make_portal_user("finance", role="finance", tenant=synced_tenant)
    api = APIClient()
    api.force_authenticate(finance)

    listed = api.get("/api/v1/purchases/")
    assert listed.json()["count"] == 1
    refused = api.post(
        "/api/v1/purchases/",
        {"pool": us.pk, "skuId": str(flow.sku_id), "quantity": 1, "purchasedOn": "2025-03-01", "unitPrice": "1"},
        format="json",
    )
    assert refused.status_code == 404


def test_pool_finance_reads_own_pools(client, synced_tenant, admin, us, us_sales, germany, make_portal_user):
    flow = sku(synced_tenant, "FLOW_FREE")
    record_purchase(acting_user=admin, data=purchase_input(us_sales, flow, quantity=4))
    record_purchase(acting_user=admin, data=purchase_input(germany, flow, quantity=9, order_reference="PO-1002"))
    finance = make_portal_user("finance", role="finance", pool=us)
    login(client, finance)

    ledger = client.get(f"/tenants/{synced_tenant.pk}/purchases/")
    assert ledger.status_code == 200
    assert [purchase.quantity for purchase in ledger.context["page"]] == [4]
    assert "License stock" not in ledger.content.decode()
    assert client.get(f"/pools/{us.pk}/purchases/").status_code == 200
    assert client.get(f"/pools/{us_sales.pk}/purchases/").status_code == 200
    assert client.get(f"/pools/{germany.pk}/purchases/").status_code == 404
    assert client.get(f"/tenants/{synced_tenant.pk}/stock/").status_code == 404
    api = APIClient()
    api.force_authenticate(finance)
    assert [item["quantity"] for item in api.get("/api/v1/purchases/").json()["results"]] == [4]


def test_finance_of_other_tenant_sees_nothing(client, synced_tenant, admin, us, make_portal_user):
    flow = sku(synced_tenant, "FLOW_FREE")
    record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=4))
    outsider = make_portal_user("outsider")
    login(client, outsider)

    assert client.get(f"/tenants/{synced_tenant.pk}/purchases/").status_code == 404
    assert client.get(f"/tenants/{synced_tenant.pk}/stock/").status_code == 404
    assert client.get(f"/pools/{us.pk}/purchases/").status_code == 404
    api = APIClient()
    api.force_authenticate(outsider)
    assert api.get("/api/v1/purchases/").json()["count"] == 0
