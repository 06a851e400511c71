"""Tenant snapshots: one JSON document with a tenant's users, groups, SKUs and subscriptions.

Users, groups, subscribedSkus and subscriptions are lists of objects in Graph
v1.0's own JSON shape. Group membership is stored on the group as
`"members": [userId, ...]` because Graph returns it from a separate endpoint.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .graph_schema import (
    CAPABILITY_STATUSES,
    EXTENSION_ATTRIBUTE_NAMES,
    LICENSE_STATES,
    PREPAID_UNIT_KEYS,
    SUBSCRIPTION_STATUSES,
    is_guid,
)

logger = logging.getLogger(__name__)

SNAPSHOT_KEYS = ("tenantId", "displayName", "premium", "clients", "users", "groups", "subscribedSkus", "subscriptions")


class SnapshotError(ValueError):
    """A snapshot document without the expected shape. The message names the field and its value."""


def load_snapshot(path: Path) -> dict[str, Any]:
    """Read and validate a snapshot file."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise SnapshotError(f"{path}: invalid JSON: {error}") from error
    try:
        validate_snapshot(document)
    except SnapshotError as error:
        raise SnapshotError(f"{path}: {error}") from error
    return document


def save_snapshot(document: dict[str, Any], path: Path) -> None:
    """Validate `document` and write it as indented UTF-8 JSON."""
    validate_snapshot(document)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_snapshot(document), encoding="utf-8")
    logger.info("Wrote snapshot of tenant %s with %s users to %s", document["tenantId"], len(document["users"]), path)


def dump_snapshot(document: dict[str, Any]) -> str:
    """Serialize a snapshot the same way every time, so equal tenants give equal text."""
    return json.dumps(document, indent=1, ensure_ascii=False, sort_keys=False) + "\n"


def validate_snapshot(document: Any) -> None:
    """Raise SnapshotError for the first field that is missing or invalid."""
    if not isinstance(document, dict):
        raise SnapshotError(f"snapshot: expected a JSON object, got {type(document).__name__}")
    for key in SNAPSHOT_KEYS:
        if key not in document:
            raise SnapshotError(f"{key}: missing")
    _require_guid(document["tenantId"], "tenantId")
    _require_type(document["displayName"], str, "displayName")
    _require_type(document["premium"], bool, "premium")
    for key in ("clients", "users", "groups", "subscribedSkus", "subscriptions"):
        _require_type(document[key], list, key)

    _validate_clients(document["clients"])
    sku_ids = validate_skus(document["subscribedSkus"])
    user_ids = validate_users(document["users"], sku_ids)
    _validate_groups(document["groups"], user_ids, sku_ids)
    _validate_subscriptions(document["subscriptions"], sku_ids)


def _validate_clients(clients: list[Any]) -> None:
    if not clients:
        raise SnapshotError("clients: at least one client is required")
    seen: set[str] = set()
    for index, client in enumerate(clients):
        where = f"clients[{index}]"
        _require_type(client, dict, where)
        _require_guid(client.get("clientId"), f"{where}.clientId")
        secret = client.get("clientSecret")
        if not isinstance(secret, str) or not secret:
            raise SnapshotError(f"{where}.clientSecret: expected a non-empty string")
        client_id = client["clientId"].lower()
        if client_id in seen:
            raise SnapshotError(f"{where}.clientId: duplicate value {client['clientId']!r}")
        seen.add(client_id)


def validate_skus(skus: list[Any]) -> set[str]:
    sku_ids: set[str] = set()
    for index, sku in enumerate(skus):
        where = f"subscribedSkus[{index}]"
        _require_type(sku, dict, where)
        _require_guid(sku.get("skuId"), f"{where}.skuId")
        _require_type(sku.get("skuPartNumber"), str, f"{where}.skuPartNumber")
        _require_choice(sku.get("capabilityStatus"), CAPABILITY_STATUSES, f"{where}.capabilityStatus")
        if sku.get("appliesTo") not in ("User", "Company"):
            raise SnapshotError(f"{where}.appliesTo: expected 'User' or 'Company', got {sku.get('appliesTo')!r}")
        prepaid = sku.get("prepaidUnits")
        _require_type(prepaid, dict, f"{where}.prepaidUnits")
        for key in PREPAID_UNIT_KEYS:
            value = prepaid.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SnapshotError(f"{where}.prepaidUnits.{key}: expected a non-negative integer, got {value!r}")
        plans = sku.get("servicePlans")
        _require_type(plans, list, f"{where}.servicePlans")
        for plan_index, plan in enumerate(plans):
            plan_where = f"{where}.servicePlans[{plan_index}]"
            _require_type(plan, dict, plan_where)
            _require_guid(plan.get("servicePlanId"), f"{plan_where}.servicePlanId")
            _require_type(plan.get("servicePlanName"), str, f"{plan_where}.servicePlanName")
        sku_id = sku["skuId"].lower()
        if sku_id in sku_ids:
            raise SnapshotError(f"{where}.skuId: duplicate value {sku['skuId']!r}")
        sku_ids.add(sku_id)
    return sku_ids


