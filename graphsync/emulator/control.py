"""The emulator's control interface under /_emulator/: inspect state and make out-of-band changes.

It changes the tenant the way an administrator working in the admin center
would, so the portal under test sees changes it did not make. Requests must
carry the control token given at start in the X-Emulator-Control header.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from . import licensing
from .errors import GraphError, bad_request, invalid_json_body
from .graph_schema import CAPABILITY_STATUSES, PREPAID_UNIT_KEYS, USER_LICENSE_PROPERTIES, is_guid
from .responses import json_response, read_json_body
from .reports import SERVICE_KEYS
from .snapshot import SnapshotError, validate_skus, validate_users

if TYPE_CHECKING:
    from .app import EmulatorApp
    from .state import TenantState

logger = logging.getLogger(__name__)

# PATCH cannot set these, because they identify the user or are computed from assignments.
READ_ONLY_USER_PROPERTIES = frozenset({"id", "deletedDateTime"}) | USER_LICENSE_PROPERTIES


def dispatch(app: EmulatorApp, request: Request, segments: list[str]) -> Response:
    """Route a control path (the segments after /_emulator) to its handler."""
    method = request.method
    if segments == ["faults"]:
        if method == "GET":
            return json_response(app.faults.settings.to_json())
        if method == "POST":
            try:
                settings = app.faults.update(_object_body(request))
            except ValueError as error:
                raise bad_request(str(error)) from None
            logger.info("Fault settings changed to %s", settings.to_json())
            return json_response(settings.to_json())
    if segments == ["requests"] and method == "GET":
        # Successful Graph writes in arrival order; requests that failed or were faulted are not listed.
        return json_response({"value": app.write_log.entries()})
    if segments == ["tokens", "expire"] and method == "POST":
        return json_response({"expired": app.tokens.expire_all()})
    if segments == ["throttling", "reset"] and method == "POST":
        app.throttler.reset()
        logger.info("Control interface reset the throttling counters")
        return Response(status=204)
    if segments == ["tenants"] and method == "GET":
        return json_response({"value": [{"tenantId": state.tenant_id, "displayName": state.display_name} for state in app.tenants.values()]})

    if len(segments) >= 3 and segments[0] == "tenants":
        state = app.find_tenant(segments[1])
        if state is None:
            raise GraphError(404, "NotFound", f"Tenant '{segments[1]}' is not loaded in the emulator.")
        rest = segments[2:]
        if rest == ["snapshot"] and method == "GET":
            return json_response(state.to_snapshot())
        if rest == ["users"] and method == "POST":
            return _create_user(state, _object_body(request))
        if len(rest) == 2 and rest[0] == "users":
            return _user_endpoint(state, request, rest[1])
        if len(rest) == 3 and rest[0] == "users" and rest[2] == "licenses" and method == "POST":
            user = licensing.assign_user_licenses(state, rest[1], _object_body(request))
            logger.info("Control interface changed licenses of user %s in tenant %s", user["id"], state.tenant_id)
            return json_response(user)
        if len(rest) == 3 and rest[0] == "users" and rest[2] == "restore" and method == "POST":
            return _restore_user(state, rest[1])
        if len(rest) == 3 and rest[0] == "users" and rest[2] == "activity" and method == "POST":
            return _set_report_activity(state, rest[1], _object_body(request))
        if len(rest) == 2 and rest[0] == "deletedUsers" and method == "DELETE":
            return _purge_user(state, rest[1])
        if rest == ["skus"] and method == "POST":
            return _add_sku(state, _object_body(request))
        if len(rest) == 2 and rest[0] == "skus" and method == "POST":
            return _set_sku_units(state, rest[1], _object_body(request))
        if len(rest) == 3 and rest[0] == "groups" and rest[2] == "members" and method == "POST":
            return _add_group_member(state, rest[1], _object_body(request))
        if len(rest) == 4 and rest[0] == "groups" and rest[2] == "members" and method == "DELETE":
            return _remove_group_member(state, rest[1], rest[3])
        if rest == ["delta", "expire"] and method == "POST":
            floor = state.expire_delta_tokens()
            logger.info("Control interface expired the delta tokens of tenant %s at sequence %s", state.tenant_id, floor)
            return json_response({"deltaFloor": floor})
    raise GraphError(404, "NotFound", f"No control endpoint {method} /_emulator/{'/'.join(segments)}.")


def _object_body(request: Request) -> dict[str, Any]:
    try:
        body = read_json_body(request)
    except ValueError:
        raise invalid_json_body() from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def _user_endpoint(state: TenantState, request: Request, key: str) -> Response:
    with state.lock:
        user_id = state.find_user(key)
        if user_id is None:
            raise GraphError(404, "NotFound", f"User '{key}' does not exist in tenant {state.tenant_id}.")
        if request.method == "GET":
            return json_response(state.render_user(user_id))
        if request.method == "PATCH":
            changes = _object_body(request)
            read_only = sorted(READ_ONLY_USER_PROPERTIES.intersection(changes))
            if read_only:
                raise bad_request(f"Properties {', '.join(read_only)} cannot be changed through PATCH.")
            candidate = {**state.users[user_id], **changes}
            try:
                validate_users([candidate], set(state.skus))
                state.update_user(user_id, changes)
            except (SnapshotError, ValueError) as error:
                raise bad_request(str(error)) from None
            logger.info("Control interface changed %s of user %s in tenant %s", sorted(changes), user_id, state.tenant_id)
            return json_response(state.render_user(user_id))
        if request.method == "DELETE":
            state.delete_user(user_id)
            logger.info("Control interface deleted user %s in tenant %s", user_id, state.tenant_id)
            return Response(status=204)
    raise GraphError(405, "MethodNotAllowed", f"{request.method} is not allowed on a control user endpoint.")


def _create_user(state: TenantState, user: dict[str, Any]) -> Response:
    try:
        validate_users([user], set(state.skus))
        if user.get("assignedLicenses") or user.get("licenseAssignmentStates"):
            raise ValueError("create the user first, then assign licenses through /licenses")
        user_id = state.add_user(user)
    except (SnapshotError, ValueError) as error:
        raise bad_request(str(error)) from None
    logger.info("Control interface created user %s in tenant %s", user_id, state.tenant_id)
    return json_response(state.render_user(user_id), status=201)


def _restore_user(state: TenantState, key: str) -> Response:
    with state.lock:
        state.purge_expired_deletions()
        user_id = key.lower()
        if user_id not in state.deleted_users:
            raise GraphError(404, "NotFound", f"No deleted user with id '{key}' in tenant {state.tenant_id}.")
        try:
            state.restore_user(user_id)
        except ValueError as error:
            raise bad_request(str(error)) from None
        logger.info("Control interface restored user %s in tenant %s", user_id, state.tenant_id)
        return json_response(state.render_user(user_id))


def _purge_user(state: TenantState, key: str) -> Response:
    with state.lock:
        user_id = key.lower()
        if user_id not in state.deleted_users:
            raise GraphError(404, "NotFound", f"No deleted user with id '{key}' in tenant {state.tenant_id}; delete the user first.")
        state.purge_user(user_id)
    logger.info("Control interface permanently deleted user %s in tenant %s", user_id, state.tenant_id)
    return Response(status=204)


def _set_report_activity(state: TenantState, key: str, body: dict[str, Any]) -> Response:
    """Set last activity dates for the usage report, keyed by service name, for example {"Exchange": "2024-05-01"}."""
    with state.lock:
        user_id = state.find_user(key) or (key.lower() if key.lower() in state.deleted_users else None)
        if user_id is None:
            raise GraphError(404, "NotFound", f"User '{key}' does not exist in tenant {state.tenant_id}.")
        activity: dict[str, str] = {}
        for service, value in body.items():
            name = SERVICE_KEYS.get(service.lower().replace(" ", ""))
            if name is None:
                raise bad_request(f"Unknown service {service!r}; expected one of {', '.join(SERVICE_KEYS.values())}.")
            if value is None:
                value = ""
            if not isinstance(value, str) or (value and not _is_date(value)):
                raise bad_request(f"The activity date of {service} must be YYYY-MM-DD or null, got {value!r}.")
            activity[name] = value
        state.report_activity.setdefault(user_id, {}).update(activity)
        return json_response({"id": user_id, "activity": state.report_activity[user_id]})


def _is_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _add_sku(state: TenantState, body: dict[str, Any]) -> Response:
    """Subscribe the tenant to a SKU, which may be one the licensing reference table does not list."""
    sku = dict(body)
    template = next(iter(state.skus.values()), {})
    sku.setdefault("accountId", template.get("accountId", state.tenant_id))
    sku.setdefault("accountName", template.get("accountName", state.display_name))
    sku.setdefault("appliesTo", "User")
    sku.setdefault("capabilityStatus", "Enabled")
    sku.setdefault("subscriptionIds", [])
    prepaid = sku.get("prepaidUnits", {})
    if not isinstance(prepaid, dict):
        raise bad_request("prepaidUnits must be an object.")
    sku["prepaidUnits"] = {key: prepaid.get(key, 0) for key in PREPAID_UNIT_KEYS}
    unknown = sorted(set(prepaid) - set(PREPAID_UNIT_KEYS))
    if unknown:
        raise bad_request(f"Unknown prepaidUnits key {unknown[0]!r}; expected {', '.join(PREPAID_UNIT_KEYS)}.")
    plans = sku.get("servicePlans", [])
    if isinstance(plans, list):
        sku["servicePlans"] = [
            {"provisioningStatus": "Success", "appliesTo": "User", **plan} if isinstance(plan, dict) else plan for plan in plans
        ]
    try:
        validate_skus([sku])
        sku_id = state.add_sku(sku)
    except (SnapshotError, ValueError) as error:
        raise bad_request(str(error)) from None
    logger.info("Control interface added SKU %s (%s) to tenant %s", sku_id, sku["skuPartNumber"], state.tenant_id)
    return json_response(state.render_sku(sku_id), status=201)


def _find_group_and_user(state: TenantState, group_key: str, user_key: str) -> tuple[str, str]:
    group_id = state.find_group(group_key)
    if group_id is None:
        raise GraphError(404, "NotFound", f"Group '{group_key}' does not exist in tenant {state.tenant_id}.")
    user_id = state.find_user(user_key)
    if user_id is None:
        raise GraphError(404, "NotFound", f"User '{user_key}' does not exist in tenant {state.tenant_id}.")
    return group_id, user_id


def _add_group_member(state: TenantState, group_key: str, body: dict[str, Any]) -> Response:
    user_key = body.get("id")
    if not isinstance(user_key, str):
        raise bad_request("The body must name the user to add as {\"id\": \"<user id or userPrincipalName>\"}.")
    with state.lock:
        group_id, user_id = _find_group_and_user(state, group_key, user_key)
        try:
            state.add_group_member(group_id, user_id)
        except ValueError as error:
            raise bad_request(str(error)) from None
        logger.info("Control interface added user %s to group %s in tenant %s", user_id, group_id, state.tenant_id)
        return json_response(state.render_user(user_id))


def _remove_group_member(state: TenantState, group_key: str, user_key: str) -> Response:
    with state.lock:
        group_id, user_id = _find_group_and_user(state, group_key, user_key)
        try:
            state.remove_group_member(group_id, user_id)
        except ValueError as error:
            raise bad_request(str(error)) from None
        logger.info("Control interface removed user %s from group %s in tenant %s", user_id, group_id, state.tenant_id)
        return json_response(state.render_user(user_id))


def _set_sku_units(state: TenantState, sku_key: str, body: dict[str, Any]) -> Response:
    sku_id = sku_key.lower()
    if not is_guid(sku_id) or sku_id not in state.skus:
        raise GraphError(404, "NotFound", f"SKU '{sku_key}' is not subscribed in tenant {state.tenant_id}.")
    prepaid = body.get("prepaidUnits", {})
    if not isinstance(prepaid, dict):
        raise bad_request("prepaidUnits must be an object.")
    for key, value in prepaid.items():
        if key not in PREPAID_UNIT_KEYS:
            raise bad_request(f"Unknown prepaidUnits key {key!r}; expected {', '.join(PREPAID_UNIT_KEYS)}.")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise bad_request(f"prepaidUnits.{key} must be a non-negative integer, got {value!r}.")
    status = body.get("capabilityStatus")
    if status is not None and status not in CAPABILITY_STATUSES:
        raise bad_request(f"capabilityStatus must be one of {', '.join(sorted(CAPABILITY_STATUSES))}, got {status!r}.")
    state.set_sku_units(sku_id, prepaid, status)
    logger.info("Control interface set units of SKU %s in tenant %s to %s", sku_id, state.tenant_id, prepaid)
    return json_response(state.render_sku(sku_id))
