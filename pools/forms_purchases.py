"""Forms of the purchase ledger and of seat requests. The services in ``pools.purchases`` and
``pools.seat_requests`` enforce the rules; these forms check types and ranges."""
from __future__ import annotations

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from graphsync.currencies import validate_currency_code
from graphsync.models import Sku, Subscription, Tenant
from licensepools.date_validators import validate_purchase_date
from licensepools.form_errors import DateField, DecimalField, IntegerField, NamedErrorsFormMixin

from .choices import PurchaseTerm
from .models import Pool, SeatRequest
from .purchases import MAX_VOID_REASON_LENGTH
from .seat_requests import MAX_REASON_LENGTH

# PostgreSQL's integer column, which backs the quantity and seat fields, holds at most this value.
MAX_SEATS = 2_147_483_647
SUBSCRIPTION_AUTOMATIC = ""
SUBSCRIPTION_NONE = "none"


def _sku_label(sku: Sku) -> str:
    return f"{sku.name} ({sku.part_number})"


def _subscription_label(subscription: Subscription) -> str:
    created = subscription.created_at_graph.date().isoformat() if subscription.created_at_graph else "?"
    return f"{subscription.part_number} · {subscription.total_licenses} · {created} · {subscription.subscription_id}"


class SkuChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Sku) -> str:
        return _sku_label(obj)


class PoolChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Pool) -> str:
        return str(obj)


