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

    class Meta:
        verbose_name = _("purchase")
        verbose_name_plural = _("purchases")
        ordering = ["-purchased_on", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="purchase_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gte=0), name="purchase_price_not_negative"),
            # One purchase per order reference and tenant, so a resubmitted form cannot record an order twice.
            models.UniqueConstraint(
                "tenant", Lower("order_reference"), condition=~Q(order_reference=""),
                name="purchase_order_reference_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.sku} for {self.pool} on {self.purchased_on}"
