"""Tenant capacity per SKU and raising allotments within it.

``subscribedSkus`` reports a SKU's units by state: ``enabled`` units are assignable, ``warning`` units are in
their grace period and about to lapse, ``suspended`` and ``lockedOut`` units are not assignable. The commerce
subscriptions of one SKU add up to those units, and a SKU can have a trial subscription next to a paid one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from graphsync.models import Sku, Subscription, Tenant

from . import stock
from .models import Allotment, Pool

BLOCKED_STATUSES = stock.BLOCKED_STATUSES


@dataclass
class SubscriptionLine:
    """A commerce subscription with whether its next lifecycle date (a trial's end, a renewal) has passed."""

    subscription: Subscription
    lifecycle_passed: bool


@dataclass
class SkuCapacity:
    """One SKU of a tenant: its units by state, its subscriptions, holders and level-1 allotments."""

    sku: Sku
    holders: int
    allotted: int
    central: stock.CentralReserve
    subscriptions: list[SubscriptionLine] = field(default_factory=list)

    @property
    def total_units(self) -> int:
        sku = self.sku
        return sku.enabled_units + sku.warning_units + sku.suspended_units + sku.locked_out_units

    @property
    def free_units(self) -> int:
        """Enabled units not held by any user; never negative, because ``overage`` counts the excess."""
        return max(self.sku.enabled_units - self.holders, 0)

    @property
    def in_grace(self) -> int:
        """Holders beyond the enabled units whom units in their grace period still cover.

        Their licenses keep working until those units lapse, but they leave no enabled unit for a new
        assignment.
        """
        return min(max(self.holders - self.sku.enabled_units, 0), self.sku.warning_units)

    @property
    def overage(self) -> int:
        """Holders beyond the enabled and grace-period units, for example after seats expired while
        assignments stayed."""
        return max(self.holders - self.sku.enabled_units - self.sku.warning_units, 0)

    @property
    def reserve(self) -> int:
        """The central reserve (``stock.CentralReserve.seats``)."""
        return self.central.seats

    @property
    def is_blocked(self) -> bool:
        return self.sku.capability_status in BLOCKED_STATUSES

    @property
    def accepts_assignments(self) -> bool:
        return not self.is_blocked and self.free_units > 0

    @property
    def trials(self) -> list[SubscriptionLine]:
        return [line for line in self.subscriptions if line.subscription.is_trial]

    @property
    def has_trial(self) -> bool:
        return bool(self.trials)

    @property
    def trial_units(self) -> int:
        """Licenses of the SKU's enabled trial subscriptions, which ``subscribedSkus`` counts as enabled units."""
        return sum(line.subscription.total_licenses for line in self.trials if line.subscription.status == "Enabled")

    @property
    def lifecycle_passed(self) -> list[SubscriptionLine]:
        """Subscriptions whose next lifecycle date has passed while the last sync still reported them."""
        return [line for line in self.subscriptions if line.lifecycle_passed]

    @property
    def subscription_licenses(self) -> int:
        """Total licenses of the SKU's commerce subscriptions, which normally equals ``total_units``."""
        return sum(line.subscription.total_licenses for line in self.subscriptions)


def tenant_capacity(tenant: Tenant) -> list[SkuCapacity]:
    """Return every SKU of the tenant with its units, holders, level-1 allotments and subscriptions."""
    lines = stock.tenant_stock(tenant)
    now = timezone.now()
    subscriptions: dict[str, list[SubscriptionLine]] = {}
    for subscription in Subscription.objects.filter(tenant=tenant).order_by("created_at_graph", "subscription_id"):
        line = SubscriptionLine(subscription, stock.lifecycle_date_passed(subscription, now))
        subscriptions.setdefault(str(subscription.sku_id), []).append(line)
    return [
        SkuCapacity(
            sku=line.sku,
            holders=line.holders,
            allotted=line.allotted,
            central=line.central,
            subscriptions=subscriptions.get(str(line.sku.sku_id), []),
        )
        for line in lines
    ]


def level1_allotted(tenant: Tenant, sku: Sku) -> int:
    """Sum the allotments of the SKU held by active level-1 pools."""
    return (
        Allotment.objects.filter(pool__tenant=tenant, pool__parent__isnull=True, pool__is_active=True, sku=sku)
        .aggregate(total=Sum("seats"))["total"]
        or 0
    )


def central_reserve(tenant: Tenant, sku: Sku) -> stock.CentralReserve:
    """Compute the SKU's central reserve; ``stock.CentralReserve`` defines it."""
    return stock.central_reserve(tenant, sku)


def describe_reserve(central: stock.CentralReserve) -> str:
    """Spell out how the central reserve is worked out, for messages that reject a raise."""
    names = {
        "enabled": central.enabled, "in_use": central.in_use, "unused": central.unused_allotments,
        "lapsed": central.lapsed_trial_units,
    }
    if central.lapsed_trial_units:
        return _(
            "%(enabled)s enabled units, minus %(in_use)s in use, minus %(unused)s allotted to pools but not used "
            "yet, minus %(lapsed)s of trials past their end date"
        ) % names
    return _(
        "%(enabled)s enabled units, minus %(in_use)s in use, minus %(unused)s allotted to pools but not used yet"
    ) % names


@dataclass
class AllotmentRaise:
    """The allotments that raising a pool's seats of a SKU changes, with the central reserve it draws on.

    ``changes`` maps each changed pool to its (before, after) seats; ``before`` is None where the pool had no
    allotment. ``from_reserve`` is the number of seats the level-1 pool takes out of the central reserve: the
    rise of the larger of its allotment and its holders, so seats its members already use cost nothing.
    """

    pool: Pool
    sku: Sku
    quantity: int
    changes: dict[Pool, tuple[int | None, int]]
    central: stock.CentralReserve
    from_reserve: int

    @property
    def reserve(self) -> int:
        return self.central.seats

    @property
    def fits(self) -> bool:
        return self.from_reserve <= 0 or self.from_reserve <= self.reserve

    def audit_before(self) -> dict:
        return {str(pool.pk): before for pool, (before, _after) in self.changes.items()}

    def audit_after(self) -> dict:
        return {str(pool.pk): after for pool, (_before, after) in self.changes.items()}


def plan_raise(pool: Pool, sku: Sku, quantity: int) -> AllotmentRaise:
    """Work out how raising ``pool``'s seats of ``sku`` by ``quantity`` changes the allotments.

    A level-1 pool rises by ``quantity``. A level-2 pool with its own allotment rises by ``quantity``, and its
    parent rises only as far as needed to keep the children's allotments within the parent's. A level-2 pool
    without an allotment draws on its parent without a cap, so the parent rises by ``quantity`` instead. Call
    under the SKU's row lock; nothing is saved.
    """
    current = {
        allotment.pool_id: allotment.seats
        for allotment in Allotment.objects.filter(sku=sku, pool_id__in=[pool.pk, pool.parent_id or pool.pk])
    }
    changes: dict[Pool, tuple[int | None, int]] = {}

    if pool.parent_id is None:
        level1 = pool
        level1_before = current.get(pool.pk)
        level1_after = (level1_before or 0) + quantity
    else:
        level1 = pool.parent
        level1_before = current.get(level1.pk)
        own = current.get(pool.pk)
        if own is None:
            level1_after = (level1_before or 0) + quantity
        else:
            changes[pool] = (own, own + quantity)
            siblings = (
                Allotment.objects.filter(pool__parent=level1, pool__is_active=True, sku=sku)
                .exclude(pool=pool)
                .aggregate(total=Sum("seats"))["total"]
                or 0
            )
            level1_after = max(level1_before or 0, siblings + own + quantity)

    if level1_after != (level1_before or 0) or level1_before is None:
        changes[level1] = (level1_before, level1_after)

    central = central_reserve(pool.tenant, sku)
    holders = next((item.holders for item in central.pools if item.pool.pk == level1.pk), 0)
    return AllotmentRaise(
        pool=pool,
        sku=sku,
        quantity=quantity,
        changes=changes,
        central=central,
        from_reserve=max(level1_after, holders) - max(level1_before or 0, holders),
    )


def apply_raise(plan: AllotmentRaise, *, acting_user) -> None:
    """Save the allotments of a plan that fits; the caller holds the SKU's row lock and writes the audit event."""
    for changed_pool, (_before, after) in plan.changes.items():
        Allotment.objects.update_or_create(
            pool=changed_pool, sku=plan.sku, defaults={"seats": after, "updated_by": acting_user}
        )
