"""The assignLicense actions for users and groups, with Graph's validation and error messages.

Each action validates the whole request before it changes anything, so a
rejected request leaves the tenant as it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .errors import bad_request, resource_not_found
from .graph_schema import is_guid
from .plan_rules import find_exclusive_pair, find_missing_dependency, find_prohibited_plan
from .state import AssignmentKey, LicenseAssignment, TenantState

logger = logging.getLogger(__name__)

GUID_CONVERSION_MESSAGE = (
    "Cannot convert a primitive value to the expected type 'Edm.Guid'. See the inner exception for more details"
)


@dataclass
class LicenseChanges:
    """A parsed assignLicense body: SKU id -> disabled plan ids to add, and SKU ids to remove."""

    add: dict[str, list[str]]
    remove: list[str]


def parse_license_changes(state: TenantState, body: Any) -> LicenseChanges:
    """Check the body shape, GUIDs and SKUs of an assignLicense request."""
    if not isinstance(body, dict):
        body = {}
    missing = [name for name in ("addLicenses", "removeLicenses") if body.get(name) is None]
    if missing:
        raise bad_request(
            "One or more parameters of the operation 'assignLicense' are missing from the request payload. "
            f"The missing parameters are: {', '.join(missing)}."
        )
    add_licenses, remove_licenses = body["addLicenses"], body["removeLicenses"]
    if not isinstance(add_licenses, list) or not all(isinstance(item, dict) for item in add_licenses):
        raise bad_request("Invalid value for parameter 'addLicenses': expected an array of assignedLicense objects.")
    if not isinstance(remove_licenses, list):
        raise bad_request("Invalid value for parameter 'removeLicenses': expected an array of GUIDs.")

    for item in add_licenses:
        disabled = item.get("disabledPlans") or []
        if not is_guid(item.get("skuId")) or not isinstance(disabled, list) or not all(is_guid(plan) for plan in disabled):
            raise bad_request(GUID_CONVERSION_MESSAGE)
    if not all(is_guid(sku_id) for sku_id in remove_licenses):
        raise bad_request(GUID_CONVERSION_MESSAGE)

    add = {item["skuId"].lower(): [plan.lower() for plan in item.get("disabledPlans") or []] for item in add_licenses}
    remove = list(dict.fromkeys(sku_id.lower() for sku_id in remove_licenses))
    for sku_id in [*add, *remove]:
        if sku_id not in state.skus:
            raise bad_request(f"License {sku_id} does not correspond to a valid company License.")
    for sku_id, disabled in add.items():
        known_plans = {plan["servicePlanId"].lower() for plan in state.skus[sku_id]["servicePlans"]}
        for plan_id in disabled:
            if plan_id not in known_plans:
                # NOTE: Graph rejects such a plan, but its exact message is not recorded, so this wording is the emulator's.
                raise bad_request(f"Service plan {plan_id} is not part of the SKU {sku_id}.")
    return LicenseChanges(add=add, remove=remove)


def assign_user_licenses(state: TenantState, user_key: str, body: Any) -> dict[str, Any]:
    """Apply POST /users/{id|userPrincipalName}/assignLicense and return the updated user."""
    with state.lock:
        user_id = state.find_user(user_key)
        if user_id is None:
            raise resource_not_found(user_key)
        changes = parse_license_changes(state, body)
        user = state.users[user_id]
        if changes.add and not user.get("usageLocation"):
            raise bad_request("License assignment cannot be done for user with invalid usage location.")

        current = state.assignments.get(user_id, {})
        updated: dict[AssignmentKey, LicenseAssignment] = dict(current)
        for sku_id in changes.remove:
            if (None, sku_id) in current:
                del updated[(None, sku_id)]
            elif any(key[1] == sku_id for key in current):
                raise bad_request(
                    "User license is inherited from a group membership and it cannot be removed directly from the user."
                )
            else:
                raise bad_request("User does not have a corresponding license.")

        held_before = state.held_skus(user_id)
        for sku_id, disabled in changes.add.items():
            if sku_id not in held_before and state.available_units(sku_id) <= 0:
                raise bad_request(f"Subscription with SKU {sku_id} does not have any available licenses.")
            updated[(None, sku_id)] = LicenseAssignment(
                sku_id=sku_id, group_id=None, disabled_plans=disabled, last_updated=state.clock()
            )

        _check_plan_rules(state, updated.values(), changes.add, user.get("usageLocation"))
        state.replace_assignments(user_id, updated)
        logger.info(
            "Tenant %s user %s: added SKUs %s, removed SKUs %s",
            state.tenant_id,
            user_id,
            sorted(changes.add),
            changes.remove,
        )
        return state.render_user(user_id)


def assign_group_licenses(state: TenantState, group_key: str, body: Any) -> dict[str, Any]:
    """Apply POST /groups/{id}/assignLicense and return the updated group.

    Members are processed at once, in id order. Graph does this in the background,
    so a real tenant shows the members' new states some time after the call returns.
    """
    with state.lock:
        group_id = state.find_group(group_key)
        if group_id is None:
            raise resource_not_found(group_key)
        changes = parse_license_changes(state, body)
        licenses = state.group_licenses[group_id]
        for sku_id in changes.remove:
            if sku_id not in licenses:
                # NOTE: Graph's wording for this case is not recorded, so the message is the emulator's.
                raise bad_request("Group does not have a corresponding license.")

        members = sorted(state.group_members[group_id])
        for sku_id in changes.remove:
            del licenses[sku_id]
            for member in members:
                assignments = dict(state.assignments.get(member, {}))
                if assignments.pop((group_id, sku_id), None) is not None:
                    state.replace_assignments(member, assignments)
        for sku_id, disabled in changes.add.items():
            licenses[sku_id] = disabled
            for member in members:
                state.evaluate_group_assignment(member, group_id, sku_id)
        logger.info(
            "Tenant %s group %s: added SKUs %s, removed SKUs %s for %s members",
            state.tenant_id,
            group_id,
            sorted(changes.add),
            changes.remove,
            len(members),
        )
        return state.render_group(group_id)


def _check_plan_rules(state: TenantState, assignments: Any, added: dict[str, list[str]], usage_location: str | None) -> None:
    assignments = list(assignments)
    enabled = state.enabled_plans(assignments)
    pair = find_exclusive_pair(enabled)
    if pair is not None:
        raise bad_request(f"License assignment failed because service plans {pair[0]}, {pair[1]} are mutually exclusive.")
    touched = [plan["servicePlanName"] for sku_id in added for plan in state.skus[sku_id]["servicePlans"]]
    missing = find_missing_dependency(enabled, touched, state.plan_ids_by_name())
    if missing is not None:
        plan_id, required = missing
        raise bad_request(
            f"License assignment failed because service plan {plan_id} depends on the service plan(s) {', '.join(required)}"
        )
    prohibited = find_prohibited_plan(enabled, touched, usage_location)
    if prohibited is not None:
        # NOTE: Graph rejects such an assignment, but its wording is not recorded, so this message is the emulator's.
        raise bad_request(f"License assignment failed because service plan {prohibited} is not available in usage location {usage_location}.")

