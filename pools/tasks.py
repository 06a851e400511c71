"""Celery tasks of the pools app: thin wrappers that take ids and call ``pools.bulk``."""
import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from .bulk import TransientGraphFailure, resume_stale_jobs, run_bulk_job, stale_after, wait_for_retry
from .choices import BulkJobStatus

logger = logging.getLogger(__name__)

# Waits before running a job again after Graph was throttling or unreachable: 30 s, doubling up to 10 min.
TRANSIENT_RETRY_BASE_SECONDS = 30
TRANSIENT_RETRY_MAX_SECONDS = 600
MAX_TRANSIENT_RETRIES = 5


@shared_task(bind=True, acks_late=True, max_retries=MAX_TRANSIENT_RETRIES)
def run_bulk_job_task(self, job_id: int) -> str:
    """Run or continue a bulk job; a finished job, or one another worker is running, is left alone.

    With acks_late, Celery delivers the task again when a worker dies; the job's heartbeat tells
    whether its runner is still alive. After the last retry, an item that meets a throttled or
    unreachable Graph fails with Graph's reason instead of waiting again.
    """
    retry_transient = self.request.retries < self.max_retries
    try:
        return run_bulk_job(job_id, retry_transient=retry_transient)
    except TransientGraphFailure as exc:
        countdown = min(TRANSIENT_RETRY_BASE_SECONDS * 2 ** self.request.retries, TRANSIENT_RETRY_MAX_SECONDS)
        wait_for_retry(job_id, reason=str(exc), countdown=countdown)
        if self.request.is_eager:
            # An eager task runs inside the request that queued it, where Celery's retry would raise
            # Retry into that request. The job waits instead, until someone resumes it or
            # resume_stale_bulk_jobs_task finds it overdue.
            return BulkJobStatus.WAITING
        raise self.retry(countdown=countdown, exc=exc, queue=settings.CELERY_TASK_DEFAULT_QUEUE)


@shared_task
def resume_stale_bulk_jobs_task() -> int:
    """Queue again every bulk job whose worker stopped; for Celery beat, and once after each worker start."""
    return len(resume_stale_jobs())


@worker_ready.connect
def resume_stale_bulk_jobs_after_start(sender=None, **kwargs) -> None:
    """Check for abandoned jobs once a dead worker's heartbeat has had time to go stale."""
    delay = stale_after().total_seconds() + 5
    resume_stale_bulk_jobs_task.apply_async(countdown=delay, queue=settings.CELERY_TASK_DEFAULT_QUEUE)
    logger.info("Stale bulk jobs will be resumed in %s s", delay)
