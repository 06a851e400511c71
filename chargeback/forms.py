"""Forms of the chargeback pages: the report month and SKU prices."""
from __future__ import annotations

import datetime as dt

from django import forms
from django.core.validators import MinValueValidator
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from graphsync.currencies import validate_currency_code
from graphsync.models import Sku, Tenant
from licensepools.date_validators import validate_effective_date
from licensepools.form_errors import DateField, DecimalField, NamedErrorsFormMixin

from .reports import InvalidMonth, month_label, parse_month


class MonthInput(forms.TextInput):
    input_type = "month"


class MonthForm(forms.Form):
    """The month a report covers, entered as ``YYYY-MM`` and cleaned to a (year, month) tuple."""

    month = forms.CharField(label=_("Month"), widget=MonthInput, max_length=7)

    def clean_month(self) -> tuple[int, int]:
        try:
            return parse_month(self.cleaned_data["month"])
        except InvalidMonth as exc:
            raise forms.ValidationError(exc.message, code="invalid_month") from exc

    @staticmethod
    def current_month() -> str:
        today = timezone.now().astimezone(dt.timezone.utc).date()
        return month_label(today.year, today.month)


class SkuChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Sku) -> str:
        if obj.is_name_mapped:
            return f"{obj.name} ({obj.part_number})"
        return obj.part_number


class PriceForm(NamedErrorsFormMixin, forms.Form):
    sku = SkuChoiceField(label=_("SKU"), queryset=Sku.objects.none())
    monthly_price = DecimalField(
        label=_("Monthly price per seat"),
        max_digits=12,
        decimal_places=4,
        validators=[MinValueValidator(0)],
        localize=True,
    )
    currency = forms.CharField(
        label=_("Currency"),
        # The ISO 4217 check covers the length, so a wrong length gets that one message and no second one.
        widget=forms.TextInput(attrs={"maxlength": 3, "size": 3}),
        help_text=_("ISO 4217 code, e.g. EUR."),
        validators=[validate_currency_code],
    )
    effective_from = DateField(
        label=_("Effective from"),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=_(
            "The price applies to license-days from this date until a later price takes over. The date lies "
            "from 2000-01-01 to a year from today."
        ),
        validators=[validate_effective_date],
    )

    def __init__(self, *args, tenant: Tenant, **kwargs) -> None:
        kwargs.setdefault("initial", {})
        kwargs["initial"].setdefault("currency", tenant.currency)
        kwargs["initial"].setdefault("effective_from", timezone.now().date().replace(day=1))
        super().__init__(*args, **kwargs)
        self.fields["sku"].queryset = Sku.objects.filter(tenant=tenant).order_by("part_number")

    def clean_currency(self) -> str:
        return self.cleaned_data["currency"].upper()
