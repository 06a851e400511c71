"""Writing audit events; call inside the transaction of the change they record."""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from graphsync.models import DirectoryUser, Sku, Tenant

from .choices import AuditAction, Outcome
from .models import AuditEvent, Pool


def record_event(
    *,
    acting_user: AbstractBaseUser | None,
    action: AuditAction,
    tenant: Tenant | None,
    outcome: Outcome = Outcome.SUCCEEDED,
    pool: Pool | None = None,
    user: DirectoryUser | None = None,
    target: str = "",
    sku: Sku | None = None,
    before: Any = None,
    after: Any = None,
    message: str = "",
    graph_request_id: str = "",
) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=acting_user if acting_user is not None and acting_user.is_authenticated else None,
        actor_name=acting_user.get_username() if acting_user is not None and acting_user.is_authenticated else "system",
        action=action,
        outcome=outcome,
        tenant=tenant,
        pool=pool,
        pool_name=str(pool) if pool else "",
        target_user=user,
        target=target or (user.user_principal_name if user else ""),
        sku=sku,
        sku_part_number=sku.part_number if sku else "",
        before=before,
        after=after,
        message=message,
        graph_request_id=graph_request_id,
    )
