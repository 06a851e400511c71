"""Consumption, allotment and spare per pool and SKU, and tenant stock per SKU."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Count, Sum
from django.utils import timezone

from graphsync.models import Sku, Subscription, Tenant, UserLicense

from .models import Allotment, Pool

# A seat is occupied by a held license or by the portal's reservation while Graph is called. A group
# assignment in state Error (CountViolation and the like) does not occupy one.
SEAT_FREE_STATES = ["Error"]

# Capability statuses in which Microsoft 365 assigns no new seats of a SKU.
BLOCKED_STATUSES = ("Suspended", "LockedOut", "Deleted")


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
    """A pool's use of one SKU; ``allotment`` is None only for a level-2 pool drawing on its parent.

    ``tenant_free`` is the tenant's free units of the SKU (``free_units_by_sku``), None when not computed.
    """

    sku: Sku
    allotment: int | None
    consumption: int
    tenant_free: int | None = None

    @property
    def spare(self) -> int | None:
        """Allotment minus consumption; negative when the pool's holders exceed its allotment."""
        if self.allotment is None:
            return None
        return self.allotment - self.consumption

    @property
    def over_allotment(self) -> bool:
        return self.spare is not None and self.spare < 0

    @property
    def is_blocked(self) -> bool:
        """Whether Microsoft 365 refuses new assignments of the SKU, as the assignment precheck does."""
        return self.sku.capability_status in BLOCKED_STATUSES

    @property
    def usable_spare(self) -> int | None:
        """The spare that assignments can actually use: the smaller of the pool's spare and the tenant's free
        units, and none while the SKU is blocked. A negative spare stays as it is, because it shows drift."""
        spare = self.spare
        if spare is None:
            return None
        if self.is_blocked:
            return min(spare, 0)
        if self.tenant_free is None:
            return spare
        return min(spare, self.tenant_free)

    @property
    def limited_by_tenant(self) -> bool:
        """Whether the tenant's free units, not the allotment, limit the pool's spare."""
        return not self.is_blocked and self.spare is not None and self.usable_spare < self.spare


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
    tenant_free = free_units_by_sku(pool.tenant)
    is_level2 = pool.parent_id is not None
    return [
        PoolSkuLine(
            sku=sku,
            allotment=effective_allotment(allotments, sku.pk, is_level2=is_level2),
            consumption=consumed.get(sku.pk, 0),
            tenant_free=tenant_free.get(sku.pk, 0),
        )
        for sku in skus
    ]


def holders_by_sku(tenant: Tenant) -> dict[int, int]:
    """Map SKU id to the non-deleted users of the tenant who hold or reserve it."""
    return dict(
        UserLicense.objects.filter(tenant=tenant, user__is_deleted=False)
        .exclude(state__in=SEAT_FREE_STATES)
        .values("sku_id")
        .annotate(users=Count("user_id", distinct=True))
        .values_list("sku_id", "users")
    )


def units_in_use(sku: Sku, holders: int) -> int:
    """Return the units of the SKU in use: the mirror's holders, or Graph's ``consumedUnits`` when it counts more.

    Graph may count assignments the mirror does not have yet, and a seat counted there cannot be promised.
    """
    return max(holders, sku.consumed_units)


def free_units_by_sku(tenant: Tenant) -> dict[int, int]:
    """Map SKU id to the enabled units not in use, never below 0."""
    held = holders_by_sku(tenant)
    return {
        sku.pk: max(sku.enabled_units - units_in_use(sku, held.get(sku.pk, 0)), 0)
        for sku in Sku.objects.filter(tenant=tenant)
    }


# Central reserve


@dataclass
class PoolCommitment:
    """The share of a SKU's enabled units that one active level-1 pool, its level-2 pools included, takes."""

    pool: Pool
    allotment: int
    holders: int

    @property
    def committed(self) -> int:
        """The larger of the allotment and the holders: seats in use plus seats promised but not yet used."""
        return max(self.allotment, self.holders)

    @property
    def unused_allotment(self) -> int:
        return max(self.allotment - self.holders, 0)


@dataclass
class CentralReserve:
    """The seats of one SKU that a tenant administrator can still allot without promising seats that do not exist.

    The reserve is the enabled units minus the units of trial subscriptions past their end date. From that, it
    subtracts for each active level-1 pool (the Unassigned pool included) the larger of its allotment and its
    holders, and then the units in use outside those pools. Written in the parts the pages show, that is enabled units minus
    units in use minus seats allotted but not used yet minus lapsed trial units, so it never exceeds the free
    units. It is negative when more is promised than exists, and at most 0 while the SKU is blocked, because
    no seat can then be assigned.

    NOTE: seat-request approvals and purchases must fit this reserve, but ``services.set_allotment`` still
    checks only that level-1 allotments stay within the enabled units, so a direct allotment can make it negative.
    """

    sku: Sku
    in_use: int
    pools: list[PoolCommitment]
    lapsed_trial_units: int = 0

    @property
    def enabled(self) -> int:
        return self.sku.enabled_units

    @property
    def free_units(self) -> int:
        return max(self.enabled - self.in_use, 0)

    @property
    def allotted(self) -> int:
        return sum(commitment.allotment for commitment in self.pools)

    @property
    def unused_allotments(self) -> int:
        """Seats allotted to level-1 pools that their members do not use yet."""
        return sum(commitment.unused_allotment for commitment in self.pools)

    @property
    def in_use_outside_pools(self) -> int:
        """Units in use by users in no active pool, or counted by Graph but missing from the mirror."""
        return max(self.in_use - sum(commitment.holders for commitment in self.pools), 0)

    @property
    def committed(self) -> int:
        return sum(commitment.committed for commitment in self.pools) + self.in_use_outside_pools

    @property
    def is_blocked(self) -> bool:
        return self.sku.capability_status in BLOCKED_STATUSES

    @property
    def seats(self) -> int:
        seats = self.enabled - self.lapsed_trial_units - self.committed
        return min(seats, 0) if self.is_blocked else seats

    @property
    def overcommitted(self) -> int:
        """Seats promised beyond what exists; 0 when the reserve is not negative."""
        return max(-self.seats, 0)


