"""Pool trees and per-tenant summaries of what a portal user may see, for the navigation and overview pages."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count

from graphsync.models import DirectoryUser, Sku, Tenant
from rbac import scoping
from rbac.choices import Action

from . import stock
from .models import Allotment, Pool


@dataclass
class PoolNode:
    """A pool with its visible level-2 pools and, when computed, its members and per-SKU usage."""

    pool: Pool
    children: list[PoolNode] = field(default_factory=list)
    members: int | None = None
    lines: list[stock.PoolSkuLine] = field(default_factory=list)


@dataclass
class TenantScope:
    """A tenant the user may see, the pools visible to them and the pages they may open."""

    tenant: Tenant
    pools: list[PoolNode]
    can_administer: bool
    can_view_chargeback: bool
    can_audit: bool


def _sort_key(node: PoolNode) -> tuple[bool, str]:
    # The Unassigned pool goes last, and the others sort by name regardless of case.
    return node.pool.is_unassigned, node.pool.name.casefold()


def pool_tree(tenant: Tenant, pools, *, with_usage: bool = False) -> list[PoolNode]:
    """Arrange the given pools of one tenant as level-1 pools with their level-2 pools.

    A level-2 pool whose parent is not among ``pools`` becomes a root, so the tree still shows it to a
    manager of that level-2 pool only. With ``with_usage``, each node gets its member count and per-SKU lines,
    level-2 pools included in their parent's numbers, in a fixed number of queries.
    """
    nodes = {pool.pk: PoolNode(pool=pool) for pool in pools}
    roots = []
    for node in nodes.values():
        parent = nodes.get(node.pool.parent_id)
        if parent is None:
            roots.append(node)
        else:
            parent.children.append(node)
    for node in nodes.values():
        node.children.sort(key=_sort_key)
    roots.sort(key=_sort_key)
    if with_usage and nodes:
        _add_usage(tenant, nodes)
    return roots


def _add_usage(tenant: Tenant, nodes: dict[int, PoolNode]) -> None:
    child_ids: dict[int, list[int]] = defaultdict(list)
    for child_pk, parent_pk in Pool.objects.filter(tenant=tenant, parent__isnull=False).values_list("pk", "parent_id"):
        child_ids[parent_pk].append(child_pk)
    members = dict(
        DirectoryUser.objects.filter(tenant=tenant, is_deleted=False, pool__isnull=False)
        .values("pool_id")
        .annotate(users=Count("pk"))
        .values_list("pool_id", "users")
    )
    consumption = stock.consumption_by_pool(tenant)
    allotments: dict[int, dict[int, int]] = defaultdict(dict)
    for pool_pk, sku_pk, seats in Allotment.objects.filter(pool_id__in=list(nodes)).values_list(
        "pool_id", "sku_id", "seats"
    ):
        allotments[pool_pk][sku_pk] = seats
    skus = {sku.pk: sku for sku in Sku.objects.filter(tenant=tenant)}
    tenant_free = stock.free_units_by_sku(tenant)

    for pool_pk, node in nodes.items():
        subtree = [pool_pk, *child_ids.get(pool_pk, [])]
        node.members = sum(members.get(pk, 0) for pk in subtree)
        consumed: dict[int, int] = defaultdict(int)
        for pk in subtree:
            for sku_pk, users in consumption.get(pk, {}).items():
                consumed[sku_pk] += users
        own_allotments = allotments.get(pool_pk, {})
        sku_pks = sorted(set(consumed) | set(own_allotments), key=lambda pk: skus[pk].name.casefold())
        node.lines = [
            stock.PoolSkuLine(
                sku=skus[pk],
                allotment=stock.effective_allotment(own_allotments, pk, is_level2=node.pool.parent_id is not None),
                consumption=consumed.get(pk, 0),
                tenant_free=tenant_free.get(pk, 0),
            )
            for pk in sku_pks
        ]


def tenants_in_scope(user: AbstractBaseUser, *, with_usage: bool = False) -> list[TenantScope]:
    """List every tenant where the user may view pools, chargeback reports or the audit trail."""
    viewable = set(scoping.tenants_for(user, Action.VIEW).values_list("pk", flat=True))
    chargeback = set(scoping.tenants_for(user, Action.CHARGEBACK).values_list("pk", flat=True))
    audit = set(scoping.tenants_for(user, Action.AUDIT).values_list("pk", flat=True))
    administer = set(scoping.tenants_with_tenant_permission(user, Action.ADMINISTER).values_list("pk", flat=True))

    pools_by_tenant: dict[int, list[Pool]] = defaultdict(list)
    for pool in scoping.pools_for(user, Action.VIEW).select_related("parent"):
        pools_by_tenant[pool.tenant_id].append(pool)

    return [
        TenantScope(
            tenant=tenant,
            pools=pool_tree(tenant, pools_by_tenant.get(tenant.pk, []), with_usage=with_usage),
            can_administer=tenant.pk in administer,
            can_view_chargeback=tenant.pk in chargeback,
            can_audit=tenant.pk in audit,
        )
        for tenant in Tenant.objects.filter(pk__in=viewable | chargeback | audit).order_by("name")
    ]
