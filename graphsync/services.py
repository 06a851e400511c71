"""Connecting tenants and starting syncs."""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from .models import MICROSOFT_AUTHORITY_HOST, MICROSOFT_GRAPH_BASE_URL, SyncRun, Tenant


def connect_tenant(
    *,
    acting_user: AbstractBaseUser | None,
    name: str,
    tenant_id: str,
    client_id: str,
    client_secret: str,
    authority_host: str = MICROSOFT_AUTHORITY_HOST,
    graph_base_url: str = MICROSOFT_GRAPH_BASE_URL,
    ca_bundle: str = "",
    currency: str = "EUR",
) -> Tenant:
    """Store a tenant connection with its client secret encrypted, and audit it."""
    from pools.audit import record_event
    from pools.choices import AuditAction

    tenant = Tenant(
        name=name, tenant_id=tenant_id, client_id=client_id, authority_host=authority_host,
        graph_base_url=graph_base_url, ca_bundle=ca_bundle, currency=currency.upper(),
    )
    tenant.set_client_secret(client_secret)
    tenant.full_clean()
    with transaction.atomic():
        tenant.save()
        record_event(
            acting_user=acting_user, action=AuditAction.TENANT_CONNECTED, tenant=tenant, target=name,
            after={"tenant_id": str(tenant.tenant_id), "client_id": str(tenant.client_id), "authority": tenant.authority},
        )
    return tenant


def request_sync(tenant: Tenant, *, acting_user: AbstractBaseUser | None) -> SyncRun:
    """Queue a full sync; the task starts once this transaction commits (or at once without a broker)."""
    from .tasks import sync_tenant_task

    run = SyncRun.objects.create(tenant=tenant, requested_by=acting_user if acting_user and acting_user.is_authenticated else None)
    # The queue is named on each call so that a changed CELERY_TASK_DEFAULT_QUEUE (tests run their own
    # worker on a queue of their own) takes effect after Celery has cached its router.
    transaction.on_commit(
        lambda: sync_tenant_task.apply_async(args=[run.pk], queue=settings.CELERY_TASK_DEFAULT_QUEUE)
    )
    return run
