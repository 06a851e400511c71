"""Streamed exports of a tenant's audit trail as CSV or JSON Lines, for the audit trail page and the API.

Both formats list the events oldest first, one event per line, with timestamps in ISO 8601 UTC. The
events are read through a database cursor in chunks of ``EXPORT_CHUNK_SIZE`` and written as they come,
so an export of a million events holds only one chunk in memory.

CSV is UTF-8 with a byte order mark, so that Excel detects the encoding. A text cell that a spreadsheet
would run as a formula gets a leading apostrophe. ``before`` and ``after`` are JSON text in CSV.

JSON Lines (https://jsonlines.org/) has one JSON object per line, with ``before`` and ``after`` as the JSON
values the services stored. Each line parses on its own, so a client can process an export of any size
line by line.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.utils.translation import gettext as _

from chargeback.exports import BYTE_ORDER_MARK, safe_text
from graphsync.models import Tenant

from .audit import record_event
from .choices import AuditAction
from .models import AuditEvent

# Rows fetched per round trip from the database cursor, and rows written per chunk of the response.
EXPORT_CHUNK_SIZE = 2000

CSV_FORMAT = "csv"
JSON_LINES_FORMAT = "jsonl"
CONTENT_TYPES = {
    CSV_FORMAT: "text/csv; charset=utf-8",
    JSON_LINES_FORMAT: "application/x-ndjson; charset=utf-8",
}

# The fields an export reads, as dicts, which cost less per row than model instances. Only the target
# user's object ID needs a join.
EXPORT_VALUES = (
    "pk", "occurred_at", "actor_name", "action", "outcome", "pool_id", "pool_name", "target_user__user_id",
    "target", "sku_part_number", "before", "after", "message", "graph_request_id",
)


@dataclass(frozen=True)
class AuditExport:
    """The events one export writes, in the format requested, with the date range its file name shows."""

    tenant: Tenant
    events: QuerySet[AuditEvent]
    file_format: str
    first_day: dt.date
    last_day: dt.date

    @property
    def filename(self) -> str:
        tenant_slug = slugify(self.tenant.name) or f"tenant-{self.tenant.pk}"
        return f"audit-{tenant_slug}-{self.first_day.isoformat()}-to-{self.last_day.isoformat()}.{self.file_format}"


def utc_timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def json_text(value: Any) -> str:
    """Return ``value`` as compact JSON, or an empty string for None, which events store for "no value"."""
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def csv_header() -> list[str]:
    return [
        _("ID"), _("Occurred at (UTC)"), _("Actor"), _("Action code"), _("Action"), _("Outcome"), _("Tenant"),
        _("Pool ID"), _("Pool"), _("Target user ID"), _("Target"), _("SKU"), _("Before"), _("After"), _("Message"),
        _("Graph request ID"),
    ]


def csv_row(event: dict[str, Any], *, tenant: Tenant, action_labels: dict[str, str]) -> list[Any]:
    target_user_id = event["target_user__user_id"]
    return [
        event["pk"],
        utc_timestamp(event["occurred_at"]),
        safe_text(event["actor_name"]),
        safe_text(event["action"]),
        safe_text(action_labels.get(event["action"], event["action"])),
        safe_text(event["outcome"]),
        safe_text(tenant.name),
        "" if event["pool_id"] is None else event["pool_id"],
        safe_text(event["pool_name"]),
        "" if target_user_id is None else str(target_user_id),
        safe_text(event["target"]),
        safe_text(event["sku_part_number"]),
        safe_text(json_text(event["before"])),
        safe_text(json_text(event["after"])),
        safe_text(event["message"]),
        safe_text(event["graph_request_id"]),
    ]


def json_line(event: dict[str, Any], *, tenant: Tenant, action_labels: dict[str, str]) -> str:
    """Return one event as a line of JSON. ``pools.api.audit.AuditExportEventSerializer`` documents its keys."""
    target_user_id = event["target_user__user_id"]
    record = {
        "id": event["pk"],
        "occurredAt": utc_timestamp(event["occurred_at"]),
        "actor": event["actor_name"],
        "action": event["action"],
        "actionLabel": action_labels.get(event["action"], event["action"]),
        "outcome": event["outcome"],
        "tenantId": tenant.pk,
        "tenant": tenant.name,
        "poolId": event["pool_id"],
        "pool": event["pool_name"],
        "targetUserId": None if target_user_id is None else str(target_user_id),
        "target": event["target"],
        "skuPartNumber": event["sku_part_number"],
        "before": event["before"],
        "after": event["after"],
        "message": event["message"],
        "graphRequestId": event["graph_request_id"],
    }
    return json.dumps(record, ensure_ascii=False) + "\n"


def _event_values(events: QuerySet[AuditEvent]) -> Iterator[dict[str, Any]]:
    return events.order_by("occurred_at", "pk").values(*EXPORT_VALUES).iterator(chunk_size=EXPORT_CHUNK_SIZE)


def _chunks(lines: Iterator[str]) -> Iterator[bytes]:
    """Join ``EXPORT_CHUNK_SIZE`` lines at a time into one UTF-8 chunk of the response."""
    buffer: list[str] = []
    for line in lines:
        buffer.append(line)
        if len(buffer) >= EXPORT_CHUNK_SIZE:
            yield "".join(buffer).encode("utf-8")
            buffer = []
    if buffer:
        yield "".join(buffer).encode("utf-8")


def csv_lines(export: AuditExport, *, header: list[str], action_labels: dict[str, str]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def take_line() -> str:
        line = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return line

    writer.writerow(header)
    yield BYTE_ORDER_MARK + take_line()
    for event in _event_values(export.events):
        writer.writerow(csv_row(event, tenant=export.tenant, action_labels=action_labels))
        yield take_line()


def json_lines(export: AuditExport, *, action_labels: dict[str, str]) -> Iterator[str]:
    for event in _event_values(export.events):
        yield json_line(event, tenant=export.tenant, action_labels=action_labels)


def export_response(export: AuditExport) -> StreamingHttpResponse:
    # The labels are translated here, in the request's language, because the response is written later.
    action_labels = {value: str(label) for value, label in AuditAction.choices}
    if export.file_format == CSV_FORMAT:
        lines = csv_lines(export, header=csv_header(), action_labels=action_labels)
    else:
        lines = json_lines(export, action_labels=action_labels)
    response = StreamingHttpResponse(_chunks(lines), content_type=CONTENT_TYPES[export.file_format])
    response["Content-Disposition"] = content_disposition_header(True, export.filename)
    return response


def _renamed_pool_filter(filters: dict[str, Any]) -> dict[str, Any]:
    """Return ``filters`` with the pool under "poolId", which the audit trail page labels as a pool ID."""
    return {("poolId" if name == "pool" else name): value for name, value in filters.items()}


def _first_event_day(tenant: Tenant, *, default: dt.date) -> dt.date:
    """Return the UTC day of the tenant's first event, which the index on (tenant, occurred_at) finds at once."""
    events = AuditEvent.objects.filter(tenant=tenant).order_by("occurred_at")
    first_event_at = events.values_list("occurred_at", flat=True).first()
    if first_event_at is None:
        return default
    return first_event_at.astimezone(dt.timezone.utc).date()


