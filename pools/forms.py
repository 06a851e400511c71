"""Forms of the web UI. Each one feeds a function of ``pools.services``, which enforces the rules."""
from django import forms
from django.utils.translation import gettext_lazy as _

from graphsync.models import DirectoryUser, Sku, Tenant
from licensepools.form_errors import IntegerField, NamedErrorsFormMixin

from .choices import PoolAttribute
from .models import Allotment, Pool


class SchemeForm(forms.Form):
    level1_attribute = forms.ChoiceField(
        label=_("Level 1 attribute"),
        choices=PoolAttribute.choices,
        help_text=_("Every distinct value of this attribute becomes a pool."),
    )
    level2_attribute = forms.ChoiceField(
        label=_("Level 2 attribute (optional)"),
        choices=[("", _("None: one level only"))] + PoolAttribute.choices,
        required=False,
        help_text=_("Splits each level-1 pool once more, for example by department inside a country."),
    )

    def clean(self):
        cleaned = super().clean()
        level1 = cleaned.get("level1_attribute")
        level2 = cleaned.get("level2_attribute")
        if level1 and level2 and level1 == level2:
            self.add_error("level2_attribute", _("Level 2 must use a different attribute than level 1, or none."))
        return cleaned


class AllotmentForm(NamedErrorsFormMixin, forms.Form):
    """One SKU's allotment for a pool.

    An empty seats field is easily sent by mistake, so only the ``remove`` control removes an allotment, and
    only with ``confirm_remove`` ticked as well. The cleaned ``seats`` is then None.
    """

    sku = forms.ModelChoiceField(queryset=Sku.objects.none(), widget=forms.HiddenInput)
    seats = IntegerField(
        label=_("Seats"),
        min_value=0,
        required=False,
        help_text=_("0 allots no seats. Use Remove allotment to remove the allotment."),
    )
    remove = forms.BooleanField(label=_("Remove allotment"), required=False)
    confirm_remove = forms.BooleanField(label=_("Confirm removal"), required=False)

    def __init__(self, *args, pool: Pool, **kwargs):
        super().__init__(*args, **kwargs)
        self.pool = pool
        self.fields["sku"].queryset = Sku.objects.filter(tenant=pool.tenant)

    def clean(self):
        cleaned = super().clean()
        sku = cleaned.get("sku")
        if sku is None or self.has_error("seats"):
            return cleaned
        current = Allotment.objects.filter(pool=self.pool, sku=sku).values_list("seats", flat=True).first()
        if cleaned.get("remove"):
            if current is None:
                self.add_error("remove", _("%(pool)s has no allotment of %(sku)s to remove.") % {
                    "pool": self.pool, "sku": sku.name,
                })
            elif not cleaned.get("confirm_remove"):
                self.add_error("confirm_remove", self._unconfirmed_removal_message(sku))
            cleaned["seats"] = None
        elif cleaned.get("seats") is None:
            self.add_error("seats", self._empty_seats_message(sku, current))
        return cleaned

    def _unconfirmed_removal_message(self, sku: Sku) -> str:
        names = {"pool": self.pool, "sku": sku.name}
        if self.pool.parent_id is None:
            consequence = _(
                "Without an allotment, %(pool)s cannot assign %(sku)s, and its seats return to the central reserve."
            ) % names
        else:
            consequence = _(
                "Without an allotment, %(pool)s draws on the allotment of %(parent)s without a limit of its own."
            ) % {**names, "parent": self.pool.parent}
        return consequence + " " + _("Tick Confirm removal, then click Remove allotment again.")

    def _empty_seats_message(self, sku: Sku, current: int | None) -> str:
        if current is None:
            return _("The field is empty. Enter the number of seats to allot to %(pool)s.") % {"pool": self.pool}
        return _(
            "The field is empty, but the current allotment is %(seats)s. Enter 0 to allot no seats, or use Remove "
            "allotment to remove the allotment."
        ) % {"seats": current}

    def error_label(self, name: str) -> str:
        # The page shows one of these forms per SKU and reports errors as a message above the table.
        sku = self.cleaned_data.get("sku")
        if name in ("seats", "remove", "confirm_remove") and sku is not None:
            return _("Allotment for %(sku)s") % {"sku": sku.name}
        return super().error_label(name)


class RenamePoolForm(forms.Form):
    name = forms.CharField(
        label=_("Pool name"),
        max_length=300,
        required=False,
        # The service trims the name itself and rejects one of only spaces, which stripping here would hide.
        strip=False,
        help_text=_("Leave empty to show the most common spelling of the attribute value again."),
    )


class AssignForm(NamedErrorsFormMixin, forms.Form):
    """A user of the pool and a SKU that applies to users. The service checks the quotas."""

    user = forms.ModelChoiceField(queryset=DirectoryUser.objects.none(), widget=forms.HiddenInput)
    sku = forms.ModelChoiceField(queryset=Sku.objects.none(), label=_("License"), empty_label=_("Choose a license"))

    def __init__(self, *args, pool: Pool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = pool.members_queryset()
        self.fields["sku"].queryset = assignable_skus(pool.tenant)


class RevokeForm(forms.Form):
    user = forms.ModelChoiceField(queryset=DirectoryUser.objects.none(), widget=forms.HiddenInput)
    sku = forms.ModelChoiceField(queryset=Sku.objects.none(), widget=forms.HiddenInput)

    def __init__(self, *args, pool: Pool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = pool.members_queryset()
        self.fields["sku"].queryset = Sku.objects.filter(tenant=pool.tenant)


class MemberSearchForm(forms.Form):
    q = forms.CharField(
        label=_("Search members by name or user principal name"),
        max_length=300,
        required=False,
        error_messages={
            "max_length": _(
                "The search is too long: use at most %(limit_value)d characters (it has %(show_value)d)."
            ),
            # PostgreSQL text cannot contain a NUL character, so such a query cannot be run.
            "null_characters_not_allowed": _(
                "The search contains a null character, which cannot be searched. Remove it and search again."
            ),
        },
    )


def assignable_skus(tenant: Tenant):
    return Sku.objects.filter(tenant=tenant, applies_to="User").order_by("display_name", "part_number")
