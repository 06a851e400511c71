"""Scheme services: preview and confirmed change of the scheme, value aliases, pool merges and portal values.

Each function takes the acting portal user keyword-only, checks that they administer the tenant, and
writes its audit events in the same transaction as the change. Membership is recomputed at once.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models.functions import Lower
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from chargeback.history import record_license_history
from graphsync.models import DirectoryUser, Sku, Tenant, UserLicense
from rbac import scoping
from rbac.models import Grant
from rbac.services import move_pool_grants

from . import services, stock
from .audit import record_event
from .choices import AuditAction, Outcome, PoolAttribute, RequestStatus
from .exceptions import AllotmentError, PoolsError
from .membership import UNASSIGNED_SLOT, MembershipPlan, Slot, apply_plan, plan_membership
from .models import Alert, Allotment, AuditEvent, Pool, PoolAlias, PoolScheme, PortalValue, SeatRequest
from .normalization import BIDI_CONTROLS, clean_spelling, normalize_value
from .pool_names import code_points
from .slot_names import name_pools

logger = logging.getLogger(__name__)

VALUE_MAX_LENGTH = 300


class SchemeError(PoolsError):
    """A scheme, alias, merge or portal-value change the portal rejects; ``message`` explains why."""


class StalePreview(PoolsError):
    """The directory or the pools changed since the preview; ``preview`` is the current one."""

    def __init__(self, message: str, *, preview: SchemePreview) -> None:
        super().__init__(message)
        self.preview = preview


class PortalValueImportError(PoolsError):
    """A portal-value file with errors; ``errors`` lists (line number, message), and nothing was changed."""

    def __init__(self, message: str, *, errors: list[tuple[int, str]]) -> None:
        super().__init__(message)
        self.errors = errors


def _require_admin(acting_user: AbstractBaseUser, tenant: Tenant) -> None:
    if not scoping.can_administer_tenant(acting_user, tenant):
        raise Http404("No such tenant.")


def _recompute(tenant: Tenant) -> int:
    moved = apply_plan(plan_membership(tenant))
    # A merged pool that is active again, because its alias was removed, is no longer merged into another.
    Pool.objects.filter(tenant=tenant, is_active=True).exclude(merged_into=None).update(merged_into=None)
    record_license_history(tenant)
    return moved


# Scheme preview


@dataclass
class PreviewLine:
    """One SKU of one pool before and after the change; ``allotment`` None means drawing on the parent."""

    sku: Sku
    allotment: int | None
    before: int
    after: int

    @property
    def spare_before(self) -> int | None:
        return None if self.allotment is None else self.allotment - self.before

    @property
    def spare_after(self) -> int | None:
        return None if self.allotment is None else self.allotment - self.after

    @property
    def over_allotment(self) -> bool:
        return self.spare_after is not None and self.spare_after < 0


@dataclass
class PreviewPool:
    """A pool that exists after the change, or an active pool that the change would deactivate."""

    name: str
    level: int
    pool: Pool | None
    members_before: int
    members_after: int
    disappears: bool = False
    lines: list[PreviewLine] = field(default_factory=list)

    @property
    def is_new(self) -> bool:
        return self.pool is None

    @property
    def stranded_allotments(self) -> list[PreviewLine]:
        """Allotments that would stay on a deactivated pool, where no member can use them."""
        return [line for line in self.lines if self.disappears and line.allotment]


@dataclass
class PreviewMove:
    source: str
    target: str
    users: int
    licenses: int


@dataclass
class PreviewDelegate:
    """A pool grant that stops giving access because the change would deactivate its pool."""

    principal: str
    is_group: bool
    role: str
    pool: str
    # Whether the principal keeps another grant in the tenant: a tenant-wide one or one on a resulting pool.
    keeps_other_access: bool


@dataclass
class PreviewStrandedAllotment:
    """An allotment that would stay on a deactivated pool, where no member can use it."""

    pool: Pool
    pool_name: str
    sku: Sku
    seats: int


@dataclass
class SchemePreview:
    """The effect of a scheme change, computed without writing. ``token`` identifies exactly this result."""

    level1_attribute: str
    level2_attribute: str
    pools: list[PreviewPool]
    moves: list[PreviewMove]
    users_moved: int
    licenses_moved: int
    token: str
    delegates: list[PreviewDelegate] = field(default_factory=list)
    pending_requests: list[SeatRequest] = field(default_factory=list)

    @property
    def scheme_label(self) -> str:
        label = PoolAttribute(self.level1_attribute).label
        if self.level2_attribute:
            return f"{label} / {PoolAttribute(self.level2_attribute).label}"
        return str(label)

    @property
    def disappearing(self) -> list[PreviewPool]:
        return [pool for pool in self.pools if pool.disappears]

    @property
    def stranded_allotments(self) -> list[PreviewStrandedAllotment]:
        return [
            PreviewStrandedAllotment(pool=pool.pool, pool_name=pool.name, sku=line.sku, seats=line.allotment)
            for pool in self.disappearing
            for line in pool.stranded_allotments
        ]

    @property
    def stranded_seats(self) -> int:
        return sum(allotment.seats for allotment in self.stranded_allotments)

    @property
    def delegates_without_access(self) -> int:
        """Number of users and groups whose every grant in the tenant would stop giving access."""
        return len({
            (delegate.is_group, delegate.principal) for delegate in self.delegates if not delegate.keeps_other_access
        })

    @property
    def pending_seats(self) -> int:
        return sum(request.quantity for request in self.pending_requests)


def preview_scheme(*, acting_user: AbstractBaseUser, tenant: Tenant, level1_attribute: str, level2_attribute: str = "") -> SchemePreview:
    """Compute which pools a scheme would create and which users and licenses would move; writes nothing."""
    _require_admin(acting_user, tenant)
    _check_attributes(level1_attribute, level2_attribute)
    return _build_preview(tenant, level1_attribute, level2_attribute or "")


def _check_attributes(level1_attribute: str, level2_attribute: str) -> None:
    valid = set(PoolAttribute.values)
    if level1_attribute not in valid:
        raise SchemeError(
            _("%(value)s is not a pool attribute. Choose one of the listed attributes.") % {"value": level1_attribute}
        )
    if level2_attribute and level2_attribute not in valid:
        raise SchemeError(
            _("%(value)s is not a pool attribute. Choose one of the listed attributes, or none for level 2.")
            % {"value": level2_attribute}
        )
    if level2_attribute and level2_attribute == level1_attribute:
        raise SchemeError(_("Level 2 must use a different attribute than level 1, or none."))


def _build_preview(tenant: Tenant, level1_attribute: str, level2_attribute: str) -> SchemePreview:
    plan = plan_membership(tenant, level1_attribute, level2_attribute)
    skus_by_user: dict[int, set[int]] = defaultdict(set)
    for user_pk, sku_pk in (
        UserLicense.objects.filter(tenant=tenant, user__is_deleted=False)
        .exclude(state__in=stock.SEAT_FREE_STATES)
        .values_list("user_id", "sku_id")
        .distinct()
    ):
        skus_by_user[user_pk].add(sku_pk)

    active = {pool.pk: pool for pool in Pool.objects.filter(tenant=tenant, is_active=True).select_related("parent")}
    slot_pools = {slot: plan.existing.get(slot) for slot in plan.slots()}
    resulting_ids = {pool.pk for pool in slot_pools.values() if pool is not None}
    names = _slot_names(plan, slot_pools)

    # Consumption counts the pool's own members and those of its level-2 pools.
    before: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    members_before: dict[int, int] = defaultdict(int)
    after: dict[Slot, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    members_after: dict[Slot, int] = defaultdict(int)
    moves: dict[tuple[str, Slot], list[int]] = defaultdict(lambda: [0, 0])
    for user_pk, slot in plan.targets.items():
        skus = skus_by_user.get(user_pk, ())
        current = active.get(plan.current[user_pk])
        for pool in _with_parent(current):
            members_before[pool.pk] += 1
            for sku_pk in skus:
                before[pool.pk][sku_pk] += 1
        for target in _with_parent_slot(slot):
            members_after[target] += 1
            for sku_pk in skus:
                after[target][sku_pk] += 1
        target_pool = slot_pools[slot]
        if current is None or target_pool is None or target_pool.pk != current.pk:
            source = str(current) if current is not None else _("No pool")
            move = moves[(source, slot)]
            move[0] += 1
            move[1] += len(skus)

    allotments: dict[int, dict[int, int]] = defaultdict(dict)
    for pool_pk, sku_pk, seats in Allotment.objects.filter(pool__tenant=tenant).values_list("pool_id", "sku_id", "seats"):
        allotments[pool_pk][sku_pk] = seats
    skus = {sku.pk: sku for sku in Sku.objects.filter(tenant=tenant)}

    pools = []
    for slot in sorted(slot_pools, key=lambda s: (s == UNASSIGNED_SLOT, names[s].casefold())):
        pool = slot_pools[slot]
        own = allotments.get(pool.pk, {}) if pool else {}
        previous = before.get(pool.pk, {}) if pool else {}
        pools.append(
            PreviewPool(
                name=names[slot], level=2 if slot[1] else 1, pool=pool,
                members_before=members_before.get(pool.pk, 0) if pool else 0, members_after=members_after.get(slot, 0),
                lines=_lines(skus, own, previous, after.get(slot, {}), is_level2=bool(slot[1])),
            )
        )
    for pool in sorted(active.values(), key=lambda p: str(p).casefold()):
        if pool.pk in resulting_ids:
            continue
        pools.append(
            PreviewPool(
                name=str(pool), level=pool.level, pool=pool, members_before=members_before.get(pool.pk, 0),
                members_after=0, disappears=True,
                lines=_lines(skus, allotments.get(pool.pk, {}), before.get(pool.pk, {}), {}, is_level2=pool.level == 2),
            )
        )

    move_rows = [
        PreviewMove(source=source, target=names[slot], users=counts[0], licenses=counts[1])
        for (source, slot), counts in moves.items()
    ]
    move_rows.sort(key=lambda move: (-move.users, move.source.casefold(), move.target.casefold()))
    disappearing_ids = {pool.pool.pk for pool in pools if pool.disappears}
    preview = SchemePreview(
        level1_attribute=level1_attribute, level2_attribute=level2_attribute, pools=pools, moves=move_rows,
        users_moved=sum(move.users for move in move_rows), licenses_moved=sum(move.licenses for move in move_rows),
        token="", delegates=_lost_grants(tenant, disappearing_ids, resulting_ids),
        pending_requests=list(
            SeatRequest.objects.filter(pool_id__in=disappearing_ids, status=RequestStatus.PENDING)
            .select_related("pool", "pool__parent", "sku", "requested_by")
            .order_by("requested_at", "pk")
        ),
    )
    preview.token = _token(preview, plan)
    return preview


def _lost_grants(tenant: Tenant, disappearing_ids: set[int], resulting_ids: set[int]) -> list[PreviewDelegate]:
    """List the grants on pools the change would deactivate, since scoping ignores inactive pools.

    A grant on a resulting level-1 pool also covers its level-2 pools, so it counts as other access.
    """
    grants = list(Grant.objects.filter(tenant=tenant).select_related("user", "group", "pool", "pool__parent"))
    kept = {
        (grant.group_id is not None, grant.group_id or grant.user_id)
        for grant in grants
        if grant.pool_id is None or grant.pool_id in resulting_ids
    }
    delegates = [
        PreviewDelegate(
            principal=grant.group.name if grant.group_id else grant.user.get_username(),
            is_group=grant.group_id is not None, role=grant.get_role_display(), pool=str(grant.pool),
            keeps_other_access=(grant.group_id is not None, grant.group_id or grant.user_id) in kept,
        )
        for grant in grants
        if grant.pool_id in disappearing_ids
    ]
    delegates.sort(key=lambda delegate: (delegate.pool.casefold(), delegate.principal.casefold(), delegate.role))
    return delegates


def _with_parent(pool: Pool | None) -> list[Pool]:
    if pool is None:
        return []
    return [pool, pool.parent] if pool.parent_id else [pool]


def _with_parent_slot(slot: Slot) -> list[Slot]:
    return [slot, (slot[0], "")] if slot[1] else [slot]


def _slot_names(plan: MembershipPlan, slot_pools: dict[Slot, Pool | None]) -> dict[Slot, str]:
    """Name each slot as the pool page will: an administrator's name wins, level-2 pools show their parent."""
    names = name_pools(plan).names
    own: dict[Slot, str] = {}
    for slot, pool in slot_pools.items():
        if pool is not None and pool.name_override:
            own[slot] = pool.name_override
        else:
            own[slot] = names[slot]
    return {slot: f"{own[(slot[0], '')]} / {name}" if slot[1] else name for slot, name in own.items()}


