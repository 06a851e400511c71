"""Scheme details: value aliases, portal-managed values and tenant-wide policy."""
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from graphsync.models import DirectoryUser, Tenant

from ..choices import PoolAttribute
from .core import Pool


class PoolAlias(models.Model):
    """Puts users whose attribute value normalises to ``alias_key`` into ``pool`` ("Vertrieb" into "Sales").

    An alias of a level-2 value applies inside one level-1 pool (``parent``).
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="pool_aliases", verbose_name=_("tenant"))
    attribute = models.CharField(_("attribute"), max_length=40, choices=PoolAttribute.choices)
    parent = models.ForeignKey(
        Pool, on_delete=models.CASCADE, null=True, blank=True, related_name="child_aliases", verbose_name=_("parent")
    )
    alias_key = models.CharField(_("normalised value"), max_length=300)
    spelling = models.CharField(_("value as entered"), max_length=300)
    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="aliases", verbose_name=_("pool"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("value alias")
        verbose_name_plural = _("value aliases")
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "attribute", "alias_key"], condition=Q(parent__isnull=True), name="alias_unique_top"
            ),
            models.UniqueConstraint(
                fields=["parent", "attribute", "alias_key"], condition=Q(parent__isnull=False), name="alias_unique_child"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.spelling} → {self.pool}"


class PortalValue(models.Model):
    """A pool value kept by the portal for one user, for tenants whose directory attributes can't be trusted."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant"))
    user = models.OneToOneField(
        DirectoryUser, on_delete=models.CASCADE, related_name="portal_value", verbose_name=_("user")
    )
    value = models.CharField(_("value"), max_length=300)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("portal-managed value")
        verbose_name_plural = _("portal-managed values")

    def __str__(self) -> str:
        return f"{self.user}: {self.value}"


class TenantPolicy(models.Model):
    """Tenant-wide defaults for reclaiming seats and alerting on stock."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="policy", verbose_name=_("tenant"))
    inactivity_threshold_days = models.PositiveIntegerField(_("inactivity threshold (days)"), default=90)
    stock_alert_count = models.PositiveIntegerField(_("alert when free units of a SKU fall below"), default=5)
    stock_alert_percent = models.PositiveSmallIntegerField(
        _("alert when free units fall below this percent of enabled units"), default=5
    )

    class Meta:
        verbose_name = _("tenant policy")
        verbose_name_plural = _("tenant policies")

    def __str__(self) -> str:
        return f"{self.tenant} policy"

    @classmethod
    def for_tenant(cls, tenant: Tenant) -> "TenantPolicy":
        policy, _created = cls.objects.get_or_create(tenant=tenant)
        return policy
