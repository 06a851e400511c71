"""Requests from pool managers for more seats."""
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from graphsync.models import Sku, Tenant

from ..choices import RequestStatus
from .core import Pool


class SeatRequest(models.Model):
    """A pool manager's request for more seats of a SKU; approval raises the allotment from the reserve."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="seat_requests", verbose_name=_("tenant"))
    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="seat_requests", verbose_name=_("pool"))
    sku = models.ForeignKey(Sku, on_delete=models.CASCADE, related_name="seat_requests", verbose_name=_("SKU"))
    quantity = models.PositiveIntegerField(_("seats"))
    reason = models.TextField(_("reason"))
    status = models.CharField(_("status"), max_length=20, choices=RequestStatus.choices, default=RequestStatus.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+", verbose_name=_("requested by")
    )
    requested_at = models.DateTimeField(_("requested at"), auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decision_reason = models.TextField(_("reason for the decision"), blank=True)

    class Meta:
        verbose_name = _("seat request")
        verbose_name_plural = _("seat requests")
        ordering = ["-requested_at"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="seat_request_quantity_positive"),
            # One pending request per pool and SKU, so repeated or concurrent submits cannot queue duplicates.
            models.UniqueConstraint(
                fields=["pool", "sku"], condition=Q(status=RequestStatus.PENDING),
                name="seat_request_one_pending_per_sku",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.sku} for {self.pool} ({self.status})"
