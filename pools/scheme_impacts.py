"""Consequences of merging two pools or removing a value alias, listed on the confirmation pages.

Both functions only read: nothing changes until the administrator confirms and the view calls
``pools.schemes.merge_pools`` or ``pools.schemes.remove_alias``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from graphsync.models import DirectoryUser, UserLicense
from rbac.models import Grant

from .choices import RequestStatus
from .membership import MembershipPlan, Slot, plan_membership
from .models import Allotment, Pool, PoolAlias, SeatRequest

# Users listed by name on a confirmation page; the counts always cover every user.
USERS_LISTED = 50


def _license_count(user_ids) -> int:
    """Count the distinct (user, SKU) pairs, so a license held directly and through a group counts once."""
    return UserLicense.objects.filter(user_id__in=user_ids).values("user_id", "sku_id").distinct().count()


@dataclass
class PendingRequestFate:
    """A pending seat request of a merged pool and whether it moves or is withdrawn."""

    request: SeatRequest
    withdrawn: bool


@dataclass
class MergeImpact:
    """The users, licenses, allotments, grants and pending requests a merge moves from ``source`` to ``target``."""

    source: Pool
    target: Pool
    users: int
    licenses: int
    listed_users: list[DirectoryUser]
    level2_pools: list[Pool]
    allotments: list[Allotment]
    grants: list[Grant]
    requests: list[PendingRequestFate] = field(default_factory=list)


def merge_impact(source: Pool, target: Pool) -> MergeImpact:
    """Return what ``pools.schemes.merge_pools`` would move from ``source`` and its level-2 pools to ``target``."""
    subtree = source.subtree_ids()
    members = DirectoryUser.objects.filter(pool_id__in=subtree, is_deleted=False)
    level2_pools = list(source.children.filter(is_active=True).order_by("display_name", "pk"))

    # A pending request moves to the pool that takes its pool over. The merge withdraws it instead when
    # that pool has a pending request for the same SKU.
    takers = {source.pk: target}
    for child in level2_pools:
        takers[child.pk] = target.children.filter(key=child.key).first()
    pending = SeatRequest.objects.filter(status=RequestStatus.PENDING)
    requests = []
    for request in pending.filter(pool_id__in=subtree).select_related("pool", "sku").order_by("requested_at", "pk"):
        taker = takers.get(request.pool_id)
        withdrawn = taker is not None and pending.filter(pool=taker, sku_id=request.sku_id).exists()
        requests.append(PendingRequestFate(request=request, withdrawn=withdrawn))

    return MergeImpact(
        source=source,
        target=target,
        users=members.count(),
        licenses=_license_count(members.values("pk")),
        listed_users=list(members.order_by("user_principal_name")[:USERS_LISTED]),
        level2_pools=level2_pools,
        allotments=list(
            Allotment.objects.filter(pool_id__in=subtree)
            .select_related("pool", "sku")
            .order_by("pool__parent_id", "pool__display_name", "sku__display_name")
        ),
        grants=list(
            Grant.objects.filter(pool_id__in=subtree)
            .select_related("user", "group", "pool")
            .order_by("pool__display_name", "role", "pk")
        ),
        requests=requests,
    )


@dataclass
class UserMove:
    """A user who would change pool, and the name of the pool they would go to."""

    user: DirectoryUser
    pool_name: str


@dataclass
class AliasRemovalImpact:
    """The users whom removing the alias would move to another pool, and their licenses."""

    alias: PoolAlias
    users: int
    licenses: int
    listed_moves: list[UserMove]


def _pool_name(plan: MembershipPlan, slot: Slot) -> str:
    """Return the name the pool of ``slot`` shows once the plan is applied, with its parent's for a level-2 pool."""
    pool = plan.existing.get(slot)
    name = (pool.name_override if pool else "") or plan.name_of(slot)
    key1, key2 = slot
    if not key2:
        return name
    return f"{_pool_name(plan, (key1, ''))} / {name}"


class _DiscardPlan(Exception):
    def __init__(self, plan: MembershipPlan) -> None:
        super().__init__("dry run")
        self.plan = plan


def alias_removal_impact(alias: PoolAlias) -> AliasRemovalImpact:
    """Return which users ``pools.schemes.remove_alias`` would move, computed with the same membership plan.

    The alias is deleted inside a transaction that is rolled back, so the plan reads the directory and
    the aliases exactly as the removal would.
    """
    try:
        with transaction.atomic():
            PoolAlias.objects.filter(pk=alias.pk).delete()
            raise _DiscardPlan(plan_membership(alias.tenant))
    except _DiscardPlan as discarded:
        plan = discarded.plan

    destinations: dict[int, str] = {}
    for user_pk, slot in plan.targets.items():
        pool = plan.existing.get(slot)
        if pool is None or plan.current[user_pk] != pool.pk:
            destinations[user_pk] = _pool_name(plan, slot)
    listed = DirectoryUser.objects.filter(pk__in=list(destinations)).order_by("user_principal_name")[:USERS_LISTED]
    return AliasRemovalImpact(
        alias=alias,
        users=len(destinations),
        licenses=_license_count(list(destinations)),
        listed_moves=[UserMove(user=user, pool_name=destinations[user.pk]) for user in listed],
    )
