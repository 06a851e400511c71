"""The purchase ledger: recording raises allotments within the tenant's stock, links commerce subscriptions,
and the ledger pages, CSV export and API are scoped like the rest of the portal."""
from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.http import Http404
from django.utils import timezone
from rest_framework.test import APIClient

from graphsync.models import Sku, Subscription
from pools.choices import AuditAction, PoolAttribute, PurchaseTerm
from pools.models import Allotment, AuditEvent, Pool, Purchase
from pools.purchases import PurchaseError, PurchaseInput, link_subscription, match_subscription, record_purchase
from pools.services import set_allotment, set_scheme
from pools.capacity import describe_reserve
from pools.stock import central_reserve, holders

PASSWORD = "correct-horse-42"
# The EMS subscriptions get one creation date so that a purchase on that date matches both.
SHARED_EMS_DATE = "2024-03-04T09:00:00Z"


@pytest.fixture
def emulator_snapshot():
    from graphsync.emulator.generator import generate_tenant

    snapshot = generate_tenant(users=200, seed=11)
    for subscription in snapshot["subscriptions"]:
        if subscription["skuPartNumber"] == "EMS":
            subscription["createdDateTime"] = SHARED_EMS_DATE
    return snapshot


@pytest.fixture
def admin(make_portal_user, synced_tenant):
    user = make_portal_user("admin", role="tenant_admin", tenant=synced_tenant)
    user.email = "admin@example.com"
    user.save(update_fields=["email"])
    return user


@pytest.fixture
def scheme(synced_tenant, admin, require_postgresql):
    set_scheme(
        acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.COUNTRY,
        level2_attribute=PoolAttribute.DEPARTMENT,
    )


@pytest.fixture
def us(synced_tenant, scheme) -> Pool:
    return Pool.objects.get(tenant=synced_tenant, parent=None, key="us")


@pytest.fixture
def us_sales(us) -> Pool:
    return Pool.objects.get(parent=us, key="sales")


@pytest.fixture
def germany(synced_tenant, scheme) -> Pool:
    return Pool.objects.get(tenant=synced_tenant, parent=None, key="de")


def sku(tenant, part_number: str) -> Sku:
    return Sku.objects.get(tenant=tenant, part_number=part_number)


def seats(pool: Pool, sku_: Sku) -> int | None:
    allotment = Allotment.objects.filter(pool=pool, sku=sku_).first()
    return allotment.seats if allotment else None


def purchase_input(pool, sku_, quantity=10, **overrides) -> PurchaseInput:
    values = {
        "sku": sku_, "pool": pool, "quantity": quantity, "purchased_on": dt.date(2025, 1, 15),
        "unit_price": Decimal("33.75"), "currency": "", "term": PurchaseTerm.ANNUAL, "order_reference": "PO-1001",
    }
    values.update(overrides)
    return PurchaseInput(**values)


# Recording


def test_purchase_raises_level1_allotment(synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    set_allotment(acting_user=admin, pool=us, sku=flow, seats=5)

    purchase = record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=10))

    assert seats(us, flow) == 15
    assert purchase.currency == "EUR"
    assert purchase.recorded_by == admin
    event = AuditEvent.objects.get(action=AuditAction.PURCHASE_RECORDED)
    assert event.actor == admin
    assert event.pool == us
    assert event.before == {"allotments": {str(us.pk): 5}}
    assert event.after["allotments"] == {str(us.pk): 15}
    assert event.after["quantity"] == 10
    assert event.after["orderReference"] == "PO-1001"


def test_purchase_creates_missing_allotment(synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")

    record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=4))

    assert seats(us, flow) == 4


def test_level2_purchase_raises_parent_if_needed(synced_tenant, admin, us, us_sales):
    flow = sku(synced_tenant, "FLOW_FREE")
    set_allotment(acting_user=admin, pool=us, sku=flow, seats=20)
    set_allotment(acting_user=admin, pool=us_sales, sku=flow, seats=15)

    record_purchase(acting_user=admin, data=purchase_input(us_sales, flow, quantity=3))
    assert seats(us_sales, flow) == 18
    assert seats(us, flow) == 20  # The parent's 20 still cover its children's 18.

    record_purchase(acting_user=admin, data=purchase_input(us_sales, flow, quantity=7, order_reference="PO-1002"))
    assert seats(us_sales, flow) == 25
    assert seats(us, flow) == 25


