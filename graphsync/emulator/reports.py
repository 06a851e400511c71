"""Microsoft 365 usage reports: getOffice365ActiveUserDetail returns 302 to a CSV download.

Graph redirects report requests to a short-lived, pre-authenticated download URL.
The emulator serves that URL itself under /report-downloads/{token}, without a
bearer token, for DOWNLOAD_LIFETIME_SECONDS.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Response

from .catalog import load_catalog
from .errors import GraphError, bad_request
from .state import TenantState, parse_timestamp

if TYPE_CHECKING:
    from .graph_api import GraphRequest

DOWNLOAD_PREFIX = "report-downloads"
DOWNLOAD_LIFETIME_SECONDS = 300
PERIODS = {"D7": 7, "D30": 30, "D90": 90, "D180": 180}
_REPORT_SEGMENT = re.compile(r"^getOffice365ActiveUserDetail\(period='([^']*)'\)$", re.IGNORECASE)

# The services of the report, in column order, with the service plan name prefixes that license each.
SERVICES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Exchange", ("EXCHANGE_S_STANDARD", "EXCHANGE_S_ENTERPRISE", "EXCHANGE_S_DESKLESS", "EXCHANGE_S_ESSENTIALS")),
    ("OneDrive", ("ONEDRIVE", "SHAREPOINTSTANDARD", "SHAREPOINTENTERPRISE", "SHAREPOINTDESKLESS")),
    ("SharePoint", ("SHAREPOINTSTANDARD", "SHAREPOINTENTERPRISE", "SHAREPOINTDESKLESS")),
    ("Skype For Business", ("MCOSTANDARD", "MCOIMP")),
    ("Yammer", ("YAMMER_",)),
    ("Teams", ("TEAMS1", "TEAMS_")),
)
SERVICE_KEYS = {name.lower().replace(" ", ""): name for name, _ in SERVICES}

COLUMNS = (
    ["Report Refresh Date", "User Principal Name", "Display Name", "Is Deleted", "Deleted Date"]
    + [f"Has {name} License" for name, _ in SERVICES]
    + [f"{name} Last Activity Date" for name, _ in SERVICES]
    + [f"{name} License Assign Date" for name, _ in SERVICES]
    + ["Assigned Products"]
)


class DownloadStore:
    """Report files waiting for download, each under a random token until it expires."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, tuple[float, bytes, str]] = {}

    def add(self, content: bytes, filename: str) -> str:
        token = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            for key in [key for key, (expires, _, _) in self._files.items() if expires < now]:
                del self._files[key]
            self._files[token] = (now + DOWNLOAD_LIFETIME_SECONDS, content, filename)
        return token

    def get(self, token: str) -> tuple[bytes, str] | None:
        with self._lock:
            entry = self._files.get(token)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1], entry[2]


def serve_download(store: DownloadStore, token: str) -> Response:
    entry = store.get(token)
    if entry is None:
        # NOTE: the report host's response to an expired download URL is not recorded, so 404 is the emulator's choice.
        return Response("The download link has expired or does not exist.", status=404, content_type="text/plain")
    content, filename = entry
    return Response(
        content,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def office365_active_user_detail(graph: GraphRequest, segment: str) -> Response:
    """Serve GET /reports/getOffice365ActiveUserDetail(period='D7|D30|D90|D180') as 302 to the CSV."""
    match = _REPORT_SEGMENT.match(segment)
    if match is None:
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
    period = match.group(1)
    if period not in PERIODS:
        # NOTE: Graph rejects other periods with 400; its exact code and wording are not recorded.
        raise bad_request(f"Invalid value '{period}' for parameter 'period'. Supported values are D7, D30, D90 and D180.", code="BadRequest")
    if graph.app is None:
        raise GraphError(500, "generalException", "General exception while processing.")
    content = build_active_user_csv(graph.state, PERIODS[period])
    token = graph.app.downloads.add(content, f"Office365ActiveUserDetail{period}.csv")
    location = f"{graph.request.host_url.rstrip('/')}/{DOWNLOAD_PREFIX}/{token}"
    return Response(status=302, headers={"Location": location})


def build_active_user_csv(state: TenantState, days: int) -> bytes:
    """Return the report as UTF-8 CSV with a byte order mark, as Graph's report downloads are.

    Active users are listed, and deleted users when they were deleted within the period.
    """
    refresh = dt.datetime.strptime(state.clock()[:10], "%Y-%m-%d").date()
    catalog = load_catalog()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    with state.lock:
        rows = [(user_id, False) for user_id in state.user_ids]
        for user_id, record in sorted(state.deleted_users.items()):
            try:
                deleted_at = parse_timestamp(record["deletedDateTime"]).date()
            except (KeyError, TypeError, ValueError):
                continue
            if (refresh - deleted_at).days <= days:
                rows.append((user_id, True))
        for user_id, deleted in rows:
            writer.writerow(_user_row(state, catalog, user_id, deleted, refresh))
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _user_row(state: TenantState, catalog: Any, user_id: str, deleted: bool, refresh: dt.date) -> list[str]:
    record = state.users.get(user_id) or state.deleted_users[user_id]
    assignments = [assignment for assignment in state.assignments.get(user_id, {}).values() if assignment.active]
    enabled = state.enabled_plans(assignments)
    licensed = {name: any(plan.startswith(prefixes) for plan in enabled) for name, prefixes in SERVICES}
    assign_dates = {name: _first_assign_date(state, assignments, prefixes) for name, prefixes in SERVICES}
    overrides = state.report_activity.get(user_id, {})
    activity = {name: overrides.get(name, _synthetic_activity(user_id, name, refresh) if licensed[name] else "") for name, _ in SERVICES}
    products = []
    for assignment in assignments:
        sku = catalog.get(assignment.sku_id)
        products.append((sku.display_name if sku is not None else state.skus[assignment.sku_id]["skuPartNumber"]).upper())
    deleted_date = record.get("deletedDateTime", "")[:10] if deleted else ""
    return (
        [refresh.isoformat(), record.get("userPrincipalName", ""), record.get("displayName") or "", str(deleted), deleted_date]
        + [str(licensed[name]) for name, _ in SERVICES]
        + [activity[name] or "" for name, _ in SERVICES]
        + [assign_dates[name] for name, _ in SERVICES]
        + ["+".join(sorted(set(products)))]
    )


def _first_assign_date(state: TenantState, assignments: list[Any], prefixes: tuple[str, ...]) -> str:
    dates = []
    for assignment in assignments:
        plans = state.enabled_plans([assignment])
        if any(plan.startswith(prefixes) for plan in plans):
            dates.append(assignment.last_updated[:10])
    return min(dates) if dates else ""


def _synthetic_activity(user_id: str, service: str, refresh: dt.date) -> str:
    """Return a stable last activity date for a licensed service, or "" for a service never used.

    NOTE: snapshots carry no usage data, so the emulator derives dates from the user id:
    about 70 % of licensed services were used in the last 30 days, 15 % between 30 and
    180 days ago and 15 % never. The control interface can set real values per user.
    """
    digest = hashlib.sha256(f"{user_id}:{service}".encode()).digest()
    roll = digest[0] % 100
    if roll < 70:
        age = digest[1] % 30
    elif roll < 85:
        age = 30 + digest[1] % 150
    else:
        return ""
    return (refresh - dt.timedelta(days=age)).isoformat()