def _lines(skus: dict[int, Sku], allotments: dict, before: dict, after: dict, *, is_level2: bool) -> list[PreviewLine]:
    sku_pks = set(allotments) | {pk for pk, count in before.items() if count} | {pk for pk, count in after.items() if count}
    lines = [
        PreviewLine(
            sku=skus[pk], allotment=stock.effective_allotment(allotments, pk, is_level2=is_level2),
            before=before.get(pk, 0), after=after.get(pk, 0),
        )
        for pk in sku_pks
    ]
    return sorted(lines, key=lambda line: line.sku.part_number)


def _token(preview: SchemePreview, plan: MembershipPlan) -> str:
    """Hash everything the preview shows and every user's target, so any change yields another token."""
    digest = hashlib.sha256()
    summary = {
        "scheme": [preview.level1_attribute, preview.level2_attribute],
        "pools": [
            [pool.name, pool.pool.pk if pool.pool else None, pool.disappears, pool.members_before, pool.members_after,
             [[line.sku.pk, line.allotment, line.before, line.after] for line in pool.lines]]
            for pool in preview.pools
        ],
        "moves": [[move.source, move.target, move.users, move.licenses] for move in preview.moves],
        "delegates": [
            [delegate.principal, delegate.is_group, delegate.role, delegate.pool, delegate.keeps_other_access]
            for delegate in preview.delegates
        ],
        "requests": [[request.pk, request.quantity] for request in preview.pending_requests],
    }
    digest.update(json.dumps(summary, sort_keys=True).encode())
    for user_pk in sorted(plan.targets):
        digest.update(f"{user_pk}:{plan.current[user_pk]}:{plan.targets[user_pk]!r};".encode())
    return digest.hexdigest()