def start_export(
    *, acting_user: AbstractBaseUser, tenant: Tenant, events: QuerySet[AuditEvent], filters: dict[str, Any],
    file_format: str, channel: str,
) -> AuditExport:
    """Record an audit event for the export and return the export of ``events``, which the event is not part of.

    ``filters`` are the active filters as JSON values keyed by query parameter, and ``channel`` is "web"
    or "api". The event stores them, so that the audit trail shows who exported which events. Without a
    ``from`` filter, the file name's range begins on the day of the tenant's first event.
    """
    today = timezone.now().astimezone(dt.timezone.utc).date()
    first_day = filters.get("from") or _first_event_day(tenant, default=today).isoformat()
    last_day = filters.get("to") or today.isoformat()

    event = record_event(
        acting_user=acting_user, action=AuditAction.AUDIT_EXPORTED, tenant=tenant,
        after={"format": file_format, "channel": channel, **_renamed_pool_filter(filters)},
        message=_("Exported the events from %(first)s to %(last)s (UTC).") % {"first": first_day, "last": last_day},
    )
    return AuditExport(
        tenant=tenant,
        events=events.exclude(pk=event.pk),
        file_format=file_format,
        first_day=dt.date.fromisoformat(first_day),
        last_day=dt.date.fromisoformat(last_day),
    )