def test_level2_without_allotment_raises_parent(synced_tenant, admin, us, us_sales):
    flow = sku(synced_tenant, "FLOW_FREE")
    set_allotment(acting_user=admin, pool=us, sku=flow, seats=20)

    purchase = record_purchase(acting_user=admin, data=purchase_input(us_sales, flow, quantity=6))

    assert purchase.pool == us_sales
    assert seats(us_sales, flow) is None
    assert seats(us, flow) == 26


def test_purchase_beyond_reserve_rejected(synced_tenant, admin, us, germany):
    e3 = sku(synced_tenant, "SPE_E3")
    us_holders = holders(synced_tenant, e3, us.subtree_ids())
    germany_holders = holders(synced_tenant, e3, germany.subtree_ids())
    set_allotment(acting_user=admin, pool=us, sku=e3, seats=us_holders + 5)
    room = central_reserve(synced_tenant, e3).seats
    set_allotment(acting_user=admin, pool=germany, sku=e3, seats=germany_holders + room - 3)
    central = central_reserve(synced_tenant, e3)
    assert central.seats == 3

    with pytest.raises(PurchaseError) as caught:
        record_purchase(acting_user=admin, data=purchase_input(us, e3, quantity=4))

    assert caught.value.message == (
        f"Cannot record 4 seats of {e3.name} for US: this needs 4 seats from the central reserve, which has 3: "
        f"{describe_reserve(central)}. If the seats were just bought, run a sync after the purchase shows up in "
        "Microsoft 365, then record it again."
    )
    assert seats(us, e3) == us_holders + 5
    assert not Purchase.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.PURCHASE_RECORDED).exists()


def test_purchase_fits_after_sync(emulator, synced_tenant, admin, us, germany):
    from conftest import sync_now
    from tests.test_assignment import control

    e3 = sku(synced_tenant, "SPE_E3")
    us_holders = holders(synced_tenant, e3, us.subtree_ids())
    germany_holders = holders(synced_tenant, e3, germany.subtree_ids())
    set_allotment(acting_user=admin, pool=us, sku=e3, seats=us_holders)
    room = central_reserve(synced_tenant, e3).seats
    set_allotment(acting_user=admin, pool=germany, sku=e3, seats=germany_holders + room)
    assert central_reserve(synced_tenant, e3).seats == 0
    with pytest.raises(PurchaseError):
        record_purchase(acting_user=admin, data=purchase_input(us, e3, quantity=10))

    enabled = e3.enabled_units + 10
    control(
        emulator, "POST", f"tenants/{synced_tenant.tenant_id}/skus/{e3.sku_id}", json={"prepaidUnits": {"enabled": enabled}}
    )
    sync_now(synced_tenant)
    record_purchase(acting_user=admin, data=purchase_input(us, e3.__class__.objects.get(pk=e3.pk), quantity=10))

    assert seats(us, e3) == us_holders + 10