def apply_scheme(
    *, acting_user: AbstractBaseUser, tenant: Tenant, level1_attribute: str, level2_attribute: str = "", token: str
) -> PoolScheme:
    """Apply a previewed scheme; raise StalePreview with the current preview when the result would differ."""
    _require_admin(acting_user, tenant)
    _check_attributes(level1_attribute, level2_attribute)
    with transaction.atomic():
        # Holding the tenant row keeps syncs and other scheme changes out until this one is written.
        Tenant.objects.select_for_update().get(pk=tenant.pk)
        preview = _build_preview(tenant, level1_attribute, level2_attribute or "")
        if preview.token != token:
            logger.info("Scheme change of tenant %s by %s rejected: stale preview", tenant.pk, acting_user)
            raise StalePreview(
                _("The directory or the pools changed since your preview, so nothing was applied. Review the new "
                  "preview below and confirm again."),
                preview=preview,
            )
        scheme = services.set_scheme(
            acting_user=acting_user, tenant=tenant, level1_attribute=level1_attribute, level2_attribute=level2_attribute
        )
    logger.info("Scheme of tenant %s set to %s by %s (%s users moved)", tenant.pk, scheme, acting_user, preview.users_moved)
    return scheme


# Aliases


def _scheme_attribute_for(pool: Pool) -> str:
    """Return the attribute the scheme splits ``pool``'s level on, or raise when the pool is not of the scheme."""
    scheme = PoolScheme.objects.filter(tenant=pool.tenant).first()
    expected = ""
    if scheme is not None:
        expected = scheme.level2_attribute if pool.parent_id else scheme.level1_attribute
    if not pool.is_active or pool.is_unassigned or not expected or pool.attribute != expected:
        raise SchemeError(
            _("%(pool)s is not a pool of the current scheme, so values cannot be merged into it. Choose an active "
              "pool other than Unassigned.") % {"pool": pool}
        )
    return expected


