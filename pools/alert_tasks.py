"""Celery tasks for alerts: evaluation after a sync, and the daily digest. They take ids and re-read rows."""
import logging

from celery import shared_task

from graphsync.models import Tenant

from .alerts import evaluate_tenant
from .notifications import send_digests

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def evaluate_tenant_alerts_task(tenant_pk: int) -> int:
    """Evaluate every alert condition of a tenant and return how many alerts were raised.

    Running it twice does no harm: the second run finds the alerts open and only refreshes them.
    """
    tenant = Tenant.objects.filter(pk=tenant_pk).first()
    if tenant is None:
        logger.info("Tenant %s no longer exists; no alerts to evaluate", tenant_pk)
        return 0
    return len(evaluate_tenant(tenant).raised)


@shared_task
def send_alert_digests_task() -> int:
    """Send the daily alert digests; for Celery beat. A user already sent one within 20 hours is skipped."""
    return send_digests()