def test_purchase_input_validated(synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    cases = [
        ({"currency": "E1"},
         'The currency "E1" is not an ISO 4217 currency code. Enter a current code such as EUR or USD.'),
        ({"currency": "EUX"},
         'The currency "EUX" is not an ISO 4217 currency code. Enter a current code such as EUR or USD.'),
        ({"quantity": 0}, "The quantity must be at least 1; 0 was given."),
        ({"unit_price": Decimal("-1")}, "The unit price cannot be negative; -1 was given."),
        ({"purchased_on": tomorrow},
         f"The purchase date {tomorrow.isoformat()} is in the future. Record a purchase once it has been made."),
        ({"term": "P2Y"}, "The term P2Y is unknown; use one of P1M, P1Y, P3Y."),
        ({"currency": "XAU"},
         '"XAU" is an ISO 4217 code for a precious metal, a unit of account, testing or "no currency", and no price '
         "can be paid in it. Enter a currency code such as EUR or USD."),
        ({"purchased_on": dt.date(1899, 1, 1)},
         "Purchase date: 1899-01-01 is outside the allowed range. Enter a date from 2000-01-01 to "
         f"{timezone.localdate().isoformat()}."),
    ]
    for overrides, message in cases:
        values = {"quantity": 1, **overrides}
        with pytest.raises(PurchaseError) as caught:
            record_purchase(acting_user=admin, data=purchase_input(us, flow, **values))
        assert caught.value.message == message
    assert not Purchase.objects.exists()


def test_purchase_needs_tenant_admin(synced_tenant, us, make_portal_user):
    manager = make_portal_user("manager", role="pool_manager", pool=us)
    flow = sku(synced_tenant, "FLOW_FREE")

    with pytest.raises(Http404):
        record_purchase(acting_user=manager, data=purchase_input(us, flow, quantity=1))


# Commerce subscriptions


def test_subscription_matched_by_date(synced_tenant, admin, us):
    e3 = sku(synced_tenant, "SPE_E3")
    paid = Subscription.objects.get(tenant=synced_tenant, sku_id=e3.sku_id, is_trial=False)
    near = timezone.localdate(paid.created_at_graph) + dt.timedelta(days=2)

    purchase = record_purchase(acting_user=admin, data=purchase_input(us, e3, quantity=1, purchased_on=near))

    assert purchase.subscription == paid


def test_subscription_matched_by_total(synced_tenant, admin, us):
    e3 = sku(synced_tenant, "SPE_E3")
    paid = Subscription.objects.get(tenant=synced_tenant, sku_id=e3.sku_id, is_trial=False)

    assert match_subscription(synced_tenant, e3, dt.date(2025, 6, 1), paid.total_licenses) == paid
    assert match_subscription(synced_tenant, e3, dt.date(2025, 6, 1), paid.total_licenses + 1) is None


def test_trial_never_matched(synced_tenant):
    e3 = sku(synced_tenant, "SPE_E3")
    trial = Subscription.objects.get(tenant=synced_tenant, sku_id=e3.sku_id, is_trial=True)

    assert match_subscription(synced_tenant, e3, timezone.localdate(trial.created_at_graph), 25) is None


def test_ambiguous_subscription_left_unlinked(synced_tenant, admin, us):
    ems = sku(synced_tenant, "EMS")
    assert Subscription.objects.filter(tenant=synced_tenant, sku_id=ems.sku_id).count() == 2

    purchase = record_purchase(
        acting_user=admin, data=purchase_input(us, ems, quantity=1, purchased_on=dt.date(2024, 3, 4))
    )

    assert purchase.subscription is None


def test_admin_links_subscription(synced_tenant, admin, us):
    ems = sku(synced_tenant, "EMS")
    purchase = record_purchase(
        acting_user=admin, data=purchase_input(us, ems, quantity=1, purchased_on=dt.date(2024, 3, 4))
    )
    chosen = Subscription.objects.filter(tenant=synced_tenant, sku_id=ems.sku_id).order_by("total_licenses").first()

    link_subscription(acting_user=admin, purchase=purchase, subscription=chosen)

    purchase.refresh_from_db()
    assert purchase.subscription == chosen
    event = AuditEvent.objects.get(action=AuditAction.PURCHASE_LINKED)
    assert event.before == {"purchase": purchase.pk, "subscription": None}
    assert event.after == {"purchase": purchase.pk, "subscription": chosen.subscription_id}


def test_subscription_of_other_sku_rejected(synced_tenant, admin, us):
    ems = sku(synced_tenant, "EMS")
    e3_subscription = Subscription.objects.get(tenant=synced_tenant, part_number="SPE_E3", is_trial=False)

    with pytest.raises(PurchaseError) as caught:
        record_purchase(acting_user=admin, data=purchase_input(us, ems, quantity=1), subscription=e3_subscription)

    assert caught.value.message == (
        f"The subscription {e3_subscription.subscription_id} is for SPE_E3, not {ems.name}. Choose a subscription "
        f"of {ems.name}."
    )


# Pages


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_record_purchase_page(client, synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    login(client, admin)

    response = client.post(
        f"/tenants/{synced_tenant.pk}/purchases/new/",
        {"sku": flow.pk, "pool": us.pk, "quantity": 12, "purchased_on": "2025-02-01", "unit_price": "1.50",
         "currency": "usd", "term": "P1M", "order_reference": "=HYPERLINK(1)", "subscription": ""},
        follow=True,
    )

    assert response.status_code == 200
    purchase = Purchase.objects.get()
    assert purchase.currency == "USD"
    assert seats(us, flow) == 12
    assert f"Recorded 12 seats of {flow.name} for US." in response.content.decode()


def test_record_purchase_page_shows_refusal(client, synced_tenant, admin, us):
    e3 = sku(synced_tenant, "SPE_E3")
    login(client, admin)

    response = client.post(
        f"/tenants/{synced_tenant.pk}/purchases/new/",
        {"sku": e3.pk, "pool": us.pk, "quantity": 500, "purchased_on": "2025-02-01", "unit_price": "1",
         "currency": "", "term": "P1Y", "order_reference": "", "subscription": ""},
    )

    assert response.status_code == 200
    assert f"Cannot record 500 seats of {e3.name} for US: this needs" in response.content.decode()
    assert "seats from the central reserve, which has" in response.content.decode()
    assert not Purchase.objects.exists()


def test_ledger_filters_and_totals(client, synced_tenant, admin, us, us_sales, germany):
    flow, e3 = sku(synced_tenant, "FLOW_FREE"), sku(synced_tenant, "SPE_E3")
    record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=10, unit_price=Decimal("2")))
    record_purchase(
        acting_user=admin,
        data=purchase_input(us_sales, flow, quantity=5, unit_price=Decimal("2"), order_reference="PO-1002"),
    )
    record_purchase(acting_user=admin, data=purchase_input(germany, e3, quantity=3, order_reference="DE-7"))
    login(client, admin)

    everything = client.get(f"/tenants/{synced_tenant.pk}/purchases/")
    assert everything.status_code == 200
    assert len(everything.context["page"]) == 3
    by_pool = {total.label: (total.quantity, total.amounts) for total in everything.context["totals_by_pool"]}
    assert by_pool == {
        "DE": (3, [("EUR", Decimal("101.2500"))]),
        "US": (10, [("EUR", Decimal("20.0000"))]),
        "US / Sales": (5, [("EUR", Decimal("10.0000"))]),
    }
    by_sku = {total.label: total.quantity for total in everything.context["totals_by_sku"]}
    assert by_sku == {flow.name: 15, e3.name: 3}

    us_only = client.get(f"/tenants/{synced_tenant.pk}/purchases/", {"pool": us.pk})
    assert {purchase.pool for purchase in us_only.context["page"]} == {us, us_sales}

    e3_only = client.get(f"/tenants/{synced_tenant.pk}/purchases/", {"sku": e3.pk})
    assert [purchase.order_reference for purchase in e3_only.context["page"]] == ["DE-7"]


