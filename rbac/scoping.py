"""The one scoping path: every queryset a view, API endpoint, export or task shows goes through here.

Objects outside a user's scope are treated as missing, so "not found" and "not allowed" look the same
across tenants and pools.
"""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404
from django.utils.translation import gettext as _
from guardian.models import GroupObjectPermission, UserObjectPermission
from guardian.shortcuts import get_objects_for_user

from graphsync.models import DirectoryUser, Tenant
from pools.models import Pool

from .choices import Action


class ObjectNotFound(Http404):
    """Http404 whose message is written for users, such as "Pool not found.".

    Raised alike for a missing object and one outside the user's scope, so the two look the same.
    The API returns its message; Django's HTML 404 page shows none.
    """


# Tenant-wide permissions that grant each action on every pool of the tenant.
TENANT_PERMISSIONS = {
    Action.VIEW: ["administer_tenant", "manage_pools", "operate_pools", "audit_tenant"],
    Action.ASSIGN: ["administer_tenant", "manage_pools", "operate_pools"],
    Action.ADMINISTER: ["administer_tenant"],
    Action.CHARGEBACK: ["administer_tenant", "view_chargeback", "audit_tenant"],
    Action.AUDIT: ["administer_tenant", "audit_tenant"],
}
# Pool permissions that grant each action on the pool and its level-2 pools.
POOL_PERMISSIONS = {
    Action.VIEW: ["manage_pool", "operate_pool"],
    Action.ASSIGN: ["manage_pool", "operate_pool"],
    Action.ADMINISTER: [],
    Action.CHARGEBACK: ["view_pool_chargeback"],
    Action.AUDIT: [],
}


def _tenant_perms(action: Action) -> list[str]:
    return [f"graphsync.{codename}" for codename in TENANT_PERMISSIONS[action]]


def _pool_perms(action: Action) -> list[str]:
    return [f"pools.{codename}" for codename in POOL_PERMISSIONS[action]]


def tenants_with_tenant_permission(user: AbstractBaseUser, action: Action) -> QuerySet[Tenant]:
    """Return the tenants on which the user has a tenant-wide permission for ``action``."""
    if not user.is_authenticated:
        return Tenant.objects.none()
    return get_objects_for_user(user, _tenant_perms(action), klass=Tenant, any_perm=True, accept_global_perms=False)


def pools_for(user: AbstractBaseUser, action: Action) -> QuerySet[Pool]:
    """Active pools the user may act on: tenant-wide grants, pool grants, and level-2 pools of granted ones."""
    if not user.is_authenticated:
        return Pool.objects.none()
    tenant_ids = tenants_with_tenant_permission(user, action).values("pk")
    condition = Q(tenant__in=tenant_ids)
    if POOL_PERMISSIONS[action]:
        granted = get_objects_for_user(
            user, _pool_perms(action), klass=Pool, any_perm=True, accept_global_perms=False
        ).values("pk")
        condition |= Q(pk__in=granted) | Q(parent__in=granted)
    return Pool.objects.filter(condition, is_active=True)


def tenants_for(user: AbstractBaseUser, action: Action) -> QuerySet[Tenant]:
    """Tenants the user may act on, tenant-wide or through at least one pool."""
    if not user.is_authenticated:
        return Tenant.objects.none()
    tenant_ids = tenants_with_tenant_permission(user, action).values("pk")
    # Chargeback reaches back to months when a now inactive pool held licenses, so a grant on such a
    # pool still opens its tenant's reports.
    pools = chargeback_pools_for(user) if action == Action.CHARGEBACK else pools_for(user, action)
    pool_tenant_ids = pools.values("tenant_id")
    return Tenant.objects.filter(Q(pk__in=tenant_ids) | Q(pk__in=pool_tenant_ids))


def users_for(user: AbstractBaseUser, action: Action) -> QuerySet[DirectoryUser]:
    """Directory users in pools the user may act on."""
    return DirectoryUser.objects.filter(pool__in=pools_for(user, action).values("pk"), is_deleted=False)


def get_tenant_or_404(user: AbstractBaseUser, action: Action, **lookup) -> Tenant:
    tenant = tenants_for(user, action).filter(**lookup).first()
    if tenant is None:
        raise ObjectNotFound(_("Tenant not found."))
    return tenant


def get_pool_or_404(user: AbstractBaseUser, action: Action, **lookup) -> Pool:
    pool = pools_for(user, action).select_related("tenant", "parent").filter(**lookup).first()
    if pool is None:
        raise ObjectNotFound(_("Pool not found."))
    return pool


