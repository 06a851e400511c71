"""PATCH /v1.0/users/{id | userPrincipalName}: Graph's update of a user's writable properties."""

from __future__ import annotations

import logging
from typing import Any

from werkzeug.wrappers import Response

from .errors import GraphError, bad_request, resource_not_found
from .graph_schema import EXTENSION_ATTRIBUTE_NAMES, USER_PROPERTIES
from .state import TenantState

logger = logging.getLogger(__name__)

# Properties of USER_PROPERTIES that Graph v1.0 lets an app with User.ReadWrite.All change.
WRITABLE_USER_PROPERTIES = frozenset(
    {
        "accountEnabled", "businessPhones", "city", "companyName", "country", "department", "displayName",
        "employeeId", "employeeType", "givenName", "jobTitle", "mail", "mailNickname", "mobilePhone",
        "officeLocation", "onPremisesExtensionAttributes", "otherMails", "postalCode", "preferredLanguage",
        "state", "streetAddress", "surname", "usageLocation", "userPrincipalName", "userType",
    }
)
STRING_LIST_PROPERTIES = frozenset({"businessPhones", "otherMails"})


def _invalid_value(name: str) -> GraphError:
    # NOTE: the wording follows Graph's "Invalid value specified for property" errors seen for other user
    # properties; a recorded response for a bad usageLocation was not available.
    return bad_request(f"Invalid value specified for property '{name}' of resource 'User'.")


def _check_value(name: str, value: Any) -> Any:
    """Return the value to store, or raise Graph's 400 for a value of the wrong type or form."""
    if value is None:
        if name in {"accountEnabled", "displayName", "userPrincipalName", "mailNickname"}:
            raise _invalid_value(name)
        return None
    if name == "accountEnabled":
        if not isinstance(value, bool):
            raise _invalid_value(name)
        return value
    if name in STRING_LIST_PROPERTIES:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise _invalid_value(name)
        return value
    if name == "onPremisesExtensionAttributes":
        if not isinstance(value, dict) or any(key not in EXTENSION_ATTRIBUTE_NAMES for key in value):
            raise _invalid_value(name)
        return value
    if not isinstance(value, str):
        raise _invalid_value(name)
    if name == "usageLocation":
        # A usage location is a two-letter ISO 3166-1 code. NOTE: Graph also rejects codes of countries
        # where Microsoft 365 is not sold and may accept lower case; the emulator checks the form only and
        # stores the code in upper case.
        if len(value) != 2 or not value.isascii() or not value.isalpha():
            raise _invalid_value(name)
        return value.upper()
    if name == "userPrincipalName" and "@" not in value:
        raise _invalid_value(name)
    return value


def update_user(state: TenantState, key: str, body: Any) -> Response:
    """Apply a PATCH to a user and answer 204 No Content, as Graph does."""
    if not isinstance(body, dict):
        # NOTE: Graph's message for a body that is not a JSON object is not recorded; this one is the emulator's.
        raise bad_request("The request body must be a JSON object of user properties.", code="BadRequest")
    with state.lock:
        user_id = state.find_user(key)
        if user_id is None:
            raise resource_not_found(key)
        changes: dict[str, Any] = {}
        for name, value in body.items():
            if name not in USER_PROPERTIES:
                raise bad_request(
                    f"Property '{name}' does not exist as a declared property or extension property."
                )
            if name not in WRITABLE_USER_PROPERTIES:
                # NOTE: Graph's wording for a read-only property is not recorded; this message is the emulator's.
                raise bad_request(f"Property '{name}' is read-only and cannot be set.")
            changes[name] = _check_value(name, value)
        if "onPremisesExtensionAttributes" in changes and changes["onPremisesExtensionAttributes"] is not None:
            merged = dict(state.users[user_id].get("onPremisesExtensionAttributes") or {})
            merged.update(changes["onPremisesExtensionAttributes"])
            changes["onPremisesExtensionAttributes"] = merged
        try:
            state.update_user(user_id, changes)
        except ValueError as error:
            # update_user raises ValueError for a userPrincipalName that another user has.
            raise bad_request(f"Another object with the same value for property userPrincipalName already exists.") from None
    logger.info("Tenant %s user %s: PATCH set %s", state.tenant_id, user_id, sorted(changes))
    return Response(status=204)