def test_ledger_shows_unit_price_as_stored(client, synced_tenant, admin, us, us_sales):
    flow = sku(synced_tenant, "FLOW_FREE")
    record_purchase(acting_user=admin, data=purchase_input(us_sales, flow, quantity=3, unit_price=Decimal("0.001")))
    login(client, admin)

    ledger = client.get(f"/tenants/{synced_tenant.pk}/purchases/").content.decode()
    pool_ledger = client.get(f"/pools/{us.pk}/purchases/").content.decode()

    assert '<td class="number">0.001 EUR</td>' in ledger
    assert '<td class="number">0.001 EUR</td>' in pool_ledger
    assert "0.003 EUR" in ledger
    assert "0.00 EUR" not in ledger
    assert "0.00 EUR" not in pool_ledger


def test_ledger_csv_export(client, synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=2, order_reference="=SUM(A1:A9)"))
    record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=3, order_reference="-7"))
    login(client, admin)

    response = client.get(f"/tenants/{synced_tenant.pk}/purchases/export.csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    body = response.content.decode("utf-8")
    assert body.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(body.removeprefix("\ufeff"))))
    assert rows[0][:5] == ["Purchase date", "Pool", "SKU", "Product", "Seats"]
    assert [row[8] for row in rows[1:]] == ["'=SUM(A1:A9)", "'-7"]
    assert [row[4] for row in rows[1:]] == ["2", "3"]
    assert rows[1][5] == "33.7500"


def test_pool_manager_sees_own_pool_ledger(client, synced_tenant, admin, us, us_sales, germany, make_portal_user):
    flow = sku(synced_tenant, "FLOW_FREE")
    record_purchase(acting_user=admin, data=purchase_input(us_sales, flow, quantity=4))
    record_purchase(acting_user=admin, data=purchase_input(germany, flow, quantity=9, order_reference="PO-1002"))
    manager = make_portal_user("manager", role="pool_manager", pool=us)
    login(client, manager)

    own = client.get(f"/pools/{us.pk}/purchases/")
    assert own.status_code == 200
    assert [purchase.quantity for purchase in own.context["purchases"]] == [4]
    assert client.get(f"/pools/{germany.pk}/purchases/").status_code == 404
    assert client.get(f"/tenants/{synced_tenant.pk}/purchases/").status_code == 404
    assert client.get(f"/tenants/{synced_tenant.pk}/purchases/export.csv").status_code == 404
    assert client.get(f"/tenants/{synced_tenant.pk}/purchases/new/").status_code == 404


