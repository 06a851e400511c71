"""Readable before and after values of audit events, for the audit trail page.

Events store ``before`` and ``after`` as JSON written by the services. The page shows them as labelled
rows: a SKU by its name and disabled service plans by their friendly names when the tenant's SKUs
still list them, otherwise by their raw IDs.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from graphsync.models import Sku, Tenant
from rbac.choices import Role

from .choices import AuditAction, BulkJobKind, Outcome, RequestStatus
from .forms_bulk import service_plan_friendly_names
from .models import AuditEvent

# Labels of the keys that the services write into ``before`` and ``after``. A key missing here is shown as is.
FIELD_LABELS = {
    "action": gettext_lazy("Action"),
    "actor": gettext_lazy("Actor"),
    "allotments": gettext_lazy("Allotments by pool ID"),
    "assignments": gettext_lazy("Assignments"),
    "attribute": gettext_lazy("Attribute"),
    "authority": gettext_lazy("Sign-in authority"),
    "channel": gettext_lazy("Channel"),
    "client_id": gettext_lazy("Client ID"),
    "consumption": gettext_lazy("Consumption"),
    "count": gettext_lazy("Count"),
    "currency": gettext_lazy("Currency"),
    "defaultUsageLocation": gettext_lazy("Default usage location"),
    "disabledPlans": gettext_lazy("Disabled service plans"),
    "effective_from": gettext_lazy("Effective from"),
    "format": gettext_lazy("Format"),
    "from": gettext_lazy("From"),
    "id": gettext_lazy("ID"),
    "is_active": gettext_lazy("Active"),
    "job": gettext_lazy("Bulk job"),
    "kind": gettext_lazy("Kind"),
    "level1": gettext_lazy("Level-1 attribute"),
    "level2": gettext_lazy("Level-2 attribute"),
    "managers": gettext_lazy("Managers"),
    "merged_into": gettext_lazy("Merged into"),
    "merged_into_id": gettext_lazy("Merged into pool ID"),
    "merged_pool": gettext_lazy("Merged pool"),
    "monthly_price": gettext_lazy("Monthly price"),
    "name": gettext_lazy("Name"),
    "other": gettext_lazy("Other"),
    "outcome": gettext_lazy("Outcome"),
    "permission": gettext_lazy("Permission"),
    "pool": gettext_lazy("Pool"),
    "poolId": gettext_lazy("Pool ID"),
    "poolName": gettext_lazy("Pool name"),
    "pool_id": gettext_lazy("Pool ID"),
    "purchase": gettext_lazy("Purchase"),
    "purchasedOn": gettext_lazy("Purchased on"),
    "quantity": gettext_lazy("Quantity"),
    "reason": gettext_lazy("Reason"),
    "reasons": gettext_lazy("Reasons"),
    "recipients": gettext_lazy("Recipients"),
    "remainingUsers": gettext_lazy("Remaining users"),
    "request": gettext_lazy("Seat request"),
    "resumed": gettext_lazy("Resumed"),
    "role": gettext_lazy("Role"),
    "scope": gettext_lazy("Scope"),
    "seats": gettext_lazy("Seats"),
    "sku": gettext_lazy("SKU"),
    "skuId": gettext_lazy("SKU"),
    "skus": gettext_lazy("SKUs"),
    "source": gettext_lazy("Source"),
    "spare": gettext_lazy("Spare"),
    "status": gettext_lazy("Status"),
    "subscription": gettext_lazy("Subscription"),
    "sync_run": gettext_lazy("Sync run"),
    "target": gettext_lazy("Target"),
    "tenant_id": gettext_lazy("Tenant ID"),
    "to": gettext_lazy("To"),
    "unitPrice": gettext_lazy("Unit price"),
    "usageLocation": gettext_lazy("Usage location"),
    "user": gettext_lazy("User"),
    "users": gettext_lazy("Users"),
    "users_moved": gettext_lazy("Users moved"),
    "value": gettext_lazy("Value"),
}

# Keys whose stored values are choice values, shown by their labels.
CHOICE_LABELS = {
    "action": dict(AuditAction.choices),
    "outcome": dict(Outcome.choices),
    "role": dict(Role.choices),
    "kind": dict(BulkJobKind.choices),
    "status": dict(RequestStatus.choices),
}


@dataclass(frozen=True)
class ValueRow:
    """One labelled value of an event's ``before`` or ``after``. A bare value, not in a dict, has no label."""

    label: str
    value: str


class SkuIndex:
    """The tenant's SKUs by lower-case SKU ID, read with one query, to name SKUs and service plans."""

    def __init__(self, skus: Iterable[Sku]) -> None:
        self.skus = {str(sku.sku_id).lower(): sku for sku in skus}
        self.sku_ids_by_pk = {sku.pk: str(sku.sku_id) for sku in self.skus.values()}

    @classmethod
    def for_tenant(cls, tenant: Tenant) -> SkuIndex:
        return cls(Sku.objects.filter(tenant=tenant).only("sku_id", "part_number", "display_name", "name_override",
                                                           "service_plans"))

    def sku_name(self, sku_id: Any) -> str:
        sku = self.skus.get(str(sku_id).lower())
        return sku.name if sku is not None else str(sku_id)

    def plan_name(self, sku_id: Any, plan_id: Any) -> str:
        """Return Microsoft's friendly name of the plan, else Graph's servicePlanName, else the raw ID."""
        key = str(plan_id).lower()
        friendly = service_plan_friendly_names().get(key)
        if friendly:
            return friendly
        sku = self.skus.get(str(sku_id).lower())
        for plan in sku.service_plans if sku is not None else []:
            if str(plan.get("servicePlanId", "")).lower() == key and plan.get("servicePlanName"):
                return str(plan["servicePlanName"])
        return str(plan_id)


def format_scalar(value: Any) -> str:
    if value is None:
        return _("none")
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    return str(value)


def format_value(value: Any) -> str:
    """Format a scalar as text, a list of scalars comma-separated, and nested data as JSON."""
    if isinstance(value, list) and all(not isinstance(item, (dict, list)) for item in value):
        return ", ".join(format_scalar(item) for item in value) if value else _("none")
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return format_scalar(value)


def value_rows(value: Any, *, event: AuditEvent, skus: SkuIndex) -> list[ValueRow]:
    """Return the labelled rows of one ``before`` or ``after`` value, and no rows for None."""
    if value is None:
        return []
    if not isinstance(value, dict):
        return [ValueRow("", format_value(value))]

    # Disabled plans belong to the SKU in the same value, else to the event's SKU.
    sku_id = value.get("skuId") or skus.sku_ids_by_pk.get(event.sku_id, "")
    rows = []
    for key, item in value.items():
        if key == "skuId" and item:
            text = skus.sku_name(item)
        elif key == "disabledPlans" and isinstance(item, list) and item:
            text = ", ".join(skus.plan_name(sku_id, plan_id) for plan_id in item)
        elif key in CHOICE_LABELS and isinstance(item, str):
            text = str(CHOICE_LABELS[key].get(item, item))
        else:
            text = format_value(item)
        rows.append(ValueRow(str(FIELD_LABELS.get(key, key)), text))
    return rows


def add_value_rows(events: Iterable[AuditEvent], tenant: Tenant) -> None:
    """Set ``before_rows`` and ``after_rows`` on each event, with one query for the tenant's SKUs."""
    skus = SkuIndex.for_tenant(tenant)
    for event in events:
        event.before_rows = value_rows(event.before, event=event, skus=skus)
        event.after_rows = value_rows(event.after, event=event, skus=skus)
