"""ISO 4217 currency codes: the check itself, tenant connections and the tenant's admin form."""
from __future__ import annotations

import uuid

import pytest
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.test import RequestFactory

from graphsync.admin import TenantAdmin
from graphsync.currencies import is_currency_code, validate_currency_code
from graphsync.models import Tenant
from graphsync.services import connect_tenant

INVALID = 'is not an ISO 4217 currency code. Enter a current code such as EUR or USD.'


@pytest.mark.parametrize("code", ["EUR", "usd", "Chf", "JPY", "XCG", "ZWG"])
def test_current_codes_accepted(code):
    assert is_currency_code(code)


@pytest.mark.parametrize("code", ["", "EU", "EURO", "E1R", "XYZ", "ABC", "ÄBC", "HRK", "DEM"])
def test_unknown_or_withdrawn_codes_rejected(code):
    assert not is_currency_code(code)


NOT_MONEY = [
    "XXX", "XTS", "XAU", "XAG", "XPT", "XPD", "XBA", "XBB", "XBC", "XBD", "XDR", "XSU", "XUA", "XAD", "xau",
]


@pytest.mark.parametrize("code", NOT_MONEY)
def test_non_money_codes_rejected(code):
    assert not is_currency_code(code)


@pytest.mark.parametrize("code", NOT_MONEY)
def test_validator_names_non_money_code(code):
    with pytest.raises(ValidationError) as caught:
        validate_currency_code(code)

    assert caught.value.code == "not_money"
    assert caught.value.messages == [
        f'"{code}" is an ISO 4217 code for a precious metal, a unit of account, testing or "no currency", and no '
        "price can be paid in it. Enter a currency code such as EUR or USD."
    ]


@pytest.mark.parametrize("code", ["XAF", "XOF", "XPF", "XCD"])
def test_x_currencies_accepted(code):
    assert is_currency_code(code)
    validate_currency_code(code)


def test_validator_names_value():
    with pytest.raises(ValidationError) as caught:
        validate_currency_code("EUX")

    assert caught.value.messages == [f'"EUX" {INVALID}']
    assert caught.value.code == "invalid_currency"


@pytest.mark.django_db
def test_connect_tenant_rejects_unknown_currency():
    with pytest.raises(ValidationError) as caught:
        connect_tenant(
            acting_user=None, name="Contoso", tenant_id=str(uuid.uuid4()), client_id=str(uuid.uuid4()),
            client_secret="secret", currency="EUX",
        )

    assert caught.value.message_dict == {"currency": [f'"EUX" {INVALID}']}
    assert not Tenant.objects.exists()


@pytest.mark.django_db
def test_connect_tenant_upper_cases_currency():
    tenant = connect_tenant(
        acting_user=None, name="Contoso", tenant_id=str(uuid.uuid4()), client_id=str(uuid.uuid4()),
        client_secret="secret", currency="chf",
    )

    assert tenant.currency == "CHF"


@pytest.mark.django_db
def test_tenant_admin_form_checks_currency():
    tenant = Tenant(name="Contoso", tenant_id=uuid.uuid4(), client_id=uuid.uuid4(), currency="EUR")
    tenant.set_client_secret("unused")
    tenant.save()
    data = {
        "name": "Contoso", "tenant_id": str(tenant.tenant_id), "client_id": str(tenant.client_id),
        "authority_host": tenant.authority_host, "graph_base_url": tenant.graph_base_url, "ca_bundle": "",
    }

    form_class = TenantAdmin(Tenant, admin.site).get_form(RequestFactory().get("/admin/"), tenant)
    rejected = form_class({**data, "currency": "EUX"}, instance=tenant)
    accepted = form_class({**data, "currency": "gbp"}, instance=tenant)

    assert not rejected.is_valid()
    assert rejected.errors["currency"] == [f'"EUX" {INVALID}']
    assert accepted.is_valid(), accepted.errors
    assert accepted.cleaned_data["currency"] == "GBP"


@pytest.mark.django_db
def test_connect_tenant_rejects_gold():
    with pytest.raises(ValidationError) as caught:
        connect_tenant(
            acting_user=None, name="Contoso", tenant_id=str(uuid.uuid4()), client_id=str(uuid.uuid4()),
            client_secret="secret", currency="XAU",
        )

    assert caught.value.message_dict["currency"][0].startswith('"XAU" is an ISO 4217 code for a precious metal')
    assert not Tenant.objects.exists()
