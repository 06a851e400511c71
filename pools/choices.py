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
    PORTAL_VALUE = "portalValue", _("Value set in the portal")


class AuditAction(models.TextChoices):
    LICENSE_ASSIGNED = "license.assigned", _("License assigned")
    LICENSE_REVOKED = "license.revoked", _("License revoked")
    ALLOTMENT_CHANGED = "allotment.changed", _("Allotment changed")
    SCHEME_CHANGED = "scheme.changed", _("Pool scheme changed")
    POOL_RENAMED = "pool.renamed", _("Pool renamed")
    GRANT_ADDED = "grant.added", _("Access granted")
    GRANT_REMOVED = "grant.removed", _("Access removed")
    GRANT_MOVED = "grant.moved", _("Access moved by a pool merge")
    PRICE_CHANGED = "price.changed", _("Price changed")
    TENANT_CONNECTED = "tenant.connected", _("Tenant connected")
    SYNC_REQUESTED = "sync.requested", _("Sync requested")
    SKU_RENAMED = "sku.renamed", _("SKU renamed")
    POOL_SETTINGS_CHANGED = "pool.settings_changed", _("Pool settings changed")
    ALIAS_ADDED = "alias.added", _("Value alias added")
    ALIAS_REMOVED = "alias.removed", _("Value alias removed")
    PORTAL_VALUE_SET = "portal_value.set", _("Portal-managed value set")
    PURCHASE_RECORDED = "purchase.recorded", _("Purchase recorded")
    PURCHASE_LINKED = "purchase.linked", _("Purchase linked to a subscription")
    PURCHASE_VOIDED = "purchase.voided", _("Purchase voided")
    REQUEST_CREATED = "request.created", _("Seat request created")
    REQUEST_APPROVED = "request.approved", _("Seat request approved")
    REQUEST_DECLINED = "request.declined", _("Seat request declined")
    REQUEST_WITHDRAWN = "request.withdrawn", _("Seat request withdrawn")
    REQUEST_MOVED = "request.moved", _("Seat request moved by a pool merge")
    DRIFT_ADOPTED = "drift.adopted", _("Drift adopted")
    DRIFT_REFERRED = "drift.referred", _("Drift referred to the pool managers")
    EXEMPTION_ADDED = "exemption.added", _("Reclaim exemption added")
    EXEMPTION_REMOVED = "exemption.removed", _("Reclaim exemption removed")
    LICENSE_RECLAIMED = "license.reclaimed", _("License reclaimed")
    USAGE_LOCATION_SET = "usage_location.set", _("Usage location set")
    BULK_JOB_STARTED = "bulk.started", _("Bulk job started")
    AUDIT_EXPORTED = "audit.exported", _("Audit trail exported")
    EMAIL_CHANGED = "account.email_changed", _("Own e-mail address changed")
    USER_MOVED = "user.moved", _("User moved to another pool")


class Outcome(models.TextChoices):
    SUCCEEDED = "succeeded", _("Succeeded")
    REJECTED = "rejected", _("Rejected by the portal")
    FAILED = "failed", _("Failed in Microsoft Graph")


class PurchaseTerm(models.TextChoices):
    MONTHLY = "P1M", _("Monthly")
    ANNUAL = "P1Y", _("Annual")
    THREE_YEARS = "P3Y", _("Three years")


class RequestStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    APPROVED = "approved", _("Approved")
    DECLINED = "declined", _("Declined")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class BulkJobKind(models.TextChoices):
    ASSIGN = "assign", _("Assign")
    REVOKE = "revoke", _("Revoke")
    RECLAIM = "reclaim", _("Reclaim")


class BulkJobStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    WAITING = "waiting", _("Waiting to retry")
    FINISHED = "finished", _("Finished")
    FAILED = "failed", _("Failed")


class BulkItemStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    IN_PROGRESS = "in_progress", _("In progress")
    DONE = "done", _("Done")
    REJECTED = "rejected", _("Rejected")
    FAILED = "failed", _("Failed in Microsoft Graph")


class AlertKind(models.TextChoices):
    POOL_SPARE_LOW = "pool_spare_low", _("Pool spare low")
    POOL_OVER_ALLOTMENT = "pool_over_allotment", _("Pool over allotment")
    TENANT_STOCK_LOW = "tenant_stock_low", _("Tenant stock low")
    UNITS_WARNING = "units_warning", _("Units in warning state")
    UNITS_SUSPENDED = "units_suspended", _("Units suspended")
    DRIFT = "drift", _("Assignments made outside the portal")
    GROUP_LICENSE_ERROR = "group_license_error", _("Group licensing error")
    PENDING_REQUEST = "pending_request", _("Pending seat request")


class AlertSeverity(models.TextChoices):
    INFO = "info", _("Information")
    WARNING = "warning", _("Warning")
    CRITICAL = "critical", _("Critical")