def validate_users(users: list[Any], sku_ids: set[str]) -> set[str]:
    user_ids: set[str] = set()
    names: set[str] = set()
    for index, user in enumerate(users):
        where = f"users[{index}]"
        _require_type(user, dict, where)
        _require_guid(user.get("id"), f"{where}.id")
        name = user.get("userPrincipalName")
        if not isinstance(name, str) or "@" not in name:
            raise SnapshotError(f"{where}.userPrincipalName: expected a name of the form user@domain, got {name!r}")
        for key in ("accountEnabled",):
            if key in user and not isinstance(user[key], bool):
                raise SnapshotError(f"{where}.{key}: expected true or false, got {user[key]!r}")
        location = user.get("usageLocation")
        if location is not None and (not isinstance(location, str) or len(location) != 2 or not location.isalpha()):
            raise SnapshotError(f"{where}.usageLocation: expected a two-letter ISO country code or null, got {location!r}")
        extensions = user.get("onPremisesExtensionAttributes")
        if extensions is not None:
            _require_type(extensions, dict, f"{where}.onPremisesExtensionAttributes")
            for key in extensions:
                if key not in EXTENSION_ATTRIBUTE_NAMES:
                    raise SnapshotError(f"{where}.onPremisesExtensionAttributes: unknown attribute {key!r}")
        _validate_assigned_licenses(user.get("assignedLicenses", []), sku_ids, f"{where}.assignedLicenses")
        _validate_license_states(user.get("licenseAssignmentStates", []), sku_ids, f"{where}.licenseAssignmentStates")

        user_id = user["id"].lower()
        if user_id in user_ids:
            raise SnapshotError(f"{where}.id: duplicate value {user['id']!r}")
        if name.lower() in names:
            raise SnapshotError(f"{where}.userPrincipalName: duplicate value {name!r}")
        user_ids.add(user_id)
        names.add(name.lower())
    return user_ids


def _validate_groups(groups: list[Any], user_ids: set[str], sku_ids: set[str]) -> None:
    group_ids: set[str] = set()
    for index, group in enumerate(groups):
        where = f"groups[{index}]"
        _require_type(group, dict, where)
        _require_guid(group.get("id"), f"{where}.id")
        _require_type(group.get("displayName"), str, f"{where}.displayName")
        members = group.get("members", [])
        _require_type(members, list, f"{where}.members")
        for member_index, member in enumerate(members):
            if not isinstance(member, str) or member.lower() not in user_ids:
                raise SnapshotError(f"{where}.members[{member_index}]: no user has id {member!r}")
        _validate_assigned_licenses(group.get("assignedLicenses", []), sku_ids, f"{where}.assignedLicenses")
        group_id = group["id"].lower()
        if group_id in group_ids:
            raise SnapshotError(f"{where}.id: duplicate value {group['id']!r}")
        group_ids.add(group_id)


def _validate_subscriptions(subscriptions: list[Any], sku_ids: set[str]) -> None:
    for index, subscription in enumerate(subscriptions):
        where = f"subscriptions[{index}]"
        _require_type(subscription, dict, where)
        _require_type(subscription.get("id"), str, f"{where}.id")
        _require_guid(subscription.get("skuId"), f"{where}.skuId")
        if subscription["skuId"].lower() not in sku_ids:
            raise SnapshotError(f"{where}.skuId: {subscription['skuId']!r} is not in subscribedSkus")
        _require_choice(subscription.get("status"), SUBSCRIPTION_STATUSES, f"{where}.status")
        total = subscription.get("totalLicenses")
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            raise SnapshotError(f"{where}.totalLicenses: expected a non-negative integer, got {total!r}")
        _require_type(subscription.get("isTrial"), bool, f"{where}.isTrial")


def _validate_assigned_licenses(licenses: Any, sku_ids: set[str], where: str) -> None:
    _require_type(licenses, list, where)
    for index, license_ in enumerate(licenses):
        item = f"{where}[{index}]"
        _require_type(license_, dict, item)
        _require_guid(license_.get("skuId"), f"{item}.skuId")
        if license_["skuId"].lower() not in sku_ids:
            raise SnapshotError(f"{item}.skuId: {license_['skuId']!r} is not in subscribedSkus")
        disabled = license_.get("disabledPlans", [])
        _require_type(disabled, list, f"{item}.disabledPlans")
        for plan_index, plan_id in enumerate(disabled):
            _require_guid(plan_id, f"{item}.disabledPlans[{plan_index}]")


def _validate_license_states(states: Any, sku_ids: set[str], where: str) -> None:
    _require_type(states, list, where)
    for index, state in enumerate(states):
        item = f"{where}[{index}]"
        _require_type(state, dict, item)
        _require_guid(state.get("skuId"), f"{item}.skuId")
        if state["skuId"].lower() not in sku_ids:
            raise SnapshotError(f"{item}.skuId: {state['skuId']!r} is not in subscribedSkus")
        group_id = state.get("assignedByGroup")
        if group_id is not None:
            _require_guid(group_id, f"{item}.assignedByGroup")
        # Graph adds new `error` values over time (it returns "Other" where older docs
        # said "Others"), so only the type of `error` is checked.
        if "state" in state:
            _require_choice(state["state"], LICENSE_STATES, f"{item}.state")
        if "error" in state:
            _require_type(state["error"], str, f"{item}.error")


def _require_type(value: Any, expected: type, where: str) -> None:
    if not isinstance(value, expected):
        names = {dict: "an object", list: "a list", str: "a string", bool: "true or false"}
        raise SnapshotError(f"{where}: expected {names.get(expected, expected.__name__)}, got {value!r}")


def _require_guid(value: Any, where: str) -> None:
    if not is_guid(value):
        raise SnapshotError(f"{where}: expected a GUID, got {value!r}")


def _require_choice(value: Any, choices: frozenset[str], where: str) -> None:
    if value not in choices:
        raise SnapshotError(f"{where}: expected one of {', '.join(sorted(choices))}, got {value!r}")
