"""In-memory state of one emulated tenant: users, groups, SKUs, subscriptions and license assignments.

Every public method takes the tenant's lock, which is reentrant, so callers that
need several steps to be atomic hold `state.lock` around them.
"""

from __future__ import annotations

import bisect
import copy
import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .catalog import load_catalog
from .graph_schema import USER_LICENSE_PROPERTIES
from .plan_rules import find_exclusive_pair, find_missing_dependency, find_prohibited_plan

logger = logging.getLogger(__name__)

# Capability states whose SKUs accept no new assignments at all.
UNASSIGNABLE_STATUSES = frozenset({"Suspended", "Deleted", "LockedOut"})
# Entra ID keeps a deleted user restorable for 30 days, then deletes it permanently.
RESTORE_WINDOW = dt.timedelta(days=30)


def utc_timestamp() -> str:
    """Return the current time in Graph's format, for example 2024-05-01T10:00:00Z."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: str) -> dt.datetime:
    """Parse a Graph timestamp such as 2024-05-01T10:00:00Z into an aware datetime."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.timezone.utc)


@dataclass
class LicenseAssignment:
    """One entry of a user's licenseAssignmentStates, with `group_id` None for a direct assignment."""

    sku_id: str
    group_id: str | None
    disabled_plans: list[str] = field(default_factory=list)
    state: str = "Active"
    error: str = "None"
    last_updated: str = field(default_factory=utc_timestamp)

    @property
    def active(self) -> bool:
        # ActiveWithError still grants the license, Error and Disabled do not.
        return self.state in ("Active", "ActiveWithError")

    def to_graph(self) -> dict[str, Any]:
        return {
            "assignedByGroup": self.group_id,
            "disabledPlans": list(self.disabled_plans),
            "error": self.error,
            "lastUpdatedDateTime": self.last_updated,
            "skuId": self.sku_id,
            "state": self.state,
        }


AssignmentKey = tuple[str | None, str]


