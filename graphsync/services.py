"""Connecting tenants and starting syncs."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .choices import SyncKind, SyncStatus
from .currencies import validate_currency_code
from .models import MICROSOFT_AUTHORITY_HOST, MICROSOFT_GRAPH_BASE_URL, DeltaState, SyncRun, Tenant


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
    try:
        validate_currency_code(currency)
    except ValidationError as exc:
        raise ValidationError({"currency": exc.error_list}) from None
    tenant.full_clean()
    with transaction.atomic():
        tenant.save()
        record_event(
            acting_user=acting_user, action=AuditAction.TENANT_CONNECTED, tenant=tenant, target=name,
            after={"tenant_id": str(tenant.tenant_id), "client_id": str(tenant.client_id), "authority": tenant.authority},
        )
    return tenant


def choose_sync_kind(tenant: Tenant) -> str:
    """Return FULL when the tenant has no delta link or no full sync succeeded in the last
    ``GRAPH_FULL_SYNC_INTERVAL_HOURS``, else INCREMENTAL.

    A regular full sync catches what the users delta does not report, such as changes to groups'
    members that alter no user property.
    """
    has_link = DeltaState.objects.filter(tenant=tenant).exclude(users_delta_link="").exists()
    if not has_link:
        return SyncKind.FULL
    interval = timedelta(hours=float(getattr(settings, "GRAPH_FULL_SYNC_INTERVAL_HOURS", 24)))
    recent_full = SyncRun.objects.filter(
        tenant=tenant, kind=SyncKind.FULL, status=SyncStatus.SUCCEEDED, started_at__gte=timezone.now() - interval
    ).exists()
    return SyncKind.INCREMENTAL if recent_full else SyncKind.FULL


def request_sync(tenant: Tenant, *, acting_user: AbstractBaseUser | None, kind: str = SyncKind.FULL) -> SyncRun:
    """Queue a sync of ``kind``; the task starts once this transaction commits (or at once without a broker)."""
    from .tasks import sync_tenant_task

    run = SyncRun.objects.create(
        tenant=tenant, kind=kind,
        requested_by=acting_user if acting_user and acting_user.is_authenticated else None,
    )
    # The queue is named on each call so that a changed CELERY_TASK_DEFAULT_QUEUE (tests run their own
    # worker on a queue of their own) takes effect after Celery has cached its router.
    transaction.on_commit(
        lambda: sync_tenant_task.apply_async(args=[run.pk], queue=settings.CELERY_TASK_DEFAULT_QUEUE)
    )
    return run
