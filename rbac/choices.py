from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    TENANT_ADMIN = "tenant_admin", _("Tenant administrator")
    POOL_MANAGER = "pool_manager", _("Pool manager")
    LICENSE_OPERATOR = "license_operator", _("License operator")
    FINANCE = "finance", _("Finance (report viewer)")
    AUDITOR = "auditor", _("Auditor")


class Action(models.TextChoices):
    """What a user wants to do with an object; the scoping path maps each to permissions."""

    VIEW = "view", _("view")
    ASSIGN = "assign", _("assign and revoke licenses")
    ADMINISTER = "administer", _("administer")
    CHARGEBACK = "chargeback", _("view chargeback")
    AUDIT = "audit", _("read the audit trail")
