"""Grants: a portal user or group holds a role over a whole tenant or one pool."""
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from graphsync.models import Tenant
from pools.models import Pool

from .choices import Role

# Roles that only make sense over a whole tenant.
TENANT_ONLY_ROLES = {Role.TENANT_ADMIN, Role.AUDITOR}


class Grant(models.Model):
    """A role given to one portal user or portal group, scoped to a tenant or to one pool of it.

    Saving a grant through ``rbac.services`` also writes the matching django-guardian object permissions,
    which the scoping path reads.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="grants"
    )
    group = models.ForeignKey(Group, on_delete=models.CASCADE, null=True, blank=True, related_name="grants")
    role = models.CharField(_("role"), max_length=30, choices=Role.choices)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="grants", verbose_name=_("tenant"))
    pool = models.ForeignKey(
        Pool, on_delete=models.CASCADE, null=True, blank=True, related_name="grants", verbose_name=_("pool")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("grant")
        verbose_name_plural = _("grants")
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(group__isnull=True))
                | (Q(user__isnull=True) & Q(group__isnull=False)),
                name="grant_has_one_principal",
            ),
        ]

    def __str__(self) -> str:
        principal = self.user or self.group
        scope = self.pool or self.tenant
        return f"{principal}: {self.get_role_display()} of {scope}"

    def clean(self) -> None:
        if self.pool_id and self.pool.tenant_id != self.tenant_id:
            raise ValidationError({"pool": _("The pool belongs to another tenant.")})
        if self.pool_id and self.role in TENANT_ONLY_ROLES:
            raise ValidationError({"pool": _("This role applies to a whole tenant: leave the pool empty.")})
