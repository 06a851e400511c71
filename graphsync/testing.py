"""Helpers for tests that drive the Graph emulator: its control interface, traffic counts, mirror checks."""
from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import requests

CONTROL_TOKEN = "test-control-token"
CONTROL_HEADER = "X-Emulator-Control"

# Graph user property -> DirectoryUser field compared between the emulator and the mirror.
COMPARED_USER_PROPERTIES = {
    "userPrincipalName": "user_principal_name",
    "displayName": "display_name",
    "accountEnabled": "account_enabled",
    "department": "department",
    "companyName": "company_name",
    "country": "country",
    "city": "city",
    "officeLocation": "office_location",
    "usageLocation": "usage_location",
    "jobTitle": "job_title",
    "employeeId": "employee_id",
    "employeeType": "employee_type",
}


def control(emulator, method: str, path: str, body: Any = None) -> Any:
    """Call the emulator's control interface at ``/_emulator/<path>`` and return the JSON body, if any."""
    response = requests.request(
        method,
        f"{emulator.base_url}/_emulator/{path.lstrip('/')}",
        json=body,
        headers={CONTROL_HEADER: CONTROL_TOKEN},
        verify=str(emulator.ca_path),
        timeout=30,
    )
    assert response.status_code < 400, f"{method} /_emulator/{path} returned {response.status_code}: {response.text}"
    return response.json() if response.content else None


def set_faults(emulator, **settings: Any) -> dict:
    return control(emulator, "POST", "faults", settings)


def emulator_snapshot(emulator, tenant_id: str) -> dict:
    return control(emulator, "GET", f"tenants/{tenant_id}/snapshot")


class GraphTraffic:
    """Counts the Graph requests the emulator serves, by status, including each request inside a $batch."""

    def __init__(self, emulator) -> None:
        self.statuses: Counter[int] = Counter()
        self.paths: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._app = emulator.app
        self._serve_graph = emulator.app.serve_graph
        emulator.app.serve_graph = self._count

    def _count(self, request, segments):
        response = self._serve_graph(request, segments)
        with self._lock:
            self.statuses[response.status_code] += 1
            self.paths["/".join(segments)] += 1
        return response

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    def reset(self) -> None:
        with self._lock:
            self.statuses.clear()
            self.paths.clear()

    def close(self) -> None:
        self._app.serve_graph = self._serve_graph


def expected_mirror(snapshot: dict) -> dict:
    """Return what the mirror should contain for an emulator snapshot, in ``mirror_state``'s shape."""
    users = {}
    licenses = set()
    for user in snapshot["users"]:
        if user.get("deletedDateTime"):
            continue
        user_id = user["id"].lower()
        users[user_id] = {
            field: (bool(user.get(prop, True)) if prop == "accountEnabled" else str(user.get(prop) or ""))
            for prop, field in COMPARED_USER_PROPERTIES.items()
        }
        for state in user.get("licenseAssignmentStates") or []:
            licenses.add(
                (user_id, state["skuId"].lower(), (state.get("assignedByGroup") or "").lower(), state.get("state") or "Active")
            )
    skus = {
        sku["skuId"].lower(): (int(sku.get("consumedUnits") or 0), int((sku.get("prepaidUnits") or {}).get("enabled") or 0))
        for sku in snapshot["subscribedSkus"]
    }
    deleted = {user["id"].lower() for user in snapshot["users"] if user.get("deletedDateTime")}
    return {"users": users, "licenses": licenses, "skus": skus, "deleted": deleted}


def mirror_state(tenant) -> dict:
    """Return the tenant's mirror: active users' compared fields, license rows, SKU counts, deleted user ids."""
    from .models import DirectoryUser, Sku, UserLicense

    users = {
        str(values["user_id"]): {field: values[field] for field in COMPARED_USER_PROPERTIES.values()}
        for values in DirectoryUser.objects.filter(tenant=tenant, is_deleted=False).values(
            "user_id", *COMPARED_USER_PROPERTIES.values()
        )
    }
    licenses = {
        (str(user_id), str(sku_id), group, state)
        for user_id, sku_id, group, state in UserLicense.objects.filter(tenant=tenant, user__is_deleted=False).values_list(
            "user__user_id", "sku__sku_id", "assigned_by_group", "state"
        )
    }
    skus = {
        str(sku_id): (consumed, enabled)
        for sku_id, consumed, enabled in Sku.objects.filter(tenant=tenant).values_list(
            "sku_id", "consumed_units", "enabled_units"
        )
    }
    deleted = {str(user_id) for user_id in DirectoryUser.objects.filter(tenant=tenant, is_deleted=True).values_list("user_id", flat=True)}
    return {"users": users, "licenses": licenses, "skus": skus, "deleted": deleted}


def clear_throttle_state(tenant_id: str) -> None:
    """Delete the tenant's shared throttling keys, so one test's pause does not slow the next."""
    from .throttle import BUCKET_KEY, RESUME_KEY, throttle_redis_url

    url = throttle_redis_url()
    if not url:
        return
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.delete(RESUME_KEY.format(tenant_id=tenant_id.lower()), BUCKET_KEY.format(tenant_id=tenant_id.lower()))
    finally:
        client.close()