def test_auditor_reads_ledger_only(client, synced_tenant, us, make_portal_user):
    auditor = make_portal_user("auditor", role="auditor", tenant=synced_tenant)
    login(client, auditor)

    assert client.get(f"/tenants/{synced_tenant.pk}/purchases/").status_code == 200
    assert client.get(f"/tenants/{synced_tenant.pk}/purchases/new/").status_code == 404


def test_link_page_sets_subscription(client, synced_tenant, admin, us):
    ems = sku(synced_tenant, "EMS")
    purchase = record_purchase(
        acting_user=admin, data=purchase_input(us, ems, quantity=1, purchased_on=dt.date(2024, 3, 4))
    )
    chosen = Subscription.objects.filter(tenant=synced_tenant, sku_id=ems.sku_id).first()
    e3_subscription = Subscription.objects.get(tenant=synced_tenant, part_number="SPE_E3", is_trial=False)
    login(client, admin)

    ledger = client.get(f"/tenants/{synced_tenant.pk}/purchases/")
    assert f'action="/purchases/{purchase.pk}/link/"' in ledger.content.decode()
    client.post(f"/purchases/{purchase.pk}/link/", {"subscription": e3_subscription.pk})
    purchase.refresh_from_db()
    assert purchase.subscription is None
    client.post(f"/purchases/{purchase.pk}/link/", {"subscription": chosen.pk})
    purchase.refresh_from_db()
    assert purchase.subscription == chosen


# API


