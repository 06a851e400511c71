"""Forms of the chargeback pages: the report month and SKU prices."""
from __future__ import annotations

import datetime as dt

from django import forms
from django.core.validators import MinValueValidator
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _

from graphsync.currencies import validate_currency_code
from graphsync.models import Sku, Tenant
from licensepools.date_validators import validate_effective_date
from licensepools.form_errors import DateField, DecimalField, NamedErrorsFormMixin

from .models import SkuPrice
from .reports import InvalidMonth, month_label, parse_month
from .templatetags.chargeback_format import price as format_price


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
    sku = SkuChoiceField(label=_("SKU"), queryset=Sku.objects.none(), empty_label=_("Choose a SKU"))
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
        help_text=_("ISO 4217 code of the tenant's chargeback currency."),
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

    replace_existing = forms.BooleanField(
        label=_("Replace the price already set for this SKU and date"), required=False,
        help_text=_("Needed only when the SKU already has a price from the same date."),
    )

    def __init__(self, *args, tenant: Tenant, **kwargs) -> None:
        self.tenant = tenant
        kwargs.setdefault("initial", {})
        kwargs["initial"].setdefault("currency", tenant.currency)
        kwargs["initial"].setdefault("effective_from", timezone.now().date().replace(day=1))
        super().__init__(*args, **kwargs)
        self.fields["sku"].queryset = Sku.objects.filter(tenant=tenant).order_by("part_number")

    def clean_currency(self) -> str:
        # Reports add the costs of all SKUs into one total, so every price is in the tenant's currency. A price
        # in another currency is converted first, at the rate the organisation uses, because a report cannot
        # pick a rate for it.
        currency = self.cleaned_data["currency"].upper()
        if currency != self.tenant.currency:
            raise forms.ValidationError(
                _("%(currency)s is not the tenant's chargeback currency, %(tenant_currency)s. Chargeback reports add "
                  "the costs of all SKUs in one currency, so enter the price converted to %(tenant_currency)s."),
                code="other_currency", params={"currency": currency, "tenant_currency": self.tenant.currency},
            )
        return currency

    def clean(self):
        cleaned = super().clean()
        sku, effective_from = cleaned.get("sku"), cleaned.get("effective_from")
        if sku is None or effective_from is None or cleaned.get("replace_existing"):
            return cleaned
        existing = SkuPrice.objects.filter(sku=sku, effective_from=effective_from).first()
        if existing is not None:
            raise forms.ValidationError(
                _("%(sku)s already costs %(price)s %(currency)s from %(date)s. To replace that price, tick "
                  "\u201cReplace the price already set for this SKU and date\u201d and submit again; otherwise "
                  "choose another date."),
                code="price_exists",
                params={
                    "sku": sku.name, "price": format_price(existing.monthly_price), "currency": existing.currency,
                    "date": date_format(effective_from, "SHORT_DATE_FORMAT"),
                },
            )
        return cleaned