class TenantState:
    """The mutable directory of one tenant, built from a validated snapshot."""

    def __init__(self, snapshot: dict[str, Any], clock: Callable[[], str] = utc_timestamp) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.tenant_id: str = snapshot["tenantId"].lower()
        self.display_name: str = snapshot["displayName"]
        self.premium: bool = snapshot["premium"]
        self.clients: dict[str, str] = {client["clientId"].lower(): client["clientSecret"] for client in snapshot["clients"]}
        self._client_order = [client["clientId"] for client in snapshot["clients"]]

        self.skus: dict[str, dict[str, Any]] = {}
        for sku in snapshot["subscribedSkus"]:
            record = copy.deepcopy(sku)
            record["skuId"] = record["skuId"].lower()
            record.pop("consumedUnits", None)
            self.skus[record["skuId"]] = record
        self.subscriptions: list[dict[str, Any]] = copy.deepcopy(snapshot["subscriptions"])
        self.holders: dict[str, set[str]] = {sku_id: set() for sku_id in self.skus}
        self._plan_ids_by_name = self._collect_plan_names()

        self.users: dict[str, dict[str, Any]] = {}
        self.deleted_users: dict[str, dict[str, Any]] = {}
        self._upn_index: dict[str, str] = {}
        self.user_ids: list[str] = []
        self.assignments: dict[str, dict[AssignmentKey, LicenseAssignment]] = {}

        self.groups: dict[str, dict[str, Any]] = {}
        self.group_ids: list[str] = []
        self.group_members: dict[str, list[str]] = {}
        self.group_licenses: dict[str, dict[str, list[str]]] = {}
        self.user_groups: dict[str, set[str]] = {}

        # The change log behind users/delta: sequence numbers ascend, and each entry names
        # a user whose properties, assignedLicenses or deletion state changed.
        self.change_sequence = 0
        self._change_sequences: list[int] = []
        self._changed_user_ids: list[str] = []
        # Delta tokens older than this sequence number are expired.
        self.delta_floor = 0
        self.purged_user_ids: set[str] = set()
        # Usage report activity set through the control interface: user id -> service name -> date or "".
        self.report_activity: dict[str, dict[str, str]] = {}

        self._load_groups(snapshot["groups"])
        for user in snapshot["users"]:
            self._load_user(user)
        self.user_ids.sort()
        for user_id in self.users:
            self._refresh_holdings(user_id)
        self._evaluate_missing_group_assignments()
        self._change_sequences.clear()
        self._changed_user_ids.clear()
        self.change_sequence = 0

    # Loading

    def _collect_plan_names(self) -> dict[str, str]:
        names: dict[str, str] = {}
        for sku in load_catalog():
            for plan in sku.service_plans:
                names.setdefault(plan.name, plan.service_plan_id)
        for sku in self.skus.values():
            for plan in sku["servicePlans"]:
                names[plan["servicePlanName"]] = plan["servicePlanId"].lower()
        return names

    def _load_groups(self, groups: list[dict[str, Any]]) -> None:
        for group in groups:
            record = copy.deepcopy(group)
            group_id = record["id"].lower()
            record["id"] = group_id
            members = [member.lower() for member in record.pop("members", [])]
            licenses = record.pop("assignedLicenses", [])
            for key in ("hasMembersWithLicenseErrors",):
                record.pop(key, None)
            self.groups[group_id] = record
            self.group_members[group_id] = members
            self.group_licenses[group_id] = {
                license_["skuId"].lower(): [plan.lower() for plan in license_.get("disabledPlans", [])]
                for license_ in licenses
            }
            for member in members:
                self.user_groups.setdefault(member, set()).add(group_id)
        self.group_ids = sorted(self.groups)

    def _load_user(self, user: dict[str, Any]) -> None:
        record = {key: copy.deepcopy(value) for key, value in user.items() if key not in USER_LICENSE_PROPERTIES}
        user_id = record["id"].lower()
        record["id"] = user_id
        assignments: dict[AssignmentKey, LicenseAssignment] = {}
        states = user.get("licenseAssignmentStates")
        if states is not None:
            for entry in states:
                sku_id = entry["skuId"].lower()
                group_id = entry.get("assignedByGroup")
                group_id = group_id.lower() if group_id else None
                if group_id is not None and sku_id not in self.group_licenses.get(group_id, {}):
                    logger.debug("Dropping license state of user %s from group %s that does not assign SKU %s", user_id, group_id, sku_id)
                    continue
                if group_id is not None and user_id not in self.group_members.get(group_id, []):
                    continue
                assignments[(group_id, sku_id)] = LicenseAssignment(
                    sku_id=sku_id,
                    group_id=group_id,
                    disabled_plans=[plan.lower() for plan in entry.get("disabledPlans", [])],
                    state=entry.get("state", "Active"),
                    error=entry.get("error", "None"),
                    last_updated=entry.get("lastUpdatedDateTime") or self.clock(),
                )
        else:
            # Without licenseAssignmentStates a license counts as direct unless one of
            # the user's groups assigns the same SKU.
            group_skus = {
                sku_id
                for group_id in self.user_groups.get(user_id, ())
                for sku_id in self.group_licenses.get(group_id, {})
            }
            for license_ in user.get("assignedLicenses", []):
                sku_id = license_["skuId"].lower()
                if sku_id in group_skus:
                    continue
                assignments[(None, sku_id)] = LicenseAssignment(
                    sku_id=sku_id,
                    group_id=None,
                    disabled_plans=[plan.lower() for plan in license_.get("disabledPlans", [])],
                    last_updated=self.clock(),
                )
        self.assignments[user_id] = assignments
        if record.get("deletedDateTime"):
            self.deleted_users[user_id] = record
        else:
            self.users[user_id] = record
            self.user_ids.append(user_id)
            self._upn_index[record["userPrincipalName"].lower()] = user_id

    def _evaluate_missing_group_assignments(self) -> None:
        for group_id in self.group_ids:
            for sku_id in self.group_licenses[group_id]:
                for member in sorted(self.group_members[group_id]):
                    if (group_id, sku_id) not in self.assignments.get(member, {}):
                        self.evaluate_group_assignment(member, group_id, sku_id)

    # Lookups

    def find_user(self, key: str) -> str | None:
        """Return the id of the active user whose id or userPrincipalName is `key` (case-insensitive)."""
        with self.lock:
            lowered = key.lower()
            if lowered in self.users:
                return lowered
            return self._upn_index.get(lowered)

    def find_group(self, key: str) -> str | None:
        with self.lock:
            lowered = key.lower()
            return lowered if lowered in self.groups else None

    def user_ids_after(self, cursor: str | None) -> Iterator[str]:
        """Return active user ids in id order after `cursor` (or from the start), read lazily.

        The caller must keep `lock` acquired while it iterates. A page then costs O(log n + page size).
        """
        start = 0 if cursor is None else bisect.bisect_right(self.user_ids, cursor)
        return (self.user_ids[index] for index in range(start, len(self.user_ids)))

    def group_ids_after(self, cursor: str | None) -> list[str]:
        with self.lock:
            start = 0 if cursor is None else bisect.bisect_right(self.group_ids, cursor)
            return self.group_ids[start:]

    def plan_ids_by_name(self) -> dict[str, str]:
        return self._plan_ids_by_name

    def user_count(self) -> int:
        return len(self.user_ids)

    # Change log

    def record_change(self, user_id: str) -> None:
        """Append a change of `user_id` to the change log that users/delta reads."""
        with self.lock:
            self.change_sequence += 1
            self._change_sequences.append(self.change_sequence)
            self._changed_user_ids.append(user_id)

    def changed_user_ids(self, since: int, until: int) -> list[str]:
        """Return the ids of users changed after sequence `since` up to `until`, sorted and without repeats."""
        with self.lock:
            start = bisect.bisect_right(self._change_sequences, since)
            end = bisect.bisect_right(self._change_sequences, until)
            return sorted(set(self._changed_user_ids[start:end]))

    def expire_delta_tokens(self) -> int:
        """Make every delta token issued so far expired and drop the change log; return the new floor."""
        with self.lock:
            self.delta_floor = self.change_sequence
            self._change_sequences.clear()
            self._changed_user_ids.clear()
            return self.delta_floor

    # Licenses

    def consumed_units(self, sku_id: str) -> int:
        with self.lock:
            return len(self.holders.get(sku_id, ()))

    def available_units(self, sku_id: str) -> int:
        """Return the seats that a new assignment can take: enabled units minus consumed ones.

        Units in the warning (grace) state are not added, because Graph lets an
        assignment through only while enabled units cover it.
        """
        with self.lock:
            sku = self.skus[sku_id]
            if sku["capabilityStatus"] in UNASSIGNABLE_STATUSES:
                return 0
            return sku["prepaidUnits"]["enabled"] - self.consumed_units(sku_id)

    def held_skus(self, user_id: str) -> set[str]:
        """Return the SKUs that at least one active assignment gives the user."""
        with self.lock:
            return {assignment.sku_id for assignment in self.assignments.get(user_id, {}).values() if assignment.active}

    def enabled_plans(self, assignments: Iterable[LicenseAssignment]) -> dict[str, str]:
        """Return name -> id of every service plan that the active `assignments` enable."""
        enabled: dict[str, str] = {}
        for assignment in assignments:
            if not assignment.active:
                continue
            disabled = set(assignment.disabled_plans)
            for plan in self.skus[assignment.sku_id]["servicePlans"]:
                plan_id = plan["servicePlanId"].lower()
                if plan_id not in disabled:
                    enabled[plan["servicePlanName"]] = plan_id
        return enabled

    def _refresh_holdings(self, user_id: str) -> None:
        held = self.held_skus(user_id) if user_id in self.users else set()
        for sku_id, holders in self.holders.items():
            if sku_id in held:
                holders.add(user_id)
            else:
                holders.discard(user_id)

    def replace_assignments(self, user_id: str, assignments: dict[AssignmentKey, LicenseAssignment]) -> None:
        """Store a user's complete set of assignments and update seat counts."""
        with self.lock:
            before = self.assigned_licenses(user_id)
            self.assignments[user_id] = assignments
            self._refresh_holdings(user_id)
            # NOTE: Graph's users/delta reports a change of assignedLicenses but not a change
            # limited to licenseAssignmentStates (a new error state, for example), so only the former is logged.
            if self.assigned_licenses(user_id) != before:
                self.record_change(user_id)

    def evaluate_group_assignment(self, user_id: str, group_id: str, sku_id: str) -> LicenseAssignment:
        """Create or re-evaluate the assignment that `group_id` gives `user_id` for `sku_id`.

        A member who already has the SKU needs no new seat. The checks run in this order,
        and the first that fails sets state Error with its error:
        MutuallyExclusiveViolation when the SKU's plans clash with the member's other plans,
        DependencyViolation when a plan lacks a plan it needs,
        ProhibitedInUsageLocationViolation when a plan is not offered in the member's usage location,
        CountViolation when no seat is free.
        """
        with self.lock:
            assignments = dict(self.assignments.get(user_id, {}))
            disabled = list(self.group_licenses[group_id][sku_id])
            current = assignments.get((group_id, sku_id))
            others = [assignment for key, assignment in assignments.items() if key != (group_id, sku_id)]
            candidate = LicenseAssignment(sku_id=sku_id, group_id=group_id, disabled_plans=disabled, last_updated=self.clock())
            enabled = self.enabled_plans([*others, candidate])
            sku_plans = [plan["servicePlanName"] for plan in self.skus[sku_id]["servicePlans"]]
            user = self.users.get(user_id) or self.deleted_users.get(user_id) or {}
            if find_exclusive_pair(enabled) is not None:
                candidate.state, candidate.error = "Error", "MutuallyExclusiveViolation"
            elif find_missing_dependency(enabled, sku_plans, self._plan_ids_by_name) is not None:
                candidate.state, candidate.error = "Error", "DependencyViolation"
            elif find_prohibited_plan(enabled, sku_plans, user.get("usageLocation")) is not None:
                candidate.state, candidate.error = "Error", "ProhibitedInUsageLocationViolation"
            elif user_id in self.users and not (current is not None and current.active) and sku_id not in {
                assignment.sku_id for assignment in others if assignment.active
            }:
                if self.available_units(sku_id) <= 0:
                    candidate.state, candidate.error = "Error", "CountViolation"
            if current is not None and (current.state, current.error, current.disabled_plans) == (
                candidate.state,
                candidate.error,
                candidate.disabled_plans,
            ):
                return current
            assignments[(group_id, sku_id)] = candidate
            self.replace_assignments(user_id, assignments)
            return candidate

    def reprocess_user(self, user_id: str) -> None:
        """Re-evaluate every group license of a user, as reprocessLicenseAssignment does."""
        with self.lock:
            for group_id in sorted(self.user_groups.get(user_id, ())):
                for sku_id in self.group_licenses.get(group_id, {}):
                    self.evaluate_group_assignment(user_id, group_id, sku_id)

    # Rendering

    def assigned_licenses(self, user_id: str) -> list[dict[str, Any]]:
        """Return the user's assignedLicenses: one entry per held SKU, direct and inherited alike.

        A plan is disabled only if every active assignment of that SKU disables it.
        """
        by_sku: dict[str, list[str]] = {}
        for assignment in self.assignments.get(user_id, {}).values():
            if not assignment.active:
                continue
            if assignment.sku_id in by_sku:
                still_disabled = set(assignment.disabled_plans)
                by_sku[assignment.sku_id] = [plan for plan in by_sku[assignment.sku_id] if plan in still_disabled]
            else:
                by_sku[assignment.sku_id] = list(assignment.disabled_plans)
        return [{"disabledPlans": plans, "skuId": sku_id} for sku_id, plans in by_sku.items()]

    def render_user(self, user_id: str) -> dict[str, Any]:
        """Return the user with every stored property plus assignedLicenses and licenseAssignmentStates."""
        with self.lock:
            record = self.users.get(user_id) or self.deleted_users[user_id]
            rendered = copy.deepcopy(record)
            rendered["assignedLicenses"] = self.assigned_licenses(user_id)
            rendered["licenseAssignmentStates"] = [
                assignment.to_graph() for assignment in self.assignments.get(user_id, {}).values()
            ]
            return rendered

    def render_group(self, group_id: str) -> dict[str, Any]:
        with self.lock:
            rendered = copy.deepcopy(self.groups[group_id])
            rendered["assignedLicenses"] = [
                {"disabledPlans": list(plans), "skuId": sku_id} for sku_id, plans in self.group_licenses[group_id].items()
            ]
            rendered["hasMembersWithLicenseErrors"] = any(
                assignment.state == "Error"
                for member in self.group_members[group_id]
                if member in self.users
                for key, assignment in self.assignments.get(member, {}).items()
                if key[0] == group_id
            )
            return rendered

    def render_sku(self, sku_id: str) -> dict[str, Any]:
        with self.lock:
            sku = self.skus[sku_id]
            rendered: dict[str, Any] = {}
            for key, value in sku.items():
                rendered[key] = copy.deepcopy(value)
                if key == "capabilityStatus":
                    rendered["consumedUnits"] = self.consumed_units(sku_id)
            rendered.setdefault("consumedUnits", self.consumed_units(sku_id))
            rendered.setdefault("id", f"{self.tenant_id}_{sku_id}")
            return rendered

    def to_snapshot(self) -> dict[str, Any]:
        """Return the current state as a snapshot document."""
        with self.lock:
            users = [self.render_user(user_id) for user_id in self.user_ids]
            users += [self.render_user(user_id) for user_id in sorted(self.deleted_users)]
            groups = []
            for group_id in self.group_ids:
                group = self.render_group(group_id)
                group["members"] = list(self.group_members[group_id])
                groups.append(group)
            return {
                "tenantId": self.tenant_id,
                "displayName": self.display_name,
                "premium": self.premium,
                "clients": [
                    {"clientId": client_id, "clientSecret": self.clients[client_id.lower()]} for client_id in self._client_order
                ],
                "users": users,
                "groups": groups,
                "subscribedSkus": [self.render_sku(sku_id) for sku_id in self.skus],
                "subscriptions": copy.deepcopy(self.subscriptions),
            }

    # Out-of-band changes

    def update_user(self, user_id: str, changes: dict[str, Any]) -> None:
        """Set user properties other than id and the license properties. A None value sets the property to null."""
        with self.lock:
            record = self.users[user_id]
            new_name = changes.get("userPrincipalName")
            if new_name is not None and new_name.lower() != record["userPrincipalName"].lower():
                if new_name.lower() in self._upn_index:
                    raise ValueError(f"userPrincipalName {new_name!r} is already used by another user")
                del self._upn_index[record["userPrincipalName"].lower()]
                self._upn_index[new_name.lower()] = user_id
            location_changed = "usageLocation" in changes and changes["usageLocation"] != record.get("usageLocation")
            for key, value in changes.items():
                record[key] = copy.deepcopy(value)
            self.record_change(user_id)
            if location_changed:
                # Group-based licensing re-evaluates a member when its usage location changes.
                self.reprocess_user(user_id)

    def add_user(self, user: dict[str, Any]) -> str:
        """Add a user (Graph shape, without licenses) and return its id."""
        with self.lock:
            user_id = user["id"].lower()
            if user_id in self.users or user_id in self.deleted_users:
                raise ValueError(f"a user with id {user_id!r} already exists")
            if user["userPrincipalName"].lower() in self._upn_index:
                raise ValueError(f"userPrincipalName {user['userPrincipalName']!r} is already used by another user")
            record = {key: copy.deepcopy(value) for key, value in user.items() if key not in USER_LICENSE_PROPERTIES}
            record["id"] = user_id
            self.users[user_id] = record
            self._upn_index[record["userPrincipalName"].lower()] = user_id
            bisect.insort(self.user_ids, user_id)
            self.assignments.setdefault(user_id, {})
            self.record_change(user_id)
            return user_id

    def delete_user(self, user_id: str) -> None:
        """Soft-delete a user: it leaves listings and its licenses stop counting."""
        with self.lock:
            record = self.users.pop(user_id)
            record["deletedDateTime"] = self.clock()
            self.deleted_users[user_id] = record
            del self._upn_index[record["userPrincipalName"].lower()]
            index = bisect.bisect_left(self.user_ids, user_id)
            del self.user_ids[index]
            self._refresh_holdings(user_id)
            self.record_change(user_id)

    def purge_user(self, user_id: str) -> None:
        """Delete a soft-deleted user permanently, with its assignments and group memberships."""
        with self.lock:
            del self.deleted_users[user_id]
            self.assignments.pop(user_id, None)
            for group_id in self.user_groups.pop(user_id, set()):
                self.group_members[group_id] = [member for member in self.group_members[group_id] if member != user_id]
            self.purged_user_ids.add(user_id)
            self.record_change(user_id)

    def purge_expired_deletions(self) -> list[str]:
        """Permanently delete users that were deleted more than 30 days ago; return their ids."""
        with self.lock:
            now = parse_timestamp(self.clock())
            expired = []
            for user_id, record in self.deleted_users.items():
                try:
                    deleted_at = parse_timestamp(record["deletedDateTime"])
                except (KeyError, TypeError, ValueError):
                    continue
                if now - deleted_at > RESTORE_WINDOW:
                    expired.append(user_id)
            for user_id in expired:
                self.purge_user(user_id)
            if expired:
                logger.info("Tenant %s: permanently deleted %s users deleted over 30 days ago", self.tenant_id, len(expired))
            return expired

    def restore_user(self, user_id: str) -> None:
        with self.lock:
            record = self.deleted_users[user_id]
            if record["userPrincipalName"].lower() in self._upn_index:
                raise ValueError(f"userPrincipalName {record['userPrincipalName']!r} is now used by another user")
            del self.deleted_users[user_id]
            record.pop("deletedDateTime", None)
            self.users[user_id] = record
            self._upn_index[record["userPrincipalName"].lower()] = user_id
            bisect.insort(self.user_ids, user_id)
            self._refresh_holdings(user_id)
            self.record_change(user_id)

    def add_group_member(self, group_id: str, user_id: str) -> None:
        """Add a user to a group; the user inherits the group's licenses at once."""
        with self.lock:
            if user_id in self.group_members[group_id]:
                raise ValueError(f"user {user_id} is already a member of group {group_id}")
            self.group_members[group_id].append(user_id)
            self.user_groups.setdefault(user_id, set()).add(group_id)
            for sku_id in self.group_licenses[group_id]:
                self.evaluate_group_assignment(user_id, group_id, sku_id)

    def remove_group_member(self, group_id: str, user_id: str) -> None:
        """Remove a user from a group; the licenses the group gave the user go with it."""
        with self.lock:
            if user_id not in self.group_members[group_id]:
                raise ValueError(f"user {user_id} is not a member of group {group_id}")
            self.group_members[group_id] = [member for member in self.group_members[group_id] if member != user_id]
            self.user_groups.get(user_id, set()).discard(group_id)
            assignments = {key: value for key, value in self.assignments.get(user_id, {}).items() if key[0] != group_id}
            self.replace_assignments(user_id, assignments)

    def add_sku(self, sku: dict[str, Any]) -> str:
        """Add a subscribed SKU (Graph shape, validated by the caller) and a paid subscription for its seats."""
        with self.lock:
            record = copy.deepcopy(sku)
            sku_id = record["skuId"].lower()
            if sku_id in self.skus:
                raise ValueError(f"SKU {sku_id} is already subscribed")
            record["skuId"] = sku_id
            record.pop("consumedUnits", None)
            record["id"] = f"{self.tenant_id}_{sku_id}"
            self.skus[sku_id] = record
            self.holders[sku_id] = set()
            for plan in record["servicePlans"]:
                self._plan_ids_by_name[plan["servicePlanName"]] = plan["servicePlanId"].lower()
            self.subscriptions.append(
                {
                    "id": str(uuid.uuid4()),
                    "commerceSubscriptionId": str(uuid.uuid4()),
                    "skuId": sku_id,
                    "skuPartNumber": record["skuPartNumber"],
                    "status": record["capabilityStatus"],
                    "totalLicenses": sum(record["prepaidUnits"].values()),
                    "isTrial": False,
                    "createdDateTime": self.clock(),
                    "nextLifecycleDateTime": None,
                    "ownerType": None,
                }
            )
            return sku_id

    def set_sku_units(self, sku_id: str, prepaid_units: dict[str, int], capability_status: str | None = None) -> None:
        """Change a SKU's prepaidUnits (and optionally capabilityStatus).

        The first paid subscription of the SKU absorbs the change in total seats so that
        directory/subscriptions still adds up to the SKU's units.
        """
        with self.lock:
            sku = self.skus[sku_id]
            sku["prepaidUnits"].update(prepaid_units)
            if capability_status is not None:
                sku["capabilityStatus"] = capability_status
            subscriptions = [item for item in self.subscriptions if item["skuId"].lower() == sku_id]
            if subscriptions:
                paid = next((item for item in subscriptions if not item["isTrial"]), subscriptions[0])
                others = sum(item["totalLicenses"] for item in subscriptions if item is not paid)
                total = sum(sku["prepaidUnits"].values())
                paid["totalLicenses"] = max(total - others, 0)