@dataclass
class AliasImpact:
    """The value's own pool that an alias would take over, with its members and their licenses."""

    own_pool: Pool
    users: int
    licenses: int


def alias_impact(pool: Pool, value: str) -> AliasImpact | None:
    """Return what adding ``value`` as an alias of ``pool`` would take from the value's own active pool.

    None when the value has no active pool of its own, or when the alias would be refused anyway.
    """
    try:
        attribute = _scheme_attribute_for(pool)
    except SchemeError:
        return None
    key = normalize_value(value)
    own_pool = Pool.objects.filter(
        tenant=pool.tenant, parent=pool.parent, attribute=attribute, key=key, is_active=True
    ).exclude(pk=pool.pk).first()
    if not key or own_pool is None:
        return None
    members = DirectoryUser.objects.filter(pool_id__in=own_pool.subtree_ids(), is_deleted=False)
    licenses = UserLicense.objects.filter(user__in=members).values("user_id", "sku_id").distinct().count()
    return AliasImpact(own_pool=own_pool, users=members.count(), licenses=licenses)


def add_alias(*, acting_user: AbstractBaseUser, pool: Pool, value: str) -> PoolAlias:
    """Put users whose value normalises like ``value`` into ``pool`` and recompute membership at once."""
    _require_admin(acting_user, pool.tenant)
    hidden = [character for character in value if character in BIDI_CONTROLS or unicodedata.category(character) == "Cc"
              and not character.isspace()]
    if hidden:
        # Directory values lose these characters before they are compared, so such a value would
        # merge a different value than the one shown.
        raise SchemeError(
            _("The value contains the control character %(characters)s. Remove it and enter the value again.")
            % {"characters": code_points("".join(dict.fromkeys(hidden)))}
        )
    spelling = clean_spelling(value)
    key = normalize_value(value)
    if not key:
        raise SchemeError(_("Enter the value to merge into %(pool)s.") % {"pool": pool})
    if len(spelling) > VALUE_MAX_LENGTH:
        raise SchemeError(
            _("The value is %(length)s characters long; at most %(max)s are allowed.")
            % {"length": len(spelling), "max": VALUE_MAX_LENGTH}
        )

    with transaction.atomic():
        Tenant.objects.select_for_update().get(pk=pool.tenant_id)
        attribute = _scheme_attribute_for(pool)
        if key == pool.key:
            raise SchemeError(
                _("%(value)s is already the value of pool %(pool)s.") % {"value": spelling, "pool": pool}
            )
        existing = PoolAlias.objects.filter(
            tenant=pool.tenant, attribute=attribute, parent=pool.parent, alias_key=key
        ).select_related("pool").first()
        if existing is not None:
            if existing.pool_id == pool.pk:
                raise SchemeError(
                    _("%(value)s is already merged into %(pool)s.") % {"value": existing.spelling, "pool": pool}
                )
            raise SchemeError(
                _("%(value)s is already merged into %(other)s. Remove that alias first to merge it into %(pool)s.")
                % {"value": existing.spelling, "other": existing.pool, "pool": pool}
            )
        own_pool = Pool.objects.filter(tenant=pool.tenant, parent=pool.parent, attribute=attribute, key=key).first()
        if own_pool is not None and Allotment.objects.filter(pool_id__in=own_pool.subtree_ids()).exists():
            raise SchemeError(
                _("%(value)s has its own pool %(other)s, which holds allotments. Merge that pool into %(pool)s "
                  "instead, which moves its allotments too.") % {"value": spelling, "other": own_pool, "pool": pool}
            )
        alias = PoolAlias.objects.create(
            tenant=pool.tenant, attribute=attribute, parent=pool.parent, alias_key=key, spelling=spelling, pool=pool,
            created_by=acting_user,
        )
        moved = _recompute(pool.tenant)
        record_event(
            acting_user=acting_user, action=AuditAction.ALIAS_ADDED, tenant=pool.tenant, pool=pool, target=spelling,
            after={"value": spelling, "attribute": attribute, "pool": str(pool), "users_moved": moved},
        )
    logger.info("Alias %r of pool %s (tenant %s) added by %s; %s users moved", key, pool.pk, pool.tenant_id, acting_user, moved)
    return alias


