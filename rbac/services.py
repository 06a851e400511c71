"""Granting and removing roles; each writes django-guardian permissions and an audit event."""
from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser, Group
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from guardian.shortcuts import assign_perm, remove_perm
from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

from graphsync.models import Tenant
from pools.audit import record_event
from pools.choices import AuditAction
from pools.models import Pool

from .choices import Role
from .models import Grant

logger = logging.getLogger(__name__)

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


def move_pool_grants(*, acting_user: AbstractBaseUser | None, source: Pool, target: Pool) -> int:
    """Move every grant and object permission on ``source`` to ``target`` when ``source`` is merged into it.

    A principal who already has the same role on ``target`` keeps that grant, and the one on ``source``
    is deleted, so no grant is duplicated. Each grant writes one ``grant.moved`` audit event. Object
    permissions given on ``source`` without a grant, such as in the Django admin, move too. Returns the
    number of grants handled. Call inside the merge's transaction.
    """
    handled = 0
    for grant in Grant.objects.filter(pool=source).select_related("user", "group", "tenant").order_by("pk"):
        principal = grant.user or grant.group
        duplicate = Grant.objects.filter(
            user=grant.user, group=grant.group, role=grant.role, tenant_id=grant.tenant_id, pool=target
        ).exists()
        before = {"role": grant.role, "scope": str(source), "poolId": source.pk}
        after = {"role": grant.role, "scope": str(target), "poolId": target.pk, "alreadyHeld": duplicate}
        if duplicate:
            grant.delete()
            message = _("Removed from %(source)s, which was merged into %(target)s, where this role was held already.")
        else:
            grant.pool = target
            grant.save(update_fields=["pool"])
            for permission in _permissions(grant)[0]:
                assign_perm(permission, principal, target)
            message = _("Moved from %(source)s because it was merged into %(target)s.")
        record_event(
            acting_user=acting_user, action=AuditAction.GRANT_MOVED, tenant=grant.tenant, pool=target,
            target=str(principal), before=before, after=after,
            message=message % {"source": source, "target": target},
        )
        handled += 1
    _move_object_permissions(acting_user, source, target)
    if handled:
        logger.info("Moved %s grants from pool %s to pool %s (tenant %s)", handled, source.pk, target.pk, target.tenant_id)
    return handled


def _move_object_permissions(acting_user: AbstractBaseUser | None, source: Pool, target: Pool) -> None:
    """Give each user and group every object permission they have on ``source`` on ``target`` instead."""
    content_type = ContentType.objects.get_for_model(Pool)
    granted = {
        (grant.user_id, grant.group_id, permission)
        for grant in Grant.objects.filter(pool=target)
        for permission in _permissions(grant)[0]
    }
    for model, principal_field in ((get_user_obj_perms_model(Pool), "user"), (get_group_obj_perms_model(Pool), "group")):
        rows = model.objects.filter(content_type=content_type, object_pk=str(source.pk)).select_related(
            "permission", principal_field
        )
        for row in rows:
            principal = getattr(row, principal_field)
            permission = f"pools.{row.permission.codename}"
            assign_perm(permission, principal, target)
            key = (principal.pk, None, permission) if principal_field == "user" else (None, principal.pk, permission)
            if key not in granted:
                # No grant explains this permission, so the grant events above do not cover it.
                record_event(
                    acting_user=acting_user, action=AuditAction.GRANT_MOVED, tenant=target.tenant, pool=target,
                    target=str(principal),
                    before={"permission": permission, "scope": str(source), "poolId": source.pk},
                    after={"permission": permission, "scope": str(target), "poolId": target.pk},
                    message=_("Moved the object permission from %(source)s because it was merged into %(target)s.")
                    % {"source": source, "target": target},
                )
        rows.delete()