def can_on_pool(user: AbstractBaseUser, action: Action, pool: Pool) -> bool:
    """Tell whether ``pool`` is in ``pools_for(user, action)``, in one query.

    Gives the same answer as the queryset, which assignment paths would otherwise build and run for
    every user they license. The query looks for a grant, to the user or to one of their groups, on the
    pool's tenant, on the pool, or on its parent. django-guardian's ObjectPermissionChecker would ask
    separately for the user's and the groups' grants on each of these objects: up to four queries on
    every assignment attempt.
    """
    if not user.is_authenticated or not pool.is_active:
        return False
    if user.is_superuser:
        return True
    if not user.is_active:
        return False
    tenant_type = ContentType.objects.get_for_model(Tenant)
    grants = Q(
        content_type=tenant_type, object_pk=str(pool.tenant_id), permission__content_type=tenant_type,
        permission__codename__in=TENANT_PERMISSIONS[action],
    )
    if POOL_PERMISSIONS[action]:
        pool_type = ContentType.objects.get_for_model(Pool)
        granting_pools = [str(pool.pk), str(pool.parent_id)] if pool.parent_id else [str(pool.pk)]
        grants |= Q(
            content_type=pool_type, object_pk__in=granting_pools, permission__content_type=pool_type,
            permission__codename__in=POOL_PERMISSIONS[action],
        )
    to_user = UserObjectPermission.objects.filter(grants, user=OuterRef("pk"))
    to_groups = GroupObjectPermission.objects.filter(grants, group__user=OuterRef("pk"))
    return get_user_model().objects.filter(Exists(to_user) | Exists(to_groups), pk=user.pk).exists()


def can(user: AbstractBaseUser, action: Action, obj: Tenant | Pool) -> bool:
    if isinstance(obj, Tenant):
        return tenants_for(user, action).filter(pk=obj.pk).exists()
    return pools_for(user, action).filter(pk=obj.pk).exists()


def can_administer_tenant(user: AbstractBaseUser, tenant: Tenant) -> bool:
    return tenants_with_tenant_permission(user, Action.ADMINISTER).filter(pk=tenant.pk).exists()


def chargeback_pools_for(user: AbstractBaseUser) -> QuerySet[Pool]:
    """Pools whose chargeback the user may read, inactive ones included, for reports of any month.

    Besides the active pools of ``pools_for(user, Action.CHARGEBACK)``, these are the inactive pools in
    the same scope: pools of a replaced scheme, and pools merged into a pool the user may read, whose
    grants moved there in the merge. Reports need them because they held licenses in earlier months.
    """
    if not user.is_authenticated:
        return Pool.objects.none()
    tenant_ids = tenants_with_tenant_permission(user, Action.CHARGEBACK).values("pk")
    granted = get_objects_for_user(
        user, _pool_perms(Action.CHARGEBACK), klass=Pool, any_perm=True, accept_global_perms=False
    ).values("pk")
    merged = Q(is_active=False) & (Q(merged_into__in=granted) | Q(merged_into__parent__in=granted))
    return Pool.objects.filter(Q(tenant__in=tenant_ids) | Q(pk__in=granted) | Q(parent__in=granted) | merged)


# Purchase ledger and stock: who bought what, when. Tenant administrators, auditors and finance read a
# whole tenant's ledger and stock; pool managers, license operators and pool-scoped finance read the
# purchases of their pools. Recording and correcting purchases needs Action.ADMINISTER.
LEDGER_TENANT_ACTIONS = (Action.AUDIT, Action.CHARGEBACK)


def ledger_tenants_for(user: AbstractBaseUser) -> QuerySet[Tenant]:
    """Tenants whose whole purchase ledger and stock the user may read, through a tenant-wide grant."""
    if not user.is_authenticated:
        return Tenant.objects.none()
    permissions = sorted({perm for action in LEDGER_TENANT_ACTIONS for perm in _tenant_perms(action)})
    return get_objects_for_user(user, permissions, klass=Tenant, any_perm=True, accept_global_perms=False)


def ledger_pools_for(user: AbstractBaseUser) -> QuerySet[Pool]:
    """Pools whose purchases the user may read: pools the user may view, and pools in the user's chargeback
    scope, inactive ones included, because purchases stay in the ledger after a pool is merged or replaced."""
    if not user.is_authenticated:
        return Pool.objects.none()
    viewable = pools_for(user, Action.VIEW).values("pk")
    chargeback = chargeback_pools_for(user).values("pk")
    return Pool.objects.filter(Q(pk__in=viewable) | Q(pk__in=chargeback))


def get_ledger_tenant_or_404(user: AbstractBaseUser, **lookup) -> Tenant:
    """Return a tenant whose ledger page the user may open; else raise ObjectNotFound.

    Pool-scoped finance opens it for the purchases of their pools. Pool managers and license operators
    read their pools' purchases on the pool pages instead.
    """
    pool_tenant_ids = chargeback_pools_for(user).values("tenant_id")
    tenants = Tenant.objects.filter(Q(pk__in=ledger_tenants_for(user).values("pk")) | Q(pk__in=pool_tenant_ids))
    tenant = tenants.filter(**lookup).first()
    if tenant is None:
        raise ObjectNotFound(_("Tenant not found."))
    return tenant


def get_ledger_pool_or_404(user: AbstractBaseUser, **lookup) -> Pool:
    """Return an active pool whose purchases the user may read; else raise ObjectNotFound."""
    pool = ledger_pools_for(user).filter(is_active=True).select_related("tenant", "parent").filter(**lookup).first()
    if pool is None:
        raise ObjectNotFound(_("Pool not found."))
    return pool
