"""Celery tasks for syncing tenants; they take ids, re-read rows and are safe to run twice."""
import logging

from celery import shared_task
from django.conf import settings

from .choices import SyncStatus
from .models import SyncRun, Tenant
from .sync import run_sync

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def sync_tenant_task(run_id: int) -> str:
    """Run a queued sync; a run already started, finished or skipped is left alone.

    With acks_late, Celery delivers the task again when a worker dies mid-run. The run is then marked
    running, not queued, so the second delivery does nothing. The next run of the tenant marks it
    failed once that run holds the tenant's sync lock.
    """
    run = SyncRun.objects.select_related("tenant").filter(pk=run_id).first()
    if run is None:
        logger.info("Sync run %s no longer exists; nothing to do", run_id)
        return "missing"
    if run.status != SyncStatus.QUEUED:
        logger.info("Sync run %s of tenant %s is %s already; skipped", run_id, run.tenant.tenant_id, run.status)
        return run.status
    run = run_sync(run)
    if run.status == SyncStatus.SUCCEEDED:
        # Imported here because pools builds on graphsync; a separate task keeps an alert failure from
        # marking the sync failed.
        from pools.alert_tasks import evaluate_tenant_alerts_task

        evaluate_tenant_alerts_task.apply_async((run.tenant_id,), queue=settings.CELERY_TASK_DEFAULT_QUEUE)
    return run.status


@shared_task
def sync_all_tenants_task() -> int:
    """Queue a sync of every tenant: incremental, or full when the last full sync is a day old."""
    from .services import choose_sync_kind, request_sync

    count = 0
    for tenant in Tenant.objects.all():
        kind = choose_sync_kind(tenant)
        run = request_sync(tenant, acting_user=None, kind=kind)
        logger.info("Scheduled sync run %s (%s) of tenant %s queued", run.pk, kind, tenant.tenant_id)
        count += 1
    return count


@shared_task
def refresh_planner_statistics_task() -> None:
    """ANALYZE the mirror tables after a full sync rewrote them; see ``sync.refresh_planner_statistics``."""
    from .sync import refresh_planner_statistics

    refresh_planner_statistics()
