"""The purchase ledger: who bought which seats, when, for which pool."""
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from graphsync.models import Sku, Subscription, Tenant

from ..choices import PurchaseTerm
from .core import Pool


class Purchase(models.Model):
    """Seats of a SKU bought for a pool; recording one raises that pool's allotment by ``quantity``."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="purchases", verbose_name=_("tenant"))
    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="purchases", verbose_name=_("SKU"))
    quantity = models.PositiveIntegerField(_("quantity"))
    purchased_on = models.DateField(_("purchase date"))
    unit_price = models.DecimalField(_("unit price per month"), max_digits=12, decimal_places=4)
    currency = models.CharField(_("currency"), max_length=3, help_text=_("ISO 4217 code, e.g. EUR."))
    term = models.CharField(_("term"), max_length=3, choices=PurchaseTerm.choices, default=PurchaseTerm.ANNUAL)
    order_reference = models.CharField(_("order reference"), max_length=200, blank=True)
    pool = models.ForeignKey(Pool, on_delete=models.PROTECT, related_name="purchases", verbose_name=_("purchasing pool"))
    subscription = models.ForeignKey(
        Subscription, on_delete=models.SET_NULL, null=True, blank=True, related_name="purchases",
        verbose_name=_("commerce subscription"),
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    recorded_at = models.DateTimeField(_("recorded at"), auto_now_add=True)
    # A wrong purchase is voided, never deleted or edited: the row stays in the ledger, marked, and its
    # quantity no longer counts in the allotment or the totals.
    voided_at = models.DateTimeField(_("voided at"), null=True, blank=True)
    voided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("voided by"),
    )
    void_reason = models.TextField(_("reason for voiding"), blank=True)

    class Meta:
        verbose_name = _("purchase")
        verbose_name_plural = _("purchases")
        ordering = ["-purchased_on", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="purchase_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="purchase_price_not_negative"),
            # One purchase per order reference and tenant, so a resubmitted form cannot record an order twice.
            # A voided purchase frees its reference, so that the order can be recorded again correctly.
            models.UniqueConstraint(
                "tenant", Lower("order_reference"), condition=~Q(order_reference="") & Q(voided_at__isnull=True),
                name="purchase_order_reference_unique",
            ),
            models.CheckConstraint(
                condition=Q(voided_at__isnull=True) | ~Q(void_reason=""), name="purchase_void_has_reason"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.sku} for {self.pool} on {self.purchased_on}"

    @property
    def is_voided(self) -> bool:
        return self.voided_at is not None