def test_api_purchases(synced_tenant, admin, us, germany, make_portal_user):
    flow = sku(synced_tenant, "FLOW_FREE")
    api = APIClient()
    api.force_authenticate(admin)

    created = api.post(
        "/api/v1/purchases/",
        {"pool": us.pk, "skuId": str(flow.sku_id), "quantity": 7, "purchasedOn": "2025-03-01", "unitPrice": "4.20",
         "term": "P1M", "orderReference": "API-1"},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["quantity"] == 7
    assert created.json()["currency"] == "EUR"
    assert seats(us, flow) == 7
    record_purchase(acting_user=admin, data=purchase_input(germany, flow, quantity=2))

    listed = api.get("/api/v1/purchases/", {"tenant": synced_tenant.pk})
    assert listed.json()["count"] == 2
    assert api.get("/api/v1/purchases/", {"pool": us.pk}).json()["count"] == 1

    manager = make_portal_user("manager", role="pool_manager", pool=us)
    api.force_authenticate(manager)
    assert [item["orderReference"] for item in api.get("/api/v1/purchases/").json()["results"]] == ["API-1"]
    refused = api.post(
        "/api/v1/purchases/",
        {"pool": us.pk, "skuId": str(flow.sku_id), "quantity": 1, "purchasedOn": "2025-03-01", "unitPrice": "1"},
        format="json",
    )
    assert refused.status_code == 404


def test_api_purchase_rejected(synced_tenant, admin, us):
    e3 = sku(synced_tenant, "SPE_E3")
    api = APIClient()
    api.force_authenticate(admin)

    response = api.post(
        "/api/v1/purchases/",
        {"pool": us.pk, "skuId": str(e3.sku_id), "quantity": 129, "purchasedOn": "2025-03-01", "unitPrice": "1"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"Cannot record 129 seats of {e3.name} for US:")


def test_api_purchase_unknown_currency(synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    api = APIClient()
    api.force_authenticate(admin)

    response = api.post(
        "/api/v1/purchases/",
        {"pool": us.pk, "skuId": str(flow.sku_id), "quantity": 1, "purchasedOn": "2025-03-01", "unitPrice": "1",
         "currency": "EUX"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {
        "currency": ['"EUX" is not an ISO 4217 currency code. Enter a current code such as EUR or USD.']
    }
    assert not Purchase.objects.exists()


def test_api_purchase_date_out_of_range(synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    api = APIClient()
    api.force_authenticate(admin)
    today = timezone.localdate().isoformat()

    for purchased_on in ["1899-01-01", "2999-01-01"]:
        response = api.post(
            "/api/v1/purchases/",
            {"pool": us.pk, "skuId": str(flow.sku_id), "quantity": 1, "purchasedOn": purchased_on, "unitPrice": "1"},
            format="json",
        )

        assert response.status_code == 400
        assert response.json() == {
            "purchasedOn": [
                f"{purchased_on} is outside the allowed range. Enter a date from 2000-01-01 to {today}."
            ]
        }
    assert not Purchase.objects.exists()


def test_api_purchase_currency_not_money(synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    api = APIClient()
    api.force_authenticate(admin)

    response = api.post(
        "/api/v1/purchases/",
        {"pool": us.pk, "skuId": str(flow.sku_id), "quantity": 1, "purchasedOn": "2025-03-01", "unitPrice": "1",
         "currency": "XXX"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {
        "currency": [
            '"XXX" is an ISO 4217 code for a precious metal, a unit of account, testing or "no currency", and no '
            "price can be paid in it. Enter a currency code such as EUR or USD."
        ]
    }
    assert not Purchase.objects.exists()


def test_purchase_page_names_bad_field(client, synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    login(client, admin)

    response = client.post(
        f"/tenants/{synced_tenant.pk}/purchases/new/",
        {"sku": flow.pk, "pool": us.pk, "quantity": "abc", "purchased_on": "2025-02-01", "unit_price": "1",
         "currency": "XYZ", "term": "P1Y", "order_reference": "", "subscription": ""},
    )

    page = response.content.decode()
    assert "Seats: &quot;abc&quot; is not a whole number." in page
    assert "Currency: &quot;XYZ&quot; is not an ISO 4217 currency code." in page
    assert not Purchase.objects.exists()


# Order references


def test_duplicate_order_reference_rejected(synced_tenant, admin, us, germany):
    flow = sku(synced_tenant, "FLOW_FREE")
    first = record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=4, order_reference="PO-77"))

    with pytest.raises(PurchaseError) as caught:
        record_purchase(acting_user=admin, data=purchase_input(germany, flow, quantity=4, order_reference=" po-77 "))

    assert caught.value.message == (
        f"The order reference “po-77” is already recorded for this tenant: purchase {first.pk} of 4 seats of "
        f"{flow.name} on 2025-01-15. Each order is recorded once. If this is a different order, enter its own "
        "reference; if the existing purchase is wrong, void it in the ledger and record the order again."
    )
    assert Purchase.objects.count() == 1
    assert seats(germany, flow) is None


def test_empty_order_references_may_repeat(synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=2, order_reference=""))
    record_purchase(
        acting_user=admin, data=purchase_input(us, flow, quantity=2, order_reference="  "), confirm_duplicate=True
    )

    assert Purchase.objects.count() == 2
    assert seats(us, flow) == 4


def test_concurrent_duplicate_reference_rejected(synced_tenant, admin, us, monkeypatch):
    """A submit that passed the check before another one committed is stopped by the unique index."""
    flow = sku(synced_tenant, "FLOW_FREE")
    first = record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=3, order_reference="PO-9"))
    import pools.purchases as purchases_module

    check = purchases_module._check_order_reference
    calls = []

    def check_after_first_call(tenant, reference):
        calls.append(reference)
        if len(calls) > 1:
            check(tenant, reference)

    monkeypatch.setattr(purchases_module, "_check_order_reference", check_after_first_call)
    with pytest.raises(PurchaseError) as caught:
        record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=3, order_reference="PO-9"))

    assert f"purchase {first.pk} of 3 seats" in caught.value.message
    assert Purchase.objects.count() == 1
    assert seats(us, flow) == 3


def test_resubmitted_purchase_page_records_once(client, synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    login(client, admin)
    form = {"sku": flow.pk, "pool": us.pk, "quantity": 6, "purchased_on": "2025-02-01", "unit_price": "2",
            "currency": "", "term": "P1Y", "order_reference": "PO-555", "subscription": ""}

    client.post(f"/tenants/{synced_tenant.pk}/purchases/new/", form)
    again = client.post(f"/tenants/{synced_tenant.pk}/purchases/new/", form)

    assert again.status_code == 200
    assert "The order reference “PO-555” is already recorded" in again.content.decode()
    assert Purchase.objects.count() == 1
    assert seats(us, flow) == 6


def test_api_repeated_order_reference_rejected(synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    api = APIClient()
    api.force_authenticate(admin)
    body = {"pool": us.pk, "skuId": str(flow.sku_id), "quantity": 2, "purchasedOn": "2025-03-01", "unitPrice": "1",
            "orderReference": "API-2"}

    assert api.post("/api/v1/purchases/", body, format="json").status_code == 201
    again = api.post("/api/v1/purchases/", {**body, "orderReference": "api-2"}, format="json")

    assert again.status_code == 400
    assert again.json()["detail"].startswith("The order reference “api-2” is already recorded for this tenant")
    assert Purchase.objects.count() == 1
