"""Inactive pools for tenant administrators: a read-only view and the release of their allotments.

A scheme change or a merge deactivates pools. Scoping shows only active pools, so the grants and pending
seat requests of an inactive pool lead nowhere. Its allotments stay on it: the central reserve leaves them
out while the pool is inactive, and they claim their seats again when a scheme change reactivates the pool.
Tenant administrators can still open such a pool and release its allotments, which removes them, so their
seats stay in the reserve for good. Switching back to a scheme that reactivates the pool restores its
grants, and also the allotments that were not released.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils.translation import gettext as _

from graphsync.models import Sku, Tenant
from rbac import scoping
from rbac.choices import Action
from rbac.models import Grant

from . import services
from .exceptions import PoolsError
from .models import Allotment, Pool, SeatRequest

logger = logging.getLogger(__name__)


class InactivePoolError(PoolsError):
    """A change to an inactive pool that the portal rejects; ``message`` explains why."""


@dataclass
class ReleasedAllotment:
    pool: Pool
    sku: Sku
    seats: int


def get_inactive_pool_or_404(user: AbstractBaseUser, pool_pk: int) -> Pool:
    """Return the inactive pool ``pool_pk`` of a tenant the user administers, or raise Http404."""
    tenants = scoping.tenants_with_tenant_permission(user, Action.ADMINISTER).values("pk")
    pool = (
        Pool.objects.filter(pk=pool_pk, is_active=False, tenant__in=tenants)
        .select_related("tenant", "parent", "merged_into", "merged_into__parent")
        .first()
    )
    if pool is None:
        raise scoping.ObjectNotFound(_("Pool not found."))
    return pool


def pool_with_inactive_children(pool: Pool) -> list[Pool]:
    """Return the pool's inactive level-2 pools, then the pool, in the order their allotments are released.

    A level-1 allotment cannot be removed while its level-2 pools hold allotments of the SKU, so those go first.
    """
    children = list(pool.children.filter(is_active=False).select_related("parent").order_by("display_name", "pk"))
    return [*children, pool]


def allotments_of(pools: list[Pool]) -> QuerySet[Allotment]:
    return (
        Allotment.objects.filter(pool__in=pools)
        .select_related("pool", "pool__parent", "sku")
        .order_by("pool__parent_id", "pool__display_name", "pool_id", "sku__display_name", "sku__part_number")
    )


def grants_of(pools: list[Pool]) -> QuerySet[Grant]:
    return Grant.objects.filter(pool__in=pools).select_related("user", "group", "pool", "pool__parent").order_by("pk")


def requests_of(pools: list[Pool]) -> QuerySet[SeatRequest]:
    return (
        SeatRequest.objects.filter(pool__in=pools)
        .select_related("pool", "pool__parent", "sku", "requested_by", "decided_by")
        .order_by("-requested_at", "-pk")
    )


def stranded_pools(tenant: Tenant) -> QuerySet[Pool]:
    """Inactive pools of the tenant that still hold allotments, for the tenant page to link to."""
    return (
        Pool.objects.filter(tenant=tenant, is_active=False)
        .filter(allotments__isnull=False)
        .distinct()
        .select_related("parent")
        .order_by("parent_id", "display_name", "pk")
    )


def release_allotments(*, acting_user: AbstractBaseUser, pool: Pool) -> list[ReleasedAllotment]:
    """Remove every allotment of an inactive pool and of its inactive level-2 pools, in one transaction.

    A level-1 pool's seats go back to the tenant's reserve, and a level-2 pool's to its parent's allotment.
    Each removal writes an ``allotment.changed`` audit event through ``services.set_allotment``. Raises
    Http404 outside the user's tenants, and InactivePoolError when the pool is active again.
    """
    if not scoping.can_administer_tenant(acting_user, pool.tenant):
        raise Http404("No such pool.")
    released: list[ReleasedAllotment] = []
    with transaction.atomic():
        # Holding the tenant row keeps a scheme change from reactivating the pool halfway.
        Tenant.objects.select_for_update().get(pk=pool.tenant_id)
        pool.refresh_from_db(fields=["is_active"])
        if pool.is_active:
            raise InactivePoolError(
                _("%(pool)s is active again, so its allotments are in use. Change them in the Allotments section of "
                  "its page.") % {"pool": pool}
            )
        for each in pool_with_inactive_children(pool):
            for allotment in allotments_of([each]):
                services.set_allotment(acting_user=acting_user, pool=each, sku=allotment.sku, seats=None)
                released.append(ReleasedAllotment(pool=each, sku=allotment.sku, seats=allotment.seats))
    logger.info(
        "Released %s allotments (%s seats) of inactive pool %s (tenant %s) by %s",
        len(released), sum(item.seats for item in released), pool.pk, pool.tenant_id, acting_user,
    )
    return released
