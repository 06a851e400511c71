"""Celery tasks for alerts: evaluation after a sync or a change, and the daily digest.

They take ids and re-read rows. Evaluations after a change are coalesced: a burst of assignments in one
pool queues one evaluation of that pool and SKU, not one per assignment.
"""
import logging
from urllib.parse import urlsplit

import redis
from celery import current_app, shared_task
from django.conf import settings

from graphsync.models import Sku, Tenant

from .alerts import evaluate_pool_sku, evaluate_tenant
from .models import Pool
from .notifications import send_digests

logger = logging.getLogger(__name__)

# An evaluation after a change waits this long in the queue, so that the changes of a burst share it.
POOL_SKU_EVALUATION_DELAY_SECONDS = 2
# A pending mark expires after this long even if its task never ran, so a lost task delays the next
# evaluation by at most this much. It must outlast the delay plus the usual wait in the queue.
PENDING_MARK_TTL_SECONDS = 60
PENDING_KEY = "pools:alerts:pending:pool{pool_pk}:sku{sku_pk}"

_redis_clients: dict = {}


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


@shared_task(acks_late=True)
def evaluate_pool_sku_alerts_task(pool_pk: int, sku_pk: int) -> int:
    """Evaluate the spare, over-allotment and stock alerts of one pool and SKU, and return how many were raised.

    The pending mark is cleared before the evaluation reads anything, so a change that commits while it
    runs queues another evaluation. Running it twice does no harm.
    """
    _clear_pending(pool_pk, sku_pk)
    pool = Pool.objects.select_related("tenant", "parent").filter(pk=pool_pk).first()
    sku = Sku.objects.filter(pk=sku_pk).first()
    if pool is None or sku is None:
        logger.info("Pool %s or SKU %s not found, so its alerts are not evaluated", pool_pk, sku_pk)
        return 0
    return len(evaluate_pool_sku(pool, sku).raised)


@shared_task
def send_alert_digests_task() -> int:
    """Send the daily alert digests; for Celery beat. A user already sent one within 20 hours is skipped."""
    return send_digests()


def queue_pool_sku_evaluation(pool_pk: int, sku_pk: int) -> None:
    """Queue an evaluation of the pool's and SKU's alerts unless one is queued and has not started yet.

    Without a broker, Celery runs the task here and now, as the embedded default does with every task.
    Errors are logged, not raised, because the change that calls this has committed already.
    """
    eager = current_app.conf.task_always_eager
    try:
        if not eager and not _mark_pending(pool_pk, sku_pk):
            return
        # The queue is named on each call so that a test worker's queue, set after Celery cached its
        # router, takes effect.
        evaluate_pool_sku_alerts_task.apply_async(
            args=[pool_pk, sku_pk], countdown=POOL_SKU_EVALUATION_DELAY_SECONDS,
            queue=settings.CELERY_TASK_DEFAULT_QUEUE,
        )
    except Exception:
        logger.exception("Evaluating alerts of pool %s and SKU %s after a change failed", pool_pk, sku_pk)
        if not eager:
            _clear_pending(pool_pk, sku_pk)


def _pending_store():
    """Return a Redis client on the Celery broker, or None when the broker is not Redis."""
    url = settings.CELERY_BROKER_URL
    if urlsplit(url).scheme not in ("redis", "rediss"):
        return None
    client = _redis_clients.get(url)
    if client is None:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        _redis_clients[url] = client
    return client


def _mark_pending(pool_pk: int, sku_pk: int) -> bool:
    """Set the pool and SKU's pending mark, and return False when it was set already.

    Without Redis every change queues its own evaluation.
    """
    store = _pending_store()
    if store is None:
        return True
    key = PENDING_KEY.format(pool_pk=pool_pk, sku_pk=sku_pk)
    return bool(store.set(key, 1, nx=True, ex=PENDING_MARK_TTL_SECONDS))


def _clear_pending(pool_pk: int, sku_pk: int) -> None:
    store = _pending_store()
    if store is None:
        return
    try:
        store.delete(PENDING_KEY.format(pool_pk=pool_pk, sku_pk=sku_pk))
    except redis.RedisError:
        # The mark expires by itself. Until then, new changes queue nothing and rely on this evaluation.
        logger.exception("Clearing the pending alert evaluation of pool %s and SKU %s failed", pool_pk, sku_pk)
