"""The filters of the audit trail page, shared by its CSV and JSON Lines downloads and the API export."""
from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.db.models import F, QuerySet
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from graphsync.models import Tenant
from licensepools.form_errors import DateField, NamedErrorsFormMixin

from .choices import AuditAction, Outcome
from .models import AuditEvent, Pool

# The query parameters of the filters, in the order the page, the downloads and the export event list them.
FILTER_FIELDS = ("from", "to", "action", "outcome", "pool", "actor", "target")


class AuditPoolField(forms.ModelChoiceField):
    default_error_messages = {
        "invalid_choice": _("Pool %(value)s is not a pool of this tenant. Choose one of the tenant's pools."),
    }

    def label_from_instance(self, obj: Pool) -> str:
        return str(obj) if obj.is_active else _("%(pool)s (inactive)") % {"pool": obj}


class AuditFilterForm(NamedErrorsFormMixin, forms.Form):
    """Filters of a tenant's audit events. Dates are UTC days and both ends of the range are included.

    Every field is optional, and an empty form selects all of the tenant's events. The field ``from`` is a
    Python keyword, so it is declared through ``base_fields`` below.
    """

    to = DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    action = forms.ChoiceField(
        label=_("Action"), required=False, choices=[("", _("All actions")), *AuditAction.choices]
    )
    outcome = forms.ChoiceField(label=_("Outcome"), required=False, choices=[("", _("All outcomes")), *Outcome.choices])
    pool = AuditPoolField(
        label=_("Pool"), required=False, queryset=Pool.objects.none(), empty_label=_("All pools"),
        help_text=_("A level-1 pool includes its level-2 pools."),
    )
    actor = forms.CharField(
        label=_("Actor"), required=False, max_length=200,
        help_text=_('The user name, matched exactly but in any case. "system" selects events of syncs and tasks.'),
    )
    target = forms.CharField(
        label=_("Target"), required=False, max_length=300,
        help_text=_("Part of the target, such as a user principal name."),
    )

    def __init__(self, *args, tenant: Tenant, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        # Reading a tenant's audit trail covers all of it, so every pool of the tenant is a choice,
        # inactive ones included, because their events remain.
        self.fields["pool"].queryset = Pool.objects.filter(tenant=tenant).select_related("parent").order_by(
            "-is_active", Coalesce("parent__display_name", "display_name"), F("parent").asc(nulls_first=True),
            "display_name", "pk",
        )
        self.order_fields(FILTER_FIELDS)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        start, end = cleaned.get("from"), cleaned.get("to")
        if start and end and start > end:
            raise forms.ValidationError(
                _("The range from %(start)s to %(end)s ends before it starts. Enter a From date on or before the "
                  "To date.") % {"start": start.isoformat(), "end": end.isoformat()},
                code="reversed_range",
            )
        return cleaned

    def filter_events(self, events: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        """Return ``events`` narrowed by the cleaned filters. Call only on a valid form."""
        data = self.cleaned_data
        if data.get("from"):
            events = events.filter(occurred_at__gte=start_of_day(data["from"]))
        if data.get("to"):
            events = events.filter(occurred_at__lt=start_of_day(data["to"] + dt.timedelta(days=1)))
        if data.get("action"):
            events = events.filter(action=data["action"])
        if data.get("outcome"):
            events = events.filter(outcome=data["outcome"])
        if data.get("pool"):
            # A level-1 pool includes its level-2 pools, as a grant on it does.
            events = events.filter(pool_id__in=data["pool"].subtree_ids())
        if data.get("actor"):
            events = events.filter(actor_name__iexact=data["actor"].strip())
        if data.get("target"):
            events = events.filter(target__icontains=data["target"].strip())
        return events

    def active_filters(self) -> dict[str, Any]:
        """Return the filters that are set, as JSON values keyed by query parameter. Call only on a valid form."""
        values = {}
        for name in FILTER_FIELDS:
            value = self.cleaned_data.get(name)
            if isinstance(value, str):
                value = value.strip()
            if value in (None, ""):
                continue
            if isinstance(value, dt.date):
                value = value.isoformat()
            elif isinstance(value, Pool):
                value = value.pk
            values[name] = value
        return values


AuditFilterForm.base_fields["from"] = DateField(
    label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
)


def start_of_day(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.timezone.utc)
