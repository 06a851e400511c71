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
    """``licenseAssignmentStates.state`` plus the portal's own states.

    The portal's states: a seat reserved while Graph is called, and an assignment or removal whose
    outcome is unknown because the connection failed after the request was sent and reading the
    user's licenses back failed too. An unconfirmed row keeps its seat until a sync settles it.
    """

    PENDING = "Pending", _("Pending (reserved by the portal)")
    ASSIGNMENT_UNCONFIRMED = "AssignmentUnconfirmed", _("Assignment unconfirmed (the next sync settles it)")
    REMOVAL_UNCONFIRMED = "RemovalUnconfirmed", _("Removal unconfirmed (the next sync settles it)")
    ACTIVE = "Active", _("Active")
    ACTIVE_WITH_ERROR = "ActiveWithError", _("Active with error")
    DISABLED = "Disabled", _("Disabled")
    ERROR = "Error", _("Error")


# States a sync must neither overwrite nor delete from Graph's listing; it settles them first.
UNCONFIRMED_STATES = (LicenseState.ASSIGNMENT_UNCONFIRMED, LicenseState.REMOVAL_UNCONFIRMED)


class LicenseOrigin(models.TextChoices):
    """The maker of a direct assignment. Group assignments always count as external to the portal."""

    PORTAL = "portal", _("Assigned through the portal")
    EXTERNAL = "external", _("Assigned outside the portal")


class DriftResolution(models.TextChoices):
    ADOPTED = "adopted", _("Adopted: the allotment was raised")
    REFERRED = "referred", _("Referred to the pool managers")
