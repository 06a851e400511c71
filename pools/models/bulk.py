"""Bulk assign, revoke and reclaim jobs, resumable item by item."""
from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from graphsync.models import DirectoryUser, Sku, Tenant

from ..choices import BulkItemStatus, BulkJobKind, BulkJobStatus
from .core import Pool


class BulkJob(models.Model):
    """One bulk operation on a pool, run by a Celery task; its items record each user's outcome."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="bulk_jobs", verbose_name=_("tenant"))
    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="bulk_jobs", verbose_name=_("pool"))
    # Empty for a reclaim job, which reclaims each user's own reclaimable SKUs.
    sku = models.ForeignKey(
        Sku, on_delete=models.CASCADE, null=True, blank=True, related_name="+", verbose_name=_("SKU")
    )
    kind = models.CharField(_("kind"), max_length=20, choices=BulkJobKind.choices)
    disabled_plans = models.JSONField(_("disabled service plans"), default=list, blank=True)
    status = models.CharField(_("status"), max_length=20, choices=BulkJobStatus.choices, default=BulkJobStatus.QUEUED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("last progress at"), null=True, blank=True)
    # Set while the job waits out a throttled or unavailable Graph: when it runs again, and Graph's reason.
    retry_at = models.DateTimeField(_("retries at"), null=True, blank=True)
    retry_reason = models.TextField(_("reason for the retry"), blank=True)

    class Meta:
        verbose_name = _("bulk job")
        verbose_name_plural = _("bulk jobs")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        if self.sku_id is None:
            return f"{self.get_kind_display()} in {self.pool} ({self.status})"
        return f"{self.get_kind_display()} {self.sku} in {self.pool} ({self.status})"


class BulkJobItem(models.Model):
    """One user of a bulk job. The runner moves ``status`` from pending to one final state; resuming a job
    after its worker died reconciles items left in progress against Graph first."""

    job = models.ForeignKey(BulkJob, on_delete=models.CASCADE, related_name="items", verbose_name=_("job"))
    position = models.PositiveIntegerField(_("position"))
    user_principal_name = models.CharField(_("user principal name as given"), max_length=300)
    user = models.ForeignKey(DirectoryUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    status = models.CharField(_("status"), max_length=20, choices=BulkItemStatus.choices, default=BulkItemStatus.PENDING)
    message = models.TextField(_("message"), blank=True)
    graph_request_id = models.CharField(_("Graph request ID"), max_length=100, blank=True)
    # Reclaim jobs only: one entry per SKU of the user, with its status, message and Graph request ID.
    licenses = models.JSONField(_("license outcomes"), default=list, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("bulk job item")
        verbose_name_plural = _("bulk job items")
        ordering = ["job", "position"]
        constraints = [models.UniqueConstraint(fields=["job", "position"], name="bulk_item_unique_position")]

    def __str__(self) -> str:
        return f"{self.user_principal_name}: {self.status}"