def remove_alias(*, acting_user: AbstractBaseUser, alias: PoolAlias) -> int:
    """Delete an alias so that its value gets its own pool again; return how many users moved."""
    _require_admin(acting_user, alias.tenant)
    with transaction.atomic():
        Tenant.objects.select_for_update().get(pk=alias.tenant_id)
        pool = alias.pool
        before = {"value": alias.spelling, "attribute": alias.attribute, "pool": str(pool)}
        alias.delete()
        moved = _recompute(alias.tenant)
        record_event(
            acting_user=acting_user, action=AuditAction.ALIAS_REMOVED, tenant=alias.tenant, pool=pool,
            target=alias.spelling, before=before, after={"users_moved": moved},
        )
    logger.info("Alias %r of pool %s (tenant %s) removed by %s; %s users moved", alias.alias_key, pool.pk, alias.tenant_id, acting_user, moved)
    return moved


# Merging pools


def merge_pools(*, acting_user: AbstractBaseUser, source: Pool, target: Pool) -> int:
    """Merge ``source`` into ``target``: alias its values, move its allotments, deactivate it; return users moved.

    Level-1 pools merge their level-2 pools' allotments into the target's level-2 pool of the same value.
    Raises SchemeError, or AllotmentError when an allotment cannot move; nothing is written then.
    """
    _require_admin(acting_user, target.tenant)
    if source.tenant_id != target.tenant_id:
        raise Http404("No such pool.")
    try:
        with transaction.atomic():
            Tenant.objects.select_for_update().get(pk=target.tenant_id)
            source = Pool.objects.select_related("parent").get(pk=source.pk)
            target = Pool.objects.select_related("parent").get(pk=target.pk)
            moved = _merge(acting_user, source, target)
    except AllotmentError as exc:
        raise AllotmentError(
            _("Cannot merge %(source)s into %(target)s: %(reason)s") % {"source": source, "target": target, "reason": exc.message}
        ) from exc
    logger.info("Pool %s merged into pool %s (tenant %s) by %s; %s users moved", source.pk, target.pk, target.tenant_id, acting_user, moved)
    return moved


