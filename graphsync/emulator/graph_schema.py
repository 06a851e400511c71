"""Property names and enumerations of the Graph v1.0 resources that the emulator serves."""

from __future__ import annotations

import re

GUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# Properties that GET /users and GET /users/{id} return when the request has no $select.
USER_DEFAULT_PROPERTIES = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)

# Properties a $select on users may name. Graph has more, but these are the ones a
# directory export carries. Collections default to [] and the rest to null.
USER_PROPERTIES = USER_DEFAULT_PROPERTIES + (
    "accountEnabled",
    "assignedLicenses",
    "assignedPlans",
    "city",
    "companyName",
    "country",
    "createdDateTime",
    "deletedDateTime",
    "department",
    "employeeId",
    "employeeType",
    "licenseAssignmentStates",
    "mailNickname",
    "onPremisesExtensionAttributes",
    "onPremisesSyncEnabled",
    "otherMails",
    "postalCode",
    "proxyAddresses",
    "signInActivity",
    "state",
    "streetAddress",
    "usageLocation",
    "userType",
)
USER_COLLECTION_PROPERTIES = frozenset(
    {"businessPhones", "assignedLicenses", "assignedPlans", "licenseAssignmentStates", "otherMails", "proxyAddresses"}
)
# Computed from license assignments, never stored on the user record.
USER_LICENSE_PROPERTIES = frozenset({"assignedLicenses", "licenseAssignmentStates"})

GROUP_DEFAULT_PROPERTIES = (
    "id",
    "deletedDateTime",
    "classification",
    "createdDateTime",
    "description",
    "displayName",
    "groupTypes",
    "mail",
    "mailEnabled",
    "mailNickname",
    "securityEnabled",
    "visibility",
)
GROUP_PROPERTIES = GROUP_DEFAULT_PROPERTIES + ("assignedLicenses", "hasMembersWithLicenseErrors", "licenseProcessingState")
GROUP_COLLECTION_PROPERTIES = frozenset({"groupTypes", "assignedLicenses"})

EXTENSION_ATTRIBUTE_NAMES = tuple(f"extensionAttribute{number}" for number in range(1, 16))

CAPABILITY_STATUSES = frozenset({"Enabled", "Warning", "Suspended", "Deleted", "LockedOut"})
SUBSCRIPTION_STATUSES = CAPABILITY_STATUSES
PREPAID_UNIT_KEYS = ("enabled", "suspended", "warning", "lockedOut")
LICENSE_STATES = frozenset({"Active", "ActiveWithError", "Disabled", "Error"})


def is_guid(value: object) -> bool:
    return isinstance(value, str) and GUID_PATTERN.match(value) is not None