class PurchaseForm(NamedErrorsFormMixin, forms.Form):
    """A purchase of seats for a level-1 or level-2 pool of the tenant."""

    sku = SkuChoiceField(queryset=Sku.objects.none(), label=_("SKU"), empty_label=_("Choose a SKU"))
    pool = PoolChoiceField(queryset=Pool.objects.none(), label=_("Purchasing pool"), empty_label=_("Choose a pool"))
    quantity = IntegerField(label=_("Seats"), min_value=1, max_value=MAX_SEATS)
    purchased_on = DateField(
        label=_("Purchase date"), widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("The order date; it cannot be in the future."),
    )
    unit_price = DecimalField(
        label=_("Unit price per month"), min_value=0, max_digits=12, decimal_places=4,
        help_text=_("Price of one seat for one month, in the currency below."),
    )
    currency = forms.CharField(
        # The ISO 4217 check in clean_currency covers the length, so a wrong length gets that one message.
        label=_("Currency"), required=False, widget=forms.TextInput(attrs={"maxlength": 3, "size": 3}),
        help_text=_("ISO 4217 code, for example EUR; empty uses the tenant's currency."),
    )
    term = forms.ChoiceField(label=_("Term"), choices=PurchaseTerm.choices, initial=PurchaseTerm.ANNUAL)
    order_reference = forms.CharField(label=_("Order reference"), max_length=200, required=False)
    confirm_duplicate = forms.BooleanField(
        label=_("Record it although an identical purchase was recorded in the last day"), required=False,
        help_text=_("Needed only for a second order with the same SKU, pool, seats, date and price and no order "
                    "reference."),
    )
    subscription = forms.ChoiceField(
        label=_("Commerce subscription"), required=False,
        help_text=_("Automatic links the purchase to the one paid subscription of the SKU created within three days "
                    "of the purchase date or with as many licenses, and leaves it unlinked when several match."),
    )

    def __init__(self, *args, tenant: Tenant, pools, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.fields["sku"].queryset = Sku.objects.filter(tenant=tenant).order_by("display_name", "part_number")
        self.fields["pool"].queryset = pools.filter(tenant=tenant).select_related("parent").order_by(
            "parent__display_name", "display_name"
        )
        self.fields["currency"].widget.attrs["placeholder"] = tenant.currency
        subscriptions = Subscription.objects.filter(tenant=tenant, is_trial=False).order_by("part_number", "created_at_graph")
        self.fields["subscription"].choices = [
            (SUBSCRIPTION_AUTOMATIC, _("Automatic")),
            (SUBSCRIPTION_NONE, _("None")),
            *[(str(item.pk), _subscription_label(item)) for item in subscriptions],
        ]
        if not self.is_bound:
            self.initial.setdefault("purchased_on", timezone.localdate())

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"].strip()
        if currency:
            validate_currency_code(currency)
        return currency.upper()

    def clean_purchased_on(self):
        purchased_on = self.cleaned_data["purchased_on"]
        if purchased_on > timezone.localdate():
            raise forms.ValidationError(
                _("%(date)s is in the future. Record a purchase once it has been made."),
                params={"date": purchased_on.isoformat()},
            )
        validate_purchase_date(purchased_on)
        return purchased_on

    def chosen_subscription(self) -> tuple[bool, Subscription | None]:
        """Return (chosen, subscription): chosen is False for automatic matching."""
        value = self.cleaned_data.get("subscription") or SUBSCRIPTION_AUTOMATIC
        if value == SUBSCRIPTION_AUTOMATIC:
            return False, None
        if value == SUBSCRIPTION_NONE:
            return True, None
        return True, Subscription.objects.get(tenant=self.tenant, pk=int(value))


class LedgerFilterForm(forms.Form):
    pool = PoolChoiceField(queryset=Pool.objects.none(), required=False, label=_("Pool"), empty_label=_("All pools"))
    sku = SkuChoiceField(queryset=Sku.objects.none(), required=False, label=_("SKU"), empty_label=_("All SKUs"))

    def __init__(self, *args, tenant: Tenant, pools, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pool"].queryset = pools.filter(tenant=tenant).select_related("parent").order_by(
            "parent__display_name", "display_name"
        )
        self.fields["sku"].queryset = Sku.objects.filter(tenant=tenant).order_by("display_name", "part_number")


class LinkSubscriptionForm(forms.Form):
    subscription = forms.ModelChoiceField(
        queryset=Subscription.objects.none(), required=False, label=_("Commerce subscription"),
        empty_label=_("None"),
    )

    def __init__(self, *args, purchase, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["subscription"].queryset = Subscription.objects.filter(
            tenant=purchase.tenant, sku_id=purchase.sku.sku_id, is_trial=False
        ).order_by("created_at_graph")
        self.fields["subscription"].label_from_instance = _subscription_label


class VoidPurchaseForm(NamedErrorsFormMixin, forms.Form):
    reason = forms.CharField(
        label=_("Reason for voiding"), max_length=MAX_VOID_REASON_LENGTH,
        help_text=_("Why the purchase is wrong, for example a duplicate or a typing mistake; the ledger shows it."),
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(_("Give a reason, so that the ledger shows why the purchase was voided."))
        return reason


class SeatRequestForm(NamedErrorsFormMixin, forms.Form):
    sku = SkuChoiceField(queryset=Sku.objects.none(), label=_("SKU"), empty_label=_("Choose a SKU"))
    quantity = IntegerField(label=_("Seats"), min_value=1, max_value=MAX_SEATS)
    reason = forms.CharField(
        label=_("Reason"), max_length=MAX_REASON_LENGTH, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("What the seats are for; the tenant administrators read this before they decide."),
    )

    def __init__(self, *args, tenant: Tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sku"].queryset = Sku.objects.filter(tenant=tenant, applies_to="User").order_by(
            "display_name", "part_number"
        )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(_("Give a reason, so that the tenant administrators can decide the request."))
        return reason


class DecisionForm(NamedErrorsFormMixin, forms.Form):
    """An administrator's note on approval, or the required reason for declining."""

    reason = forms.CharField(
        label=_("Reason"), max_length=MAX_REASON_LENGTH, required=False, widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Required when you decline. The requester receives the decision and this text by e-mail."),
    )

    def __init__(self, *args, seat_request: SeatRequest | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if seat_request is None:
            return
        # The decision e-mail goes only to the requester's own address, so without one no e-mail is sent.
        requester = seat_request.requested_by
        if requester is None:
            self.fields["reason"].help_text = _(
                "Required when you decline. The requester's account was deleted, so no e-mail is sent; the decision "
                "and this text are shown on the pool's seat requests page."
            )
        elif not requester.email:
            self.fields["reason"].help_text = _(
                "Required when you decline. %(user)s has no e-mail address, so no e-mail is sent; they see the "
                "decision and this text on the pool's seat requests page."
            ) % {"user": requester.get_username()}
