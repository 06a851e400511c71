"""Celery tasks for syncing tenants; they take ids, re-read rows and are safe to run twice."""
import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from .choices import SyncStatus
from .models import SyncRun, Tenant
from .sync import run_full_sync

logger = logging.getLogger(__name__)

# A run still marked running after this long belongs to a worker that died.
ABANDONED_RUN_AGE = timedelta(hours=2)


@shared_task(acks_late=True)
def sync_tenant_task(run_id: int) -> str:
    run = SyncRun.objects.select_related("tenant").filter(pk=run_id).first()
    if run is None:
        logger.info("Sync run %s no longer exists; nothing to do", run_id)
        return "missing"
    if run.status != SyncStatus.QUEUED:
        logger.info("Sync run %s of tenant %s is %s already; skipped", run_id, run.tenant.tenant_id, run.status)
        return run.status
    busy = SyncRun.objects.filter(
        tenant=run.tenant, status=SyncStatus.RUNNING, started_at__gte=timezone.now() - ABANDONED_RUN_AGE
    ).exclude(pk=run.pk)
    if busy.exists():
        SyncRun.objects.filter(pk=run.pk).update(
            status=SyncStatus.FAILED, finished_at=timezone.now(), error_message="Another sync of this tenant is running."
        )
        logger.info("Sync run %s of tenant %s skipped: another sync is running", run_id, run.tenant.tenant_id)
        return SyncStatus.FAILED
    return run_full_sync(run).status


@shared_task
def sync_all_tenants_task() -> int:
    from .services import request_sync

    count = 0
    for tenant in Tenant.objects.all():
        request_sync(tenant, acting_user=None)
        count += 1
    return count