def _merge(acting_user: AbstractBaseUser, source: Pool, target: Pool) -> int:
    if source.pk == target.pk:
        raise SchemeError(_("Choose two different pools to merge."))
    attribute = _scheme_attribute_for(target)
    _scheme_attribute_for(source)
    if source.parent_id != target.parent_id:
        raise SchemeError(
            _("%(source)s and %(target)s are not on the same level of the same parent; only such pools can be merged.")
            % {"source": source, "target": target}
        )

    _move_allotments(acting_user, source, target)
    _hand_over(acting_user, source, target)
    if source.parent_id is None:
        for child in source.children.filter(is_active=True):
            sibling, created = Pool.objects.get_or_create(
                tenant=target.tenant, parent=target, attribute=child.attribute, key=child.key,
                defaults={"display_name": child.display_name},
            )
            _move_allotments(acting_user, child, sibling, capless_target_ok=created)
            _hand_over(acting_user, child, sibling)
            for alias in PoolAlias.objects.filter(parent=source, pool=child):
                _repoint_child_alias(acting_user, alias, target, sibling)

    _alias_value(acting_user, attribute, source, target, source.key, source.display_name)
    for alias in PoolAlias.objects.filter(pool=source):
        before = {"value": alias.spelling, "pool": str(source)}
        alias.pool = target
        alias.save(update_fields=["pool"])
        record_event(
            acting_user=acting_user, action=AuditAction.ALIAS_ADDED, tenant=target.tenant, pool=target,
            target=alias.spelling, before=before, after={"value": alias.spelling, "pool": str(target)},
        )

    Pool.objects.filter(pk=source.pk).update(is_active=False)
    Pool.objects.filter(parent=source).update(is_active=False)
    moved = _recompute(target.tenant)
    record_event(
        acting_user=acting_user, action=AuditAction.POOL_SETTINGS_CHANGED, tenant=target.tenant, pool=source,
        target=str(source), before={"is_active": True},
        after={"is_active": False, "merged_into": str(target), "merged_into_id": target.pk, "users_moved": moved},
    )
    return moved


def _hand_over(acting_user, source: Pool, target: Pool) -> None:
    """Move the grants of a merged pool to the pool that takes it over, and record which pool that is.

    Pools merged into ``source`` earlier point at ``target`` from now on, so that one step leads from any
    merged pool to the active pool that took it over.
    """
    move_pool_grants(acting_user=acting_user, source=source, target=target)
    Pool.objects.filter(merged_into=source).update(merged_into=target)
    Pool.objects.filter(pk=source.pk).update(merged_into=target)

    # A pending request moves to the pool that took the users over, and decided ones stay with the pool
    # they were decided for. A pool has one pending request per SKU, so a request for a SKU the target
    # already has pending is withdrawn, naming the request that stays.
    pending = SeatRequest.objects.select_for_update().filter(status=RequestStatus.PENDING)
    target_pending = {request.sku_id: request for request in pending.filter(pool=target)}
    for request in pending.filter(pool=source):
        kept = target_pending.get(request.sku_id)
        if kept is not None:
            request.status = RequestStatus.WITHDRAWN
            request.decided_by = acting_user
            request.decided_at = timezone.now()
            request.decision_reason = _(
                "Withdrawn when %(source)s was merged into %(target)s, whose own request #%(kept)s for %(sku)s is "
                "still pending."
            ) % {"source": source, "target": target, "kept": kept.pk, "sku": request.sku}
            request.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
            record_event(
                acting_user=acting_user, action=AuditAction.REQUEST_WITHDRAWN, tenant=target.tenant, pool=source,
                target=str(request), message=request.decision_reason,
            )
            continue
        request.pool = target
        request.save(update_fields=["pool"])
        record_event(
            acting_user=acting_user, action=AuditAction.REQUEST_MOVED, tenant=target.tenant, pool=target,
            target=str(request), before={"pool": str(source), "pool_id": source.pk},
            after={"pool": str(target), "pool_id": target.pk},
        )
    # The merged pool is inactive, so nothing evaluates its alerts again; they would stay open forever.
    Alert.objects.filter(pool=source, resolved_at__isnull=True).update(resolved_at=timezone.now())


def _alias_value(acting_user, attribute: str, source: Pool, target: Pool, key: str, spelling: str) -> None:
    PoolAlias.objects.filter(tenant=target.tenant, attribute=attribute, parent=target.parent, alias_key=key).delete()
    PoolAlias.objects.create(
        tenant=target.tenant, attribute=attribute, parent=target.parent, alias_key=key, spelling=spelling, pool=target,
        created_by=acting_user,
    )
    record_event(
        acting_user=acting_user, action=AuditAction.ALIAS_ADDED, tenant=target.tenant, pool=target, target=spelling,
        after={"value": spelling, "attribute": attribute, "pool": str(target), "merged_pool": str(source)},
    )


