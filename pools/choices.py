from django.db import models
from django.utils.translation import gettext_lazy as _


class PoolAttribute(models.TextChoices):
    """User attributes a pool scheme can split on; values are Graph property names."""

    DEPARTMENT = "department", _("Department")
    COMPANY_NAME = "companyName", _("Company name")
    COUNTRY = "country", _("Country or region")
    CITY = "city", _("City")
    OFFICE_LOCATION = "officeLocation", _("Office location")
    USAGE_LOCATION = "usageLocation", _("Usage location")
    JOB_TITLE = "jobTitle", _("Job title")
    EMPLOYEE_TYPE = "employeeType", _("Employee type")
    UPN_DOMAIN = "upnDomain", _("Domain of the user principal name")
    EXTENSION_ATTRIBUTE_1 = "extensionAttribute1", _("Extension attribute 1")
    EXTENSION_ATTRIBUTE_2 = "extensionAttribute2", _("Extension attribute 2")
    EXTENSION_ATTRIBUTE_3 = "extensionAttribute3", _("Extension attribute 3")
    EXTENSION_ATTRIBUTE_4 = "extensionAttribute4", _("Extension attribute 4")
    EXTENSION_ATTRIBUTE_5 = "extensionAttribute5", _("Extension attribute 5")
    EXTENSION_ATTRIBUTE_6 = "extensionAttribute6", _("Extension attribute 6")
    EXTENSION_ATTRIBUTE_7 = "extensionAttribute7", _("Extension attribute 7")
    EXTENSION_ATTRIBUTE_8 = "extensionAttribute8", _("Extension attribute 8")
    EXTENSION_ATTRIBUTE_9 = "extensionAttribute9", _("Extension attribute 9")
    EXTENSION_ATTRIBUTE_10 = "extensionAttribute10", _("Extension attribute 10")
    EXTENSION_ATTRIBUTE_11 = "extensionAttribute11", _("Extension attribute 11")
    EXTENSION_ATTRIBUTE_12 = "extensionAttribute12", _("Extension attribute 12")
    EXTENSION_ATTRIBUTE_13 = "extensionAttribute13", _("Extension attribute 13")
    EXTENSION_ATTRIBUTE_14 = "extensionAttribute14", _("Extension attribute 14")
    EXTENSION_ATTRIBUTE_15 = "extensionAttribute15", _("Extension attribute 15")


class AuditAction(models.TextChoices):
    LICENSE_ASSIGNED = "license.assigned", _("License assigned")
    LICENSE_REVOKED = "license.revoked", _("License revoked")
    ALLOTMENT_CHANGED = "allotment.changed", _("Allotment changed")
    SCHEME_CHANGED = "scheme.changed", _("Pool scheme changed")
    POOL_RENAMED = "pool.renamed", _("Pool renamed")
    GRANT_ADDED = "grant.added", _("Access granted")
    GRANT_REMOVED = "grant.removed", _("Access removed")
    PRICE_CHANGED = "price.changed", _("Price changed")
    TENANT_CONNECTED = "tenant.connected", _("Tenant connected")
    SYNC_REQUESTED = "sync.requested", _("Sync requested")


class Outcome(models.TextChoices):
    SUCCEEDED = "succeeded", _("Succeeded")
    REJECTED = "rejected", _("Rejected by the portal")
    FAILED = "failed", _("Failed in Microsoft Graph")
