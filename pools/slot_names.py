"""Display names of the pools a membership plan creates or keeps, distinct from the other names of their level.

``pools.pool_names`` keeps two pools of one level from sharing a name when an administrator renames a
pool. A pool named after its attribute value must keep that rule too, so a pool whose spelling another
pool already has gets a numbered name, and an audit event records it so that administrators can rename
one of the two.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

from django.utils.translation import gettext as _

from .audit import record_event
from .choices import AuditAction
from .membership import UNASSIGNED_SLOT, MembershipPlan, Slot
from .models import Pool
from .pool_names import distinct_name, name_key

logger = logging.getLogger(__name__)


@dataclass
class PoolNaming:
    """The ``display_name`` of each pool of a plan, and the pool that has the spelling of each numbered one."""

    names: dict[Slot, str]
    # The holder is a pool, or the slot of a pool that the plan creates.
    taken_by: dict[Slot, Pool | Slot]


def name_pools(plan: MembershipPlan) -> PoolNaming:
    """Name the plan's pools by their most common spelling, unless another pool of the level has that name.

    The names taken, compared by ``name_key``, are first the administrators' names of all pools of the
    level, active or not. The plan's other pools then take their names in this order: the Unassigned
    pool, pools that keep the name they show, other existing pools by ID, and new pools. A pool whose
    spelling is taken gets the first free suffix, as in "Sales (2)". A pool with an administrator's name
    stores its plain spelling, which it shows again only through a rename that ``pools.pool_names`` checks.
    """
    slots = plan.slots()
    naming = PoolNaming(names={}, taken_by={})
    # Names taken at each level: None for level 1, and a level-1 key for the level-2 pools under that pool.
    taken: dict[str | None, dict[str, Pool | Slot]] = defaultdict(dict)

    plan_pools = {slot: plan.existing[slot] for slot in slots if slot in plan.existing}
    parent_keys = {pool.pk: slot[0] for slot, pool in plan_pools.items() if not slot[1]}
    others = (
        Pool.objects.filter(tenant=plan.tenant).exclude(name_override="")
        .exclude(pk__in=[pool.pk for pool in plan_pools.values()]).select_related("parent").order_by("pk")
    )
    for pool in others:
        if pool.parent_id is None or pool.parent_id in parent_keys:
            taken[parent_keys.get(pool.parent_id)].setdefault(name_key(pool.name_override), pool)

    unnamed = []
    for slot in slots:
        pool = plan_pools.get(slot)
        if pool is not None and pool.name_override:
            taken[_level_of(slot)].setdefault(name_key(pool.name_override), pool)
            naming.names[slot] = plan.name_of(slot)
        else:
            unnamed.append(slot)

    for slot in sorted(unnamed, key=lambda slot: _naming_order(plan, slot)):
        spelling = plan.name_of(slot)
        level_names = taken[_level_of(slot)]
        # The Unassigned pool always keeps its name, because renames to it are rejected while it is active.
        name = spelling if slot == UNASSIGNED_SLOT else distinct_name(spelling, level_names)
        if name != spelling:
            naming.taken_by[slot] = level_names[name_key(spelling)]
        level_names.setdefault(name_key(name), plan_pools.get(slot) or slot)
        naming.names[slot] = name
    return naming


def _level_of(slot: Slot) -> str | None:
    return slot[0] if slot[1] else None


def _naming_order(plan: MembershipPlan, slot: Slot) -> tuple[int, int, Slot]:
    pool = plan.existing.get(slot)
    if slot == UNASSIGNED_SLOT:
        return (0, 0, slot)
    if pool is None:
        return (3, 0, slot)
    return (1 if pool.display_name == plan.name_of(slot) else 2, pool.pk, slot)


def record_taken_names(plan: MembershipPlan, naming: PoolNaming, previous: dict[Slot, str]) -> None:
    """Record an audit event for each pool that got a suffixed name, so that an administrator can rename it."""
    for slot, holder in naming.taken_by.items():
        pool = plan.existing[slot]
        if previous.get(slot) == pool.display_name:
            continue
        if not isinstance(holder, Pool):
            holder = plan.existing[holder]
        spelling = plan.name_of(slot)
        record_event(
            acting_user=None, action=AuditAction.POOL_RENAMED, tenant=plan.tenant, pool=pool, target=pool.display_name,
            before={"name": previous[slot]} if slot in previous else None,
            after={
                "name": pool.display_name, "value": spelling, "name_taken_by": str(holder), "name_taken_by_id": holder.pk,
            },
            message=_(
                "This pool is named “%(name)s” instead of its attribute value “%(value)s”, because pool %(other)s "
                "(ID %(id)s) already has that name. Rename one of the two pools so that people can tell them apart."
            ) % {"name": pool.display_name, "value": spelling, "other": holder, "id": holder.pk},
        )
        logger.warning(
            "Pool %s of tenant %s named %r because pool %s already has the name %r",
            pool.pk, plan.tenant.pk, pool.display_name, holder.pk, spelling,
        )
