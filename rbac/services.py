"""Granting and removing roles; each writes django-guardian permissions and an audit event."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.exceptions import ValidationError
from django.db import transaction
from guardian.shortcuts import assign_perm, remove_perm

from graphsync.models import Tenant
from pools.audit import record_event
from pools.choices import AuditAction
from pools.models import Pool

from .choices import Role
from .models import Grant

# Permissions a role gives over a whole tenant (on the Tenant) and over one pool (on the Pool).
ROLE_TENANT_PERMISSIONS = {
    Role.TENANT_ADMIN: ["administer_tenant", "view_chargeback", "audit_tenant", "manage_pools"],
    Role.POOL_MANAGER: ["manage_pools"],
    Role.LICENSE_OPERATOR: ["operate_pools"],
    Role.FINANCE: ["view_chargeback"],
    Role.AUDITOR: ["audit_tenant"],
}
ROLE_POOL_PERMISSIONS = {
    Role.POOL_MANAGER: ["manage_pool"],
    Role.LICENSE_OPERATOR: ["operate_pool"],
    Role.FINANCE: ["view_pool_chargeback"],
}


def _permissions(grant: Grant) -> tuple[list[str], Tenant | Pool]:
    if grant.pool_id:
        return [f"pools.{name}" for name in ROLE_POOL_PERMISSIONS[grant.role]], grant.pool
    return [f"graphsync.{name}" for name in ROLE_TENANT_PERMISSIONS[grant.role]], grant.tenant


def grant_role(
    *,
    acting_user: AbstractBaseUser | None,
    role: Role,
    tenant: Tenant,
    user: AbstractBaseUser | None = None,
    group: Group | None = None,
    pool: Pool | None = None,
) -> Grant:
    grant = Grant(user=user, group=group, role=role, tenant=tenant, pool=pool, created_by=acting_user)
    grant.full_clean()
    if pool is not None and role not in ROLE_POOL_PERMISSIONS:
        raise ValidationError({"pool": f"The role {role} applies to a whole tenant: leave the pool empty."})
    principal = user or group
    with transaction.atomic():
        grant.save()
        permissions, obj = _permissions(grant)
        for permission in permissions:
            assign_perm(permission, principal, obj)
        record_event(
            acting_user=acting_user,
            action=AuditAction.GRANT_ADDED,
            tenant=tenant,
            pool=pool,
            target=str(principal),
            after={"role": role, "scope": str(pool or tenant)},
        )
    return grant


def remove_grant(*, acting_user: AbstractBaseUser | None, grant: Grant) -> None:
    principal = grant.user or grant.group
    with transaction.atomic():
        permissions, obj = _permissions(grant)
        grant.delete()
        # Another grant may give the same permission on the same object; keep it then.
        still_granted = set()
        for other in Grant.objects.filter(user=grant.user, group=grant.group, tenant=grant.tenant, pool=grant.pool):
            still_granted.update(_permissions(other)[0])
        for permission in permissions:
            if permission not in still_granted:
                remove_perm(permission, principal, obj)
        record_event(
            acting_user=acting_user,
            action=AuditAction.GRANT_REMOVED,
            tenant=grant.tenant,
            pool=grant.pool,
            target=str(principal),
            before={"role": grant.role, "scope": str(grant.pool or grant.tenant)},
        )
