"""Alerts shown in the portal and sent by e-mail."""
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from graphsync.models import Tenant

from ..choices import AlertKind, AlertSeverity
from .core import Pool


class Alert(models.Model):
    """A condition that needs attention; one open alert per ``dedup_key``, resolved when the condition clears."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="alerts", verbose_name=_("tenant"))
    pool = models.ForeignKey(
        Pool, on_delete=models.CASCADE, null=True, blank=True, related_name="alerts", verbose_name=_("pool")
    )
    kind = models.CharField(_("kind"), max_length=40, choices=AlertKind.choices)
    severity = models.CharField(_("severity"), max_length=20, choices=AlertSeverity.choices, default=AlertSeverity.WARNING)
    dedup_key = models.CharField(_("deduplication key"), max_length=300)
    message = models.TextField(_("message"))
    details = models.JSONField(_("details"), default=dict, blank=True)
    raised_at = models.DateTimeField(_("raised at"), auto_now_add=True)
    last_seen_at = models.DateTimeField(_("last seen at"), auto_now=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    emailed_at = models.DateTimeField(_("e-mailed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        ordering = ["-raised_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "dedup_key"], condition=Q(resolved_at__isnull=True), name="alert_one_open_per_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message}"


class AlertPreference(models.Model):
    """A portal user's choice of alert e-mails: one per alert as it is raised, or a daily digest."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_preference")
    daily_digest = models.BooleanField(_("daily digest instead of one e-mail per alert"), default=False)
    last_digest_sent_at = models.DateTimeField(_("last digest sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("alert preference")
        verbose_name_plural = _("alert preferences")

    def __str__(self) -> str:
        return f"{self.user} alert preference"
