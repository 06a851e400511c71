"""Movers: users whose changed attribute moved them, with their licenses, to another pool in a sync.

A sync finds them after it recomputes membership and before ``chargeback.history`` splits their license
intervals: an open interval whose pool is no longer the user's pool belongs to a mover who still holds
that SKU. Both membership paths (the PostgreSQL set-based UPDATE and the in-memory plan) leave the same
trace, so movers are found the same way after either.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from chargeback.history import NOT_HOLDING_STATES
from chargeback.models import LicenseInterval
from graphsync.models import DirectoryUser, Sku, Tenant, UserLicense

from .audit import record_event
from .choices import AuditAction
from .models import AuditEvent, Pool

logger = logging.getLogger(__name__)

# A sync that moves more licensed users than this writes one summary event per pair of pools instead
# of one event per user, so that a reorganisation does not flood the audit trail.
MAX_EVENTS_PER_USER = 200
# Users named in one summary event; the event still counts all of them.
MAX_USERS_LISTED = 1000
# How far back a pool page lists the users who moved in or out.
RECENT_MOVES_DAYS = 30


@dataclass
class Move:
    """One licensed user moved by a sync, with the part numbers of the SKUs that moved along."""

    user_pk: int
    user_principal_name: str
    from_pool_pk: int
    to_pool_pk: int
    skus: list[str] = field(default_factory=list)


def find_moves(tenant: Tenant) -> list[Move]:
    """Return the licensed users whose pool differs from the pool of their open license intervals."""
    holding = UserLicense.objects.filter(user_id=OuterRef("user_id"), sku_id=OuterRef("sku_id")).exclude(
        state__in=NOT_HOLDING_STATES
    )
    rows = (
        LicenseInterval.objects.filter(
            tenant=tenant, ended_at__isnull=True, pool__isnull=False, user__is_deleted=False, user__pool__isnull=False
        )
        .exclude(pool_id=F("user__pool_id"))
        .filter(Exists(holding))
        .values_list("user_id", "user__user_principal_name", "pool_id", "user__pool_id", "sku__part_number")
        .order_by("user__user_principal_name", "sku__part_number")
    )
    moves: dict[int, Move] = {}
    for user_pk, name, from_pool, to_pool, part_number in rows:
        move = moves.setdefault(user_pk, Move(user_pk, name, from_pool, to_pool))
        move.skus.append(part_number)
    return list(moves.values())


def record_moves(tenant: Tenant, moves: list[Move]) -> int:
    """Write the audit events of a sync's moves and return how many events were written."""
    if not moves:
        return 0
    pools = Pool.objects.select_related("parent").in_bulk(
        {move.from_pool_pk for move in moves} | {move.to_pool_pk for move in moves}
    )
    if len(moves) <= MAX_EVENTS_PER_USER:
        users = DirectoryUser.objects.in_bulk([move.user_pk for move in moves])
        for move in moves:
            source, target = pools[move.from_pool_pk], pools[move.to_pool_pk]
            record_event(
                acting_user=None, action=AuditAction.USER_MOVED, tenant=tenant, pool=target,
                user=users[move.user_pk], before={"pool": source.pk, "poolName": str(source)},
                after={"pool": target.pk, "poolName": str(target), "skus": move.skus},
                message=_("A sync moved this user from pool %(source)s to %(target)s with their licenses: %(skus)s.")
                % {"source": str(source), "target": str(target), "skus": ", ".join(move.skus)},
            )
        written = len(moves)
    else:
        written = _record_summaries(tenant, moves, pools)
    logger.info("Movers in tenant %s: %s licensed users changed pool, %s audit events", tenant.pk, len(moves), written)
    return written


