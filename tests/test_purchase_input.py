"""Purchase input: exponent notation and days that do not exist are rejected with their own messages, amounts
show the currency's minor units, and a currency other than the tenant's is kept with a warning."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.template import Context, Template
from rest_framework.test import APIClient

from pools.models import Purchase
from pools.purchases import record_purchase
from tests.test_purchases import (  # noqa: F401 (fixtures)
    admin, emulator_snapshot, germany, login, purchase_input, scheme, sku, us, us_sales,
)


def post_purchase(api, pool, sku_, **overrides):
    body = {"pool": pool.pk, "skuId": str(sku_.sku_id), "quantity": 2, "purchasedOn": "2025-03-01",
            "unitPrice": "4.20", "term": "P1M"}
    body.update(overrides)
    return api.post("/api/v1/purchases/", body, format="json")


def test_api_rejects_exponent_price(synced_tenant, admin, us):
    api = APIClient()
    api.force_authenticate(admin)

    response = post_purchase(api, us, sku(synced_tenant, "FLOW_FREE"), unitPrice="1e3")

    assert response.status_code == 400
    assert response.json()["unitPrice"] == [
        '"1e3" uses exponent notation. Send the number with digits and a decimal point, such as "1000.00".'
    ]
    assert Purchase.objects.count() == 0


def test_api_rejects_missing_day(synced_tenant, admin, us):
    api = APIClient()
    api.force_authenticate(admin)

    response = post_purchase(api, us, sku(synced_tenant, "FLOW_FREE"), purchasedOn="2026-02-30")

    assert response.status_code == 400
    assert response.json()["purchasedOn"] == ["The date 2026-02-30 does not exist. Check the day and the month."]


def test_api_wrong_date_format_kept(synced_tenant, admin, us):
    api = APIClient()
    api.force_authenticate(admin)

    response = post_purchase(api, us, sku(synced_tenant, "FLOW_FREE"), purchasedOn="01/03/2025")

    assert response.status_code == 400
    assert "wrong format" in response.json()["purchasedOn"][0]


def test_form_rejects_exponent_and_missing_day(client, synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    login(client, admin)

    response = client.post(
        f"/tenants/{synced_tenant.pk}/purchases/new/",
        {"sku": flow.pk, "pool": us.pk, "quantity": 2, "purchased_on": "2025-02-30", "unit_price": "1E3",
         "currency": "", "term": "P1M", "order_reference": "", "subscription": ""},
    )

    errors = response.context["form"].errors
    assert errors["unit_price"] == [
        'Unit price per month: "1E3" uses exponent notation. Enter the number with digits and a decimal point, '
        'such as 1000.00.'
    ]
    assert errors["purchased_on"] == [
        "Purchase date: The date 2025-02-30 does not exist. Check the day and the month."
    ]
    assert Purchase.objects.count() == 0


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("5", "JPY", "5"),
        ("1234", "JPY", "1,234"),
        ("5.5", "JPY", "5.5"),
        ("33.75", "EUR", "33.75"),
        ("5", "EUR", "5.00"),
        ("0.001", "EUR", "0.001"),
        ("1.2345", "USD", "1.2345"),
        ("2", "KWD", "2.000"),
    ],
)
def test_amount_uses_minor_units(value, currency, expected):
    template = Template("{% load chargeback_format %}{{ value|amount:currency }}")

    assert template.render(Context({"value": Decimal(value), "currency": currency})) == expected


def test_ledger_shows_jpy_without_decimals(client, synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    record_purchase(acting_user=admin, data=purchase_input(us, flow, quantity=2, unit_price=Decimal("5"), currency="JPY"))
    login(client, admin)

    ledger = client.get(f"/tenants/{synced_tenant.pk}/purchases/").content.decode()

    assert "5.00 JPY" not in ledger
    assert """<td class="number">5 <strong title="Not the tenant's currency, EUR">JPY</strong></td>""" in ledger
    assert "10 JPY" in ledger


def test_other_currency_kept_with_warning(client, synced_tenant, admin, us):
    flow = sku(synced_tenant, "FLOW_FREE")
    login(client, admin)

    response = client.post(
        f"/tenants/{synced_tenant.pk}/purchases/new/",
        {"sku": flow.pk, "pool": us.pk, "quantity": 2, "purchased_on": "2025-02-01", "unit_price": "1.50",
         "currency": "USD", "term": "P1M", "order_reference": "", "subscription": ""},
        follow=True,
    )

    assert Purchase.objects.get().currency == "USD"
    warnings = [str(message) for message in get_messages(response.wsgi_request) if message.level_tag == "warning"]
    warnings += [str(message) for message in response.context["messages"] if message.level_tag == "warning"]
    assert any("The purchase is in USD, but the tenant's currency is EUR." in text for text in warnings)


def test_api_other_currency_warns(synced_tenant, admin, us):
    api = APIClient()
    api.force_authenticate(admin)

    created = post_purchase(api, us, sku(synced_tenant, "FLOW_FREE"), currency="USD")
    same = post_purchase(api, us, sku(synced_tenant, "FLOW_FREE"), quantity=3)

    assert created.status_code == 201
    assert len(created.json()["warnings"]) == 1
    assert created.json()["warnings"][0].startswith("The purchase is in USD, but the tenant's currency is EUR.")
    assert same.json()["warnings"] == []
