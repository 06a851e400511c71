"""Consumption, allotment and spare per pool and SKU, and tenant stock per SKU."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Count, Sum

from graphsync.models import Sku, Tenant, UserLicense

from .models import Allotment, Pool

# A seat is occupied by a held license or by the portal's reservation while Graph is called. A group
# assignment in state Error (CountViolation and the like) does not occupy one.
SEAT_FREE_STATES = ["Error"]


def holders(tenant: Tenant, sku: Sku, pool_ids: list[int] | None = None) -> int:
    """Count non-deleted users holding or reserving the SKU, optionally only in the given pools."""
    licenses = UserLicense.objects.filter(tenant=tenant, sku=sku, user__is_deleted=False).exclude(
        state__in=SEAT_FREE_STATES
    )
    if pool_ids is not None:
        licenses = licenses.filter(user__pool_id__in=pool_ids)
    return licenses.values("user_id").distinct().count()


def consumption_by_pool(tenant: Tenant) -> dict[int, dict[int, int]]:
    """Map pool id to {SKU id: users holding it}, counting only each pool's own members."""
    rows = (
        UserLicense.objects.filter(tenant=tenant, user__is_deleted=False)
        .exclude(state__in=SEAT_FREE_STATES)
        .values("user__pool_id", "sku_id")
        .annotate(users=Count("user_id", distinct=True))
    )
    result: dict[int, dict[int, int]] = defaultdict(dict)
    for row in rows:
        result[row["user__pool_id"]][row["sku_id"]] = row["users"]
    return result


def effective_allotment(allotments: dict[int, int], sku_pk: int, *, is_level2: bool) -> int | None:
    """Return a pool's allotment of a SKU: 0 for a level-1 pool without one, None for a level-2 pool
    without one (it draws on its parent's allotment)."""
    if sku_pk in allotments:
        return allotments[sku_pk]
    return None if is_level2 else 0


@dataclass
class PoolSkuLine:
    """A pool's use of one SKU; ``allotment`` is None only for a level-2 pool drawing on its parent."""

    sku: Sku
    allotment: int | None
    consumption: int

    @property
    def spare(self) -> int | None:
        if self.allotment is None:
            return None
        return self.allotment - self.consumption

    @property
    def over_allotment(self) -> bool:
        return self.spare is not None and self.spare < 0


def pool_lines(pool: Pool) -> list[PoolSkuLine]:
    """Return one line per SKU the pool has an allotment for or consumes, its level-2 pools included."""
    subtree = pool.subtree_ids()
    own = consumption_by_pool(pool.tenant)
    consumed: dict[int, int] = defaultdict(int)
    for pool_id in subtree:
        for sku_id, users in own.get(pool_id, {}).items():
            consumed[sku_id] += users
    allotments = {a.sku_id: a.seats for a in Allotment.objects.filter(pool=pool)}
    sku_ids = set(consumed) | set(allotments)
    skus = Sku.objects.filter(pk__in=sku_ids).order_by("part_number")
    is_level2 = pool.parent_id is not None
    return [
        PoolSkuLine(
            sku=sku,
            allotment=effective_allotment(allotments, sku.pk, is_level2=is_level2),
            consumption=consumed.get(sku.pk, 0),
        )
        for sku in skus
    ]


@dataclass
class TenantSkuStock:
    sku: Sku
    allotted: int
    holders: int

    @property
    def reserve(self) -> int:
        """Enabled units not allotted to any level-1 pool."""
        return self.sku.enabled_units - self.allotted

    @property
    def available(self) -> int:
        return self.sku.enabled_units - self.holders


def tenant_stock(tenant: Tenant) -> list[TenantSkuStock]:
    allotted = dict(
        Allotment.objects.filter(pool__tenant=tenant, pool__parent__isnull=True, pool__is_active=True)
        .values("sku_id")
        .annotate(total=Sum("seats"))
        .values_list("sku_id", "total")
    )
    held = dict(
        UserLicense.objects.filter(tenant=tenant, user__is_deleted=False)
        .exclude(state__in=SEAT_FREE_STATES)
        .values("sku_id")
        .annotate(users=Count("user_id", distinct=True))
        .values_list("sku_id", "users")
    )
    return [
        TenantSkuStock(sku=sku, allotted=allotted.get(sku.pk, 0) or 0, holders=held.get(sku.pk, 0))
        for sku in Sku.objects.filter(tenant=tenant).order_by("part_number")
    ]