def _record_summaries(tenant: Tenant, moves: list[Move], pools: dict[int, Pool]) -> int:
    by_pair: dict[tuple[int, int], list[Move]] = defaultdict(list)
    for move in moves:
        by_pair[(move.from_pool_pk, move.to_pool_pk)].append(move)
    for (source_pk, target_pk), pair_moves in by_pair.items():
        source, target = pools[source_pk], pools[target_pk]
        listed = [{"userPrincipalName": move.user_principal_name, "skus": move.skus} for move in pair_moves]
        record_event(
            acting_user=None, action=AuditAction.USER_MOVED, tenant=tenant, pool=target,
            target=ngettext("%(count)s user", "%(count)s users", len(pair_moves)) % {"count": len(pair_moves)},
            before={"pool": source.pk, "poolName": str(source)},
            after={"pool": target.pk, "poolName": str(target), "count": len(pair_moves),
                   "users": listed[:MAX_USERS_LISTED]},
            message=ngettext(
                "A sync moved %(count)s licensed user from pool %(source)s to %(target)s with their licenses.",
                "A sync moved %(count)s licensed users from pool %(source)s to %(target)s with their licenses.",
                len(pair_moves),
            ) % {"count": len(pair_moves), "source": str(source), "target": str(target)},
        )
    return len(by_pair)


def record_sync_moves(tenant: Tenant) -> int:
    """Find and record this sync's movers; call after membership is recomputed and before license history."""
    return record_moves(tenant, find_moves(tenant))


# Pool pages


@dataclass
class RecentMove:
    """A move into or out of a pool, as a pool page lists it."""

    occurred_at: object
    direction: str
    other_pool: str
    users: list[dict]
    count: int


def recent_moves(pool: Pool, days: int = RECENT_MOVES_DAYS) -> list[RecentMove]:
    """Return the moves into and out of the pool (and its level-2 pools) in the last ``days`` days, newest first."""
    ids = pool.subtree_ids()
    since = timezone.now() - timedelta(days=days)
    events = (
        AuditEvent.objects.filter(tenant_id=pool.tenant_id, action=AuditAction.USER_MOVED, occurred_at__gte=since)
        .filter(Q(pool_id__in=ids) | Q(before__pool__in=ids))
        .order_by("-occurred_at", "-pk")
    )
    result = []
    for event in events:
        before, after = event.before or {}, event.after or {}
        moved_in = after.get("pool") in ids
        if "users" in after:
            users, count = after["users"], after.get("count", len(after["users"]))
        else:
            users, count = [{"userPrincipalName": event.target, "skus": after.get("skus", [])}], 1
        result.append(
            RecentMove(
                occurred_at=event.occurred_at,
                direction="in" if moved_in else "out",
                other_pool=before.get("poolName", "") if moved_in else after.get("poolName", ""),
                users=users,
                count=count,
            )
        )
    return result


def moved_in_holders(tenant: Tenant, sku: Sku | None = None) -> dict[tuple[int, int], int]:
    """Count, per level-1 pool and SKU, the users who hold the SKU there because a sync moved them in with it.

    A move leaves an open interval that starts when the user's interval in another pool ended, after the
    move's audit event. A scheme change splits intervals the same way but writes no such event, so its
    users do not count. A user of a level-2 pool counts in its level-1 pool, because a level-2 pool
    without an allotment draws on its parent.
    NOTE: a sync that wrote summary events (more than MAX_EVENTS_PER_USER movers) names no target user,
    so its movers are not counted here.
    """
    earlier = LicenseInterval.objects.filter(
        user_id=OuterRef("user_id"), sku_id=OuterRef("sku_id"), ended_at=OuterRef("started_at")
    ).exclude(pool_id=OuterRef("pool_id"))
    moved = AuditEvent.objects.filter(
        action=AuditAction.USER_MOVED, target_user_id=OuterRef("user_id"), pool_id=OuterRef("pool_id"),
        occurred_at__lte=OuterRef("started_at"),
    )
    intervals = LicenseInterval.objects.filter(
        tenant=tenant, ended_at__isnull=True, user__is_deleted=False, user__pool_id=F("pool_id")
    ).filter(Exists(earlier), Exists(moved))
    if sku is not None:
        intervals = intervals.filter(sku=sku)
    counts: dict[tuple[int, int], int] = defaultdict(int)
    for pool_pk, parent_pk, sku_pk in intervals.values_list("pool_id", "pool__parent_id", "sku_id"):
        counts[(parent_pk or pool_pk, sku_pk)] += 1
    return dict(counts)
