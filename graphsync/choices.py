from django.db import models
from django.utils.translation import gettext_lazy as _


class SyncStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped")


class SyncKind(models.TextChoices):
    FULL = "full", _("Full")
    INCREMENTAL = "incremental", _("Incremental")


class CapabilityStatus(models.TextChoices):
    ENABLED = "Enabled", _("Enabled")
    WARNING = "Warning", _("Warning")
    SUSPENDED = "Suspended", _("Suspended")
    DELETED = "Deleted", _("Deleted")
    LOCKED_OUT = "LockedOut", _("Locked out")


class LicenseState(models.TextChoices):
    """``licenseAssignmentStates.state`` plus the portal's own reservation state."""

    PENDING = "Pending", _("Pending (reserved by the portal)")
    ACTIVE = "Active", _("Active")
    ACTIVE_WITH_ERROR = "ActiveWithError", _("Active with error")
    DISABLED = "Disabled", _("Disabled")
    ERROR = "Error", _("Error")


class LicenseOrigin(models.TextChoices):
    """The maker of a direct assignment. Group assignments always count as external to the portal."""

    PORTAL = "portal", _("Assigned through the portal")
    EXTERNAL = "external", _("Assigned outside the portal")


class DriftResolution(models.TextChoices):
    ADOPTED = "adopted", _("Adopted: the allotment was raised")
    REFERRED = "referred", _("Referred to the pool managers")