def _repoint_child_alias(acting_user, alias: PoolAlias, parent: Pool, child: Pool) -> None:
    """Move a level-2 alias of a merged level-1 pool under the target, unless the target has one for that value."""
    before = {"value": alias.spelling, "pool": str(alias.pool)}
    if PoolAlias.objects.filter(parent=parent, attribute=alias.attribute, alias_key=alias.alias_key).exists():
        alias.delete()
        record_event(
            acting_user=acting_user, action=AuditAction.ALIAS_REMOVED, tenant=parent.tenant, pool=child,
            target=alias.spelling, before=before,
        )
        return
    alias.parent = parent
    alias.pool = child
    alias.save(update_fields=["parent", "pool"])
    record_event(
        acting_user=acting_user, action=AuditAction.ALIAS_ADDED, tenant=parent.tenant, pool=child,
        target=alias.spelling, before=before, after={"value": alias.spelling, "pool": str(child)},
    )


def _move_allotments(acting_user, source: Pool, target: Pool, *, capless_target_ok: bool = False) -> None:
    """Add each of the source's allotments to the target's, through ``set_allotment`` and its limits.

    A level-2 target without an allotment draws on its parent without a cap, and giving it the source's
    seats would cap it, so that is refused unless the target was created by this merge.
    """
    for allotment in Allotment.objects.filter(pool=source).select_related("sku").order_by("sku__part_number"):
        current = Allotment.objects.filter(pool=target, sku=allotment.sku).first()
        if current is None and target.parent_id is not None and not capless_target_ok:
            raise SchemeError(
                _("Cannot merge %(source)s into %(target)s: %(source)s has its own allotment of %(seats)s seats of "
                  "%(sku)s, but %(target)s draws on its parent's allotment without one. Give %(target)s an allotment "
                  "of %(sku)s first, or remove the allotment of %(source)s.")
                % {"source": source, "target": target, "seats": allotment.seats, "sku": allotment.sku.name}
            )
        seats = allotment.seats + (current.seats if current else 0)
        # The merge moves the level-2 pools' allotments right after their parent's, in the same transaction.
        services.set_allotment(
            acting_user=acting_user, pool=source, sku=allotment.sku, seats=None, level2_moving=True
        )
        services.set_allotment(acting_user=acting_user, pool=target, sku=allotment.sku, seats=seats)


# Portal-managed values


def set_portal_value(*, acting_user: AbstractBaseUser, user: DirectoryUser, value: str) -> bool:
    """Set (or with a blank ``value`` clear) a user's portal-managed value; return whether it changed."""
    _require_admin(acting_user, user.tenant)
    spelling = clean_spelling(value)
    if len(spelling) > VALUE_MAX_LENGTH:
        raise SchemeError(
            _("The value for %(user)s is %(length)s characters long; at most %(max)s are allowed.")
            % {"user": user.user_principal_name, "length": len(spelling), "max": VALUE_MAX_LENGTH}
        )
    with transaction.atomic():
        Tenant.objects.select_for_update().get(pk=user.tenant_id)
        current = PortalValue.objects.filter(user=user).first()
        before = current.value if current else ""
        if before == spelling:
            return False
        _write_portal_values(acting_user, user.tenant, {user.pk: (user, before, spelling)})
    return True


def _write_portal_values(acting_user, tenant: Tenant, changes: dict[int, tuple[DirectoryUser, str, str]]) -> None:
    """Write portal values and one audit event per changed user, then recompute if the scheme uses them."""
    clear = [user_pk for user_pk, (_user, _before, after) in changes.items() if not after]
    PortalValue.objects.filter(user_id__in=clear).delete()
    existing = {value.user_id: value for value in PortalValue.objects.filter(user_id__in=list(changes))}
    to_update, to_create = [], []
    for user_pk, (_user, _before, after) in changes.items():
        if not after:
            continue
        if user_pk in existing:
            existing[user_pk].value = after
            existing[user_pk].updated_by = acting_user
            to_update.append(existing[user_pk])
        else:
            to_create.append(PortalValue(tenant=tenant, user_id=user_pk, value=after, updated_by=acting_user))
    PortalValue.objects.bulk_update(to_update, ["value", "updated_by", "updated_at"], batch_size=1000)
    PortalValue.objects.bulk_create(to_create, batch_size=1000)

    scheme = PoolScheme.objects.filter(tenant=tenant).first()
    if scheme and PoolAttribute.PORTAL_VALUE in (scheme.level1_attribute, scheme.level2_attribute):
        _recompute(tenant)
    actor = acting_user if acting_user.is_authenticated else None
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                actor=actor, actor_name=acting_user.get_username(), action=AuditAction.PORTAL_VALUE_SET,
                outcome=Outcome.SUCCEEDED, tenant=tenant, target_user=user, target=user.user_principal_name,
                before={"value": before}, after={"value": after},
            )
            for user, before, after in changes.values()
        ],
        batch_size=1000,
    )
    logger.info("Portal values of %s users of tenant %s set by %s", len(changes), tenant.pk, acting_user)


