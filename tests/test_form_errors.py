"""Form errors name the field and the value typed, on the allotment, purchase, seat request and price forms."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.utils import timezone

from chargeback.forms import PriceForm
from graphsync.models import Sku, Tenant
from licensepools.date_validators import one_year_after
from licensepools.form_errors import MAX_VALUE_SHOWN, typed_text
from pools.forms import AllotmentForm
from pools.forms_purchases import DecisionForm, PurchaseForm, SeatRequestForm
from pools.models import Allotment, Pool, SeatRequest

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate().isoformat()
A_YEAR_AHEAD = one_year_after(timezone.localdate()).isoformat()


@pytest.fixture
def contoso() -> Tenant:
    tenant = Tenant(name="Contoso", tenant_id=uuid.uuid4(), client_id=uuid.uuid4(), currency="EUR")
    tenant.set_client_secret("unused")
    tenant.save()
    return tenant


@pytest.fixture
def e3(contoso) -> Sku:
    return Sku.objects.create(
        tenant=contoso, sku_id=uuid.uuid4(), part_number="SPE_E3", display_name="Microsoft 365 E3", enabled_units=100,
        applies_to="User",
    )


@pytest.fixture
def sales(contoso) -> Pool:
    return Pool.objects.create(tenant=contoso, attribute="department", key="sales", display_name="Sales")


def purchase_data(e3: Sku, sales: Pool, **overrides) -> dict:
    return {
        "sku": e3.pk, "pool": sales.pk, "quantity": "10", "purchased_on": "2025-02-01", "unit_price": "1.50",
        "currency": "", "term": "P1Y", "order_reference": "", "subscription": "", **overrides,
    }


def test_allotment_names_sku_and_value(e3, sales):
    form = AllotmentForm({"sku": e3.pk, "seats": "abc"}, pool=sales)

    assert not form.is_valid()
    assert form.errors["seats"] == ['Allotment for Microsoft 365 E3: "abc" is not a whole number.']
    assert form.has_error("seats", code="invalid")


def test_allotment_below_zero(e3, sales):
    form = AllotmentForm({"sku": e3.pk, "seats": "-3"}, pool=sales)

    assert not form.is_valid()
    assert form.errors["seats"] == ["Allotment for Microsoft 365 E3: -3 is less than the minimum of 0."]


def test_allotment_unknown_sku_names_field(sales):
    form = AllotmentForm({"sku": "999999", "seats": "abc"}, pool=sales)

    assert not form.is_valid()
    assert form.errors["seats"] == ['Seats: "abc" is not a whole number.']
    assert form.has_error("sku", code="invalid_choice")


def test_allotment_empty_seats_keeps_allotment(e3, sales):
    Allotment.objects.create(pool=sales, sku=e3, seats=12)

    form = AllotmentForm({"sku": e3.pk, "seats": ""}, pool=sales)

    assert not form.is_valid()
    assert form.errors["seats"] == [
        "Allotment for Microsoft 365 E3: The field is empty, but the current allotment is 12. Enter 0 to allot no "
        "seats, or use Remove allotment to remove the allotment."
    ]


def test_allotment_empty_seats_without_allotment(e3, sales):
    form = AllotmentForm({"sku": e3.pk, "seats": ""}, pool=sales)

    assert not form.is_valid()
    assert form.errors["seats"] == [
        "Allotment for Microsoft 365 E3: The field is empty. Enter the number of seats to allot to Sales."
    ]


def test_allotment_zero_is_not_removal(e3, sales):
    Allotment.objects.create(pool=sales, sku=e3, seats=12)

    form = AllotmentForm({"sku": e3.pk, "seats": "0"}, pool=sales)

    assert form.is_valid(), form.errors
    assert form.cleaned_data["seats"] == 0


def test_allotment_remove_control(e3, sales):
    Allotment.objects.create(pool=sales, sku=e3, seats=12)

    form = AllotmentForm({"sku": e3.pk, "remove": "1", "confirm_remove": "on"}, pool=sales)

    assert form.is_valid(), form.errors
    assert form.cleaned_data["seats"] is None


def test_allotment_remove_unconfirmed(e3, sales):
    Allotment.objects.create(pool=sales, sku=e3, seats=12)

    form = AllotmentForm({"sku": e3.pk, "remove": "1"}, pool=sales)

    assert not form.is_valid()
    assert form.errors["confirm_remove"] == [
        "Allotment for Microsoft 365 E3: Without an allotment, Sales cannot assign Microsoft 365 E3, and its seats "
        "return to the central reserve. Tick Confirm removal, then click Remove allotment again."
    ]


def test_allotment_remove_without_allotment(e3, sales):
    form = AllotmentForm({"sku": e3.pk, "remove": "1"}, pool=sales)

    assert not form.is_valid()
    assert form.errors["remove"] == [
        "Allotment for Microsoft 365 E3: Sales has no allotment of Microsoft 365 E3 to remove."
    ]


def test_purchase_form_errors(contoso, e3, sales):
    cases = [
        ({"quantity": "ten"}, "quantity", 'Seats: "ten" is not a whole number.'),
        ({"quantity": "0"}, "quantity", "Seats: 0 is less than the minimum of 1."),
        ({"quantity": "2147483648"}, "quantity", "Seats: 2147483648 is more than the maximum of 2147483647."),
        ({"unit_price": "1,5x"}, "unit_price", 'Unit price per month: "1,5x" is not a number.'),
        ({"unit_price": "-2"}, "unit_price", "Unit price per month: -2 is less than the minimum of 0."),
        ({"unit_price": "1.23456"}, "unit_price", "Unit price per month: 1.23456 has more than 4 decimal places."),
        ({"purchased_on": "31.02.2025"}, "purchased_on",
         'Purchase date: "31.02.2025" is not a date. Enter it as YYYY-MM-DD.'),
        ({"purchased_on": "2999-01-01"}, "purchased_on",
         "Purchase date: 2999-01-01 is in the future. Record a purchase once it has been made."),
        ({"currency": "EUX"}, "currency",
         'Currency: "EUX" is not an ISO 4217 currency code. Enter a current code such as EUR or USD.'),
        ({"currency": "EURO"}, "currency",
         'Currency: "EURO" is not an ISO 4217 currency code. Enter a current code such as EUR or USD.'),
        ({"currency": "xau"}, "currency",
         'Currency: "xau" is an ISO 4217 code for a precious metal, a unit of account, testing or "no currency", '
         "and no price can be paid in it. Enter a currency code such as EUR or USD."),
        ({"purchased_on": "1899-01-01"}, "purchased_on",
         f"Purchase date: 1899-01-01 is outside the allowed range. Enter a date from 2000-01-01 to {TODAY}."),
        ({"purchased_on": "1999-12-31"}, "purchased_on",
         f"Purchase date: 1999-12-31 is outside the allowed range. Enter a date from 2000-01-01 to {TODAY}."),
    ]
    for overrides, field, message in cases:
        form = PurchaseForm(purchase_data(e3, sales, **overrides), tenant=contoso, pools=Pool.objects.all())

        assert not form.is_valid(), overrides
        assert form.errors[field] == [message], overrides


def test_purchase_form_accepts_lower_case_currency(contoso, e3, sales):
    form = PurchaseForm(purchase_data(e3, sales, currency="usd"), tenant=contoso, pools=Pool.objects.all())

    assert form.is_valid(), form.errors
    assert form.cleaned_data["currency"] == "USD"


def test_purchase_form_missing_sku(contoso, e3, sales):
    form = PurchaseForm(purchase_data(e3, sales, sku=""), tenant=contoso, pools=Pool.objects.all())

    assert not form.is_valid()
    assert form.errors["sku"] == ["SKU: This field is required."]


def test_seat_request_form_errors(contoso, e3):
    form = SeatRequestForm({"sku": e3.pk, "quantity": "lots", "reason": "   "}, tenant=contoso)

    assert not form.is_valid()
    assert form.errors["quantity"] == ['Seats: "lots" is not a whole number.']
    assert form.errors["reason"] == ["Reason: This field is required."]


def test_decision_help_text_without_email(django_user_model):
    with_address = SeatRequest(requested_by=django_user_model(username="with-address", email="m@example.com"))
    without_address = SeatRequest(requested_by=django_user_model(username="no-address", email=""))
    deleted_account = SeatRequest(requested_by=None)

    mailed = DecisionForm(seat_request=with_address).fields["reason"].help_text
    not_mailed = DecisionForm(seat_request=without_address).fields["reason"].help_text
    no_account = DecisionForm(seat_request=deleted_account).fields["reason"].help_text

    assert mailed == "Required when you decline. The requester receives the decision and this text by e-mail."
    assert not_mailed == (
        "Required when you decline. no-address has no e-mail address, so no e-mail is sent; they see the decision "
        "and this text on the pool's seat requests page."
    )
    assert no_account == (
        "Required when you decline. The requester's account was deleted, so no e-mail is sent; the decision and "
        "this text are shown on the pool's seat requests page."
    )


def test_decision_form_too_long_reason():
    form = DecisionForm({"reason": "x" * 5000})

    assert not form.is_valid()
    assert form.errors["reason"][0].startswith("Reason: Ensure this value has at most ")


def test_price_form_errors(contoso, e3):
    cases = [
        ({"monthly_price": "twelve"}, "monthly_price", 'Monthly price per seat: "twelve" is not a number.'),
        ({"monthly_price": "-1"}, "monthly_price", "Monthly price per seat: -1 is less than the minimum of 0."),
        ({"currency": "ABC"}, "currency",
         'Currency: "ABC" is not an ISO 4217 currency code. Enter a current code such as EUR or USD.'),
        ({"currency": "HRK"}, "currency",
         'Currency: "HRK" is not an ISO 4217 currency code. Enter a current code such as EUR or USD.'),
        ({"effective_from": "soon"}, "effective_from",
         'Effective from: "soon" is not a date. Enter it as YYYY-MM-DD.'),
        ({"currency": "XTS"}, "currency",
         'Currency: "XTS" is an ISO 4217 code for a precious metal, a unit of account, testing or "no currency", '
         "and no price can be paid in it. Enter a currency code such as EUR or USD."),
        ({"effective_from": "1899-01-01"}, "effective_from",
         f"Effective from: 1899-01-01 is outside the allowed range. Enter a date from 2000-01-01 to {A_YEAR_AHEAD}."),
        ({"effective_from": "2999-01-01"}, "effective_from",
         f"Effective from: 2999-01-01 is outside the allowed range. Enter a date from 2000-01-01 to {A_YEAR_AHEAD}."),
        ({"effective_from": (one_year_after(timezone.localdate()) + dt.timedelta(days=1)).isoformat()},
         "effective_from",
         f"Effective from: {(one_year_after(timezone.localdate()) + dt.timedelta(days=1)).isoformat()} is outside "
         f"the allowed range. Enter a date from 2000-01-01 to {A_YEAR_AHEAD}."),
    ]
    for overrides, field, message in cases:
        data = {"sku": e3.pk, "monthly_price": "12.50", "currency": "EUR", "effective_from": "2025-03-01", **overrides}
        form = PriceForm(data, tenant=contoso)

        assert not form.is_valid(), overrides
        assert form.errors[field] == [message], overrides


def test_price_form_date_range_edges(contoso, e3):
    for effective_from in ["2000-01-01", A_YEAR_AHEAD]:
        data = {"sku": e3.pk, "monthly_price": "12.50", "currency": "EUR", "effective_from": effective_from}
        form = PriceForm(data, tenant=contoso)

        assert form.is_valid(), (effective_from, form.errors)


def test_price_form_upper_cases_currency(contoso, e3):
    data = {"sku": e3.pk, "monthly_price": "12.50", "currency": "eur", "effective_from": "2025-03-01"}
    form = PriceForm(data, tenant=contoso)

    assert form.is_valid(), form.errors
    assert form.cleaned_data["currency"] == "EUR"


def test_long_typed_value_cut_short():
    text = "9" * (MAX_VALUE_SHOWN + 10)

    assert typed_text(text) == "9" * MAX_VALUE_SHOWN + "…"
    assert typed_text("  abc ") == "abc"
