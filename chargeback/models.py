"""Prices and the license history that chargeback reports are computed from."""
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from graphsync.models import DirectoryUser, Sku, Tenant
from pools.models import Pool


class SkuPrice(models.Model):
    """The monthly price of one seat of a SKU in a tenant, from a date on."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="prices", verbose_name=_("tenant"))
    sku = models.ForeignKey(Sku, on_delete=models.CASCADE, related_name="prices", verbose_name=_("SKU"))
    currency = models.CharField(_("currency"), max_length=3, help_text=_("ISO 4217 code, e.g. EUR."))
    monthly_price = models.DecimalField(_("monthly price per seat"), max_digits=12, decimal_places=4)
    effective_from = models.DateField(_("effective from"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("SKU price")
        verbose_name_plural = _("SKU prices")
        ordering = ["sku", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["sku", "effective_from"], name="price_unique_per_sku_date"),
            models.CheckConstraint(condition=Q(monthly_price__gte=0), name="price_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.monthly_price} {self.currency} from {self.effective_from}"


class LicenseInterval(models.Model):
    """A span of time during which a user held a SKU while in one pool.

    An interval opens when an assignment succeeds or a sync first sees the license, and closes on
    revocation, when a sync no longer sees it, or when the user moves to another pool.
    """

    # The tenant is the user's, which the user's foreign key already enforces. Without a database
    # constraint and index of its own, opening a full sync's intervals skips a referential check per row.
    # The (tenant, started at) index serves lookups by tenant, and Django still cascades a tenant's deletion.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant"), db_constraint=False, db_index=False
    )
    user = models.ForeignKey(
        DirectoryUser, on_delete=models.CASCADE, related_name="license_intervals", verbose_name=_("user")
    )
    # Intervals are read by tenant and time, or by user; none by SKU alone, so the SKU has no index.
    sku = models.ForeignKey(Sku, on_delete=models.CASCADE, related_name="+", verbose_name=_("SKU"), db_index=False)
    pool = models.ForeignKey(Pool, on_delete=models.SET_NULL, null=True, blank=True, related_name="license_intervals")
    started_at = models.DateTimeField(_("started at"))
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)

    class Meta:
        verbose_name = _("license interval")
        verbose_name_plural = _("license intervals")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "sku"], condition=Q(ended_at__isnull=True), name="one_open_interval_per_user_sku"
            ),
        ]
        indexes = [models.Index(fields=["tenant", "started_at"], name="interval_tenant_start_idx")]

    def __str__(self) -> str:
        return f"{self.user} {self.sku} {self.started_at:%Y-%m-%d}–{self.ended_at or ''}"
