"""Forms for assignment details (disabled service plans), a pool's default usage location and bulk jobs."""
from __future__ import annotations

import csv
from functools import lru_cache

from django import forms
from django.utils.translation import gettext_lazy as _

from graphsync.catalog import REFERENCE_CSV
from graphsync.models import DirectoryUser, Sku

from .choices import BulkJobKind
from .forms import assignable_skus
from .models import Pool
from .services import user_service_plans


@lru_cache(maxsize=1)
def service_plan_friendly_names() -> dict[str, str]:
    """Map lower-case service plan ids to Microsoft's friendly names from the licensing reference table.

    The table spells some plans in capitals on some rows and in mixed case on others; mixed case wins.
    """
    names: dict[str, str] = {}
    with REFERENCE_CSV.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            plan_id = row["Service_Plan_Id"].strip().lower()
            friendly = row["Service_Plans_Included_Friendly_Names"].strip()
            if not plan_id or not friendly:
                continue
            current = names.get(plan_id)
            if current is None or (current.isupper() and not friendly.isupper()):
                names[plan_id] = friendly
    return names


def service_plan_choices(sku: Sku) -> list[tuple[str, str]]:
    """List the SKU's user service plans as (id, friendly name), sorted by name.

    A plan missing from the reference table shows Graph's servicePlanName.
    """
    friendly = service_plan_friendly_names()
    choices = [
        (plan_id, friendly.get(plan_id) or str(plan.get("servicePlanName") or plan_id))
        for plan_id, plan in user_service_plans(sku).items()
    ]
    return sorted(choices, key=lambda choice: choice[1].casefold())


class PlanIdsField(forms.MultipleChoiceField):
    """Service plan ids to disable. Any value passes here; ``services.check_disabled_plans`` rejects
    unknown ones with a message that names the value and the SKU."""

    widget = forms.CheckboxSelectMultiple

    def valid_value(self, value) -> bool:
        return True


class DisabledPlansMixin:
    def plan_choices_for(self, sku: Sku | None) -> None:
        self.fields["disabled_plans"].choices = service_plan_choices(sku) if sku is not None else []


class AssignDetailsForm(DisabledPlansMixin, forms.Form):
    """One user's assignment of a SKU with the service plans to disable."""

    sku = forms.ModelChoiceField(queryset=Sku.objects.none(), label=_("License"), empty_label=_("Choose a license"))
    disabled_plans = PlanIdsField(
        label=_("Service plans to turn off"), required=False,
        help_text=_("Ticked plans are sent to Microsoft 365 as disabled for this license only."),
    )

    def __init__(self, *args, pool: Pool, sku: Sku | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sku"].queryset = assignable_skus(pool.tenant)
        self.plan_choices_for(sku)


class DefaultUsageLocationForm(forms.Form):
    default_usage_location = forms.CharField(
        label=_("Default usage location"), max_length=2, required=False,
        help_text=_("Two-letter ISO 3166-1 country code, such as DE or US. It is set on members who have neither a "
                    "usage location nor a recognisable country when they get a license. Leave empty for none."),
    )


class BulkKindField(forms.ChoiceField):
    def __init__(self, **kwargs):
        super().__init__(
            label=_("Operation"),
            choices=[(BulkJobKind.ASSIGN, _("Assign")), (BulkJobKind.REVOKE, _("Revoke"))],
            widget=forms.RadioSelect, initial=BulkJobKind.ASSIGN, **kwargs,
        )


class BulkSelectionForm(forms.Form):
    """Members ticked on the pool page, a SKU and the operation."""

    kind = BulkKindField()
    sku = forms.ModelChoiceField(queryset=Sku.objects.none(), label=_("License"), empty_label=_("Choose a license"))
    users = forms.ModelMultipleChoiceField(
        queryset=DirectoryUser.objects.none(), label=_("Members"),
        error_messages={"required": _("Tick at least one member in the list below.")},
    )

    def __init__(self, *args, pool: Pool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sku"].queryset = Sku.objects.filter(tenant=pool.tenant).order_by("display_name", "part_number")
        self.fields["users"].queryset = pool.members_queryset()


class BulkUploadForm(DisabledPlansMixin, forms.Form):
    """A CSV file of user principal names, a SKU, the operation and, for assignments, plans to disable."""

    kind = BulkKindField()
    sku = forms.ModelChoiceField(queryset=Sku.objects.none(), label=_("License"), empty_label=_("Choose a license"))
    file = forms.FileField(
        label=_("CSV file of users"),
        help_text=_("UTF-8, one user principal name per line or a column headed userPrincipalName. Blank lines "
                    "are ignored and a name listed twice is processed once."),
    )
    disabled_plans = PlanIdsField(
        label=_("Service plans to turn off (assign only)"), required=False,
    )

    def __init__(self, *args, pool: Pool, sku: Sku | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sku"].queryset = Sku.objects.filter(tenant=pool.tenant).order_by("display_name", "part_number")
        self.plan_choices_for(sku)


class BulkRevokeConfirmForm(forms.Form):
    """The SKU and user principal names of an uploaded revoke file, posted back from its confirmation page."""

    sku = forms.ModelChoiceField(queryset=Sku.objects.none(), widget=forms.HiddenInput)
    # One user principal name per line; a user principal name contains no line break.
    names = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, pool: Pool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sku"].queryset = Sku.objects.filter(tenant=pool.tenant)

    def clean_names(self) -> list[str]:
        names = [line.strip() for line in self.cleaned_data["names"].splitlines() if line.strip()]
        if not names:
            raise forms.ValidationError(_("The confirmation contains no user principal names. Upload the file again."))
        return names