@dataclass
class ImportResult:
    set: int
    cleared: int
    unchanged: int


def import_portal_values(*, acting_user: AbstractBaseUser, tenant: Tenant, data: bytes) -> ImportResult:
    """Set portal values from a CSV file with the columns ``userPrincipalName,value``.

    The file is UTF-8, with or without a byte order mark. A blank value clears the user's value. A file
    with any error changes nothing and raises PortalValueImportError listing every error by line number.
    """
    _require_admin(acting_user, tenant)
    rows = _parse_portal_values(tenant, data)
    with transaction.atomic():
        Tenant.objects.select_for_update().get(pk=tenant.pk)
        current = dict(PortalValue.objects.filter(tenant=tenant).values_list("user_id", "value"))
        changes = {}
        result = ImportResult(set=0, cleared=0, unchanged=0)
        for user, spelling in rows:
            before = current.get(user.pk, "")
            if before == spelling:
                result.unchanged += 1
                continue
            changes[user.pk] = (user, before, spelling)
            if spelling:
                result.set += 1
            else:
                result.cleared += 1
        if changes:
            _write_portal_values(acting_user, tenant, changes)
    return result


def _parse_portal_values(tenant: Tenant, data: bytes) -> list[tuple[DirectoryUser, str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PortalValueImportError(
            _("The file is not UTF-8 text: line %(line)s contains an invalid byte. Save it as CSV UTF-8 and upload "
              "it again.") % {"line": data.count(b"\n", 0, exc.start) + 1},
            errors=[],
        ) from None

    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or [column.strip() for column in header] != ["userPrincipalName", "value"]:
        found = ",".join(header) if header else _("an empty file")
        raise PortalValueImportError(
            _("The first line must be the header userPrincipalName,value; found %(found)s.") % {"found": found},
            errors=[(1, _("Expected the header userPrincipalName,value."))],
        )

    entries: list[tuple[int, str, str]] = []
    errors: list[tuple[int, str]] = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 2:
            errors.append((line, _("Expected 2 columns (userPrincipalName,value), found %(count)s.") % {"count": len(row)}))
            continue
        upn, value = row[0].strip(), clean_spelling(row[1])
        if not upn:
            errors.append((line, _("The userPrincipalName is blank.")))
            continue
        if len(value) > VALUE_MAX_LENGTH:
            errors.append(
                (line, _("The value for %(upn)s is %(length)s characters long; at most %(max)s are allowed.")
                 % {"upn": upn, "length": len(value), "max": VALUE_MAX_LENGTH})
            )
            continue
        entries.append((line, upn, value))

    users = {
        upn: user
        for upn, user in (
            (user.user_principal_name.lower(), user)
            for user in DirectoryUser.objects.filter(tenant=tenant, is_deleted=False)
            .annotate(upn_lower=Lower("user_principal_name"))
            .filter(upn_lower__in={upn.lower() for _line, upn, _value in entries})
        )
    }
    first_line: dict[str, int] = {}
    rows = []
    for line, upn, value in entries:
        lowered = upn.lower()
        if lowered in first_line:
            errors.append(
                (line, _("%(upn)s appears again; it is already on line %(first)s. Keep one line per user.")
                 % {"upn": upn, "first": first_line[lowered]})
            )
            continue
        first_line[lowered] = line
        user = users.get(lowered)
        if user is None:
            errors.append((line, _("No user %(upn)s in this tenant. Check the spelling, or run a sync if the user is new.") % {"upn": upn}))
            continue
        rows.append((user, value))

    if errors:
        errors.sort()
        message = ngettext(
            "The file has %(count)s error, so no value was changed. Fix it and upload the file again.",
            "The file has %(count)s errors, so no value was changed. Fix them and upload the file again.",
            len(errors),
        )
        raise PortalValueImportError(message % {"count": len(errors)}, errors=errors)
    return rows