def central_reserves(
    tenant: Tenant, skus: list[Sku] | None = None, *, held: dict[int, int] | None = None
) -> dict[int, CentralReserve]:
    """Compute the central reserve of each given SKU of the tenant (all SKUs by default), keyed by SKU id.

    Pass SKUs loaded under their row lock to see their current units, and ``held`` from ``holders_by_sku``
    when the caller has it already.
    """
    if skus is None:
        skus = list(Sku.objects.filter(tenant=tenant))
    level1 = {pool.pk: pool for pool in Pool.objects.filter(tenant=tenant, parent__isnull=True, is_active=True)}
    root_of = {pk: pk for pk in level1}
    for pk, parent_pk in Pool.objects.filter(tenant=tenant, parent_id__in=list(level1)).values_list("pk", "parent_id"):
        root_of[pk] = parent_pk

    holders: dict[tuple[int, int], int] = defaultdict(int)
    for pool_pk, per_sku in consumption_by_pool(tenant).items():
        root = root_of.get(pool_pk)
        if root is None:
            continue
        for sku_pk, users in per_sku.items():
            holders[root, sku_pk] += users
    allotments = {
        (pool_pk, sku_pk): seats
        for pool_pk, sku_pk, seats in Allotment.objects.filter(pool_id__in=list(level1)).values_list(
            "pool_id", "sku_id", "seats"
        )
    }
    if held is None:
        held = holders_by_sku(tenant)
    lapsed = lapsed_trial_units(tenant)

    reserves = {}
    for sku in skus:
        commitments = [
            PoolCommitment(pool=pool, allotment=allotments.get((pk, sku.pk), 0), holders=holders.get((pk, sku.pk), 0))
            for pk, pool in level1.items()
            if (pk, sku.pk) in allotments or holders.get((pk, sku.pk))
        ]
        commitments.sort(key=lambda commitment: (commitment.pool.is_unassigned, str(commitment.pool).casefold()))
        reserves[sku.pk] = CentralReserve(
            sku=sku,
            in_use=units_in_use(sku, held.get(sku.pk, 0)),
            pools=commitments,
            lapsed_trial_units=min(lapsed.get(str(sku.sku_id), 0), sku.enabled_units),
        )
    return reserves


def central_reserve(tenant: Tenant, sku: Sku) -> CentralReserve:
    """Compute the central reserve of one SKU; see ``CentralReserve``."""
    return central_reserves(tenant, [sku])[sku.pk]


def lifecycle_date_passed(subscription: Subscription, now=None) -> bool:
    """Return whether the subscription's next lifecycle date (a trial's end, a renewal) is in the past."""
    if subscription.next_lifecycle_at is None:
        return False
    return subscription.next_lifecycle_at < (now or timezone.now())


def lapsed_trial_units(tenant: Tenant) -> dict[str, int]:
    """Map SKU GUID (as text) to the licenses of enabled trial subscriptions whose end date has passed.

    The last sync still counted those units as enabled, but the trial is over, so they are not promised.
    """
    lapsed: dict[str, int] = defaultdict(int)
    trials = Subscription.objects.filter(
        tenant=tenant, is_trial=True, status="Enabled", next_lifecycle_at__lt=timezone.now()
    )
    for sku_id, licenses in trials.values_list("sku_id", "total_licenses"):
        lapsed[str(sku_id)] += licenses
    return lapsed


# Tenant stock


@dataclass
class TenantSkuStock:
    """One SKU of a tenant's stock; ``central`` is None where the caller needs only the holders."""

    sku: Sku
    allotted: int
    holders: int
    central: CentralReserve | None = None

    @property
    def reserve(self) -> int:
        """The central reserve (``CentralReserve.seats``)."""
        if self.central is None:
            raise ValueError(f"The stock line of SKU {self.sku.pk} was built without its central reserve.")
        return self.central.seats

    @property
    def available(self) -> int:
        return self.sku.enabled_units - self.holders


def tenant_stock(tenant: Tenant) -> list[TenantSkuStock]:
    skus = list(Sku.objects.filter(tenant=tenant).order_by("part_number"))
    held = holders_by_sku(tenant)
    reserves = central_reserves(tenant, skus, held=held)
    return [
        TenantSkuStock(
            sku=sku, allotted=reserves[sku.pk].allotted, holders=held.get(sku.pk, 0), central=reserves[sku.pk]
        )
        for sku in skus
    ]
