"""Drift: license assignments made outside the portal, and the tenant administrator's answer to them.

A direct assignment made in the Microsoft 365 admin center or with PowerShell, and every assignment
inherited from a group, reaches the mirror through a sync with origin "external" and the time the sync
first saw it. The licenses a tenant held when its first sync ran are the starting point, not drift: only
rows first seen after that sync finished are listed. A tenant administrator adopts drift (the pool's
allotment rises to cover it) or refers it to the pool's managers (who are e-mailed the list). Referred
drift stays on the pool page, awaiting the managers, until the license is revoked or adopted.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from graphsync.choices import DriftResolution, LicenseOrigin, LicenseState, SyncStatus
from graphsync.models import DirectoryGroup, Sku, SyncRun, Tenant, UserLicense
from rbac import scoping

from . import stock
from .audit import record_event
from .choices import AuditAction
from .exceptions import AllotmentError, PoolsError
from .models import Allotment, AuditEvent, Pool

logger = logging.getLogger(__name__)


class DriftError(PoolsError):
    """Drift that cannot be adopted or referred as requested."""


def baseline_time(tenant: Tenant) -> datetime | None:
    """Return when the tenant's first successful sync finished, or None if it has not synced yet."""
    return (
        SyncRun.objects.filter(tenant=tenant, status=SyncStatus.SUCCEEDED, finished_at__isnull=False)
        .order_by("finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )


def unresolved_drift(
    tenant: Tenant, pool_ids: list[int] | None = None, *, include_referred: bool = False
) -> QuerySet[UserLicense]:
    """Seat-occupying external assignments of non-deleted users, first seen after the first sync, not yet resolved.

    Referred assignments wait for the pool managers, not for an administrator, so they are left out
    unless ``include_referred``. A group assignment in state Error occupies no seat; it is a licensing
    error, not drift.
    """
    resolutions = ["", DriftResolution.REFERRED] if include_referred else [""]
    baseline = baseline_time(tenant)
    if baseline is None:
        return UserLicense.objects.none()
    rows = UserLicense.objects.filter(
        tenant=tenant,
        origin=LicenseOrigin.EXTERNAL,
        drift_resolution__in=resolutions,
        first_seen_at__gt=baseline,
        user__is_deleted=False,
    ).exclude(state__in=[*stock.SEAT_FREE_STATES, LicenseState.PENDING, LicenseState.ASSIGNMENT_UNCONFIRMED])
    if pool_ids is not None:
        rows = rows.filter(user__pool_id__in=pool_ids)
    return rows


@dataclass
class DriftAssignment:
    """One assignment made outside the portal, with the group that grants it when there is one."""

    license: UserLicense
    group_name: str = ""

    @property
    def user(self):
        return self.license.user

    @property
    def first_seen_at(self):
        return self.license.first_seen_at

    @property
    def is_referred(self) -> bool:
        return self.license.drift_resolution == DriftResolution.REFERRED


@dataclass
class Referral:
    """The latest referral of a pool's drift in one SKU: its time, the referring administrator and the managers."""

    referred_at: datetime
    referred_by: str
    managers: list[str]


@dataclass
class DriftLine:
    """A pool's drift in one SKU: its allotment and consumption, and the external seats among them."""

    sku: Sku
    allotment: int | None
    consumption: int
    external_seats: int
    assignments: list[DriftAssignment] = field(default_factory=list)
    referral: Referral | None = None

    @property
    def unreferred(self) -> list[DriftAssignment]:
        return [item for item in self.assignments if not item.is_referred]

    @property
    def referred(self) -> list[DriftAssignment]:
        return [item for item in self.assignments if item.is_referred]

    @property
    def spare(self) -> int | None:
        return None if self.allotment is None else self.allotment - self.consumption

    @property
    def first_seen_at(self):
        return min(item.first_seen_at for item in self.assignments)


def group_names(tenant: Tenant, group_ids) -> dict[str, str]:
    """Map group ids (lower-case text) to display names; a group missing from the mirror keeps its id."""
    ids = {group_id for group_id in group_ids if group_id}
    names = {
        str(group_id): name
        for group_id, name in DirectoryGroup.objects.filter(tenant=tenant, group_id__in=ids).values_list(
            "group_id", "display_name"
        )
    }
    return {group_id: names.get(group_id) or group_id for group_id in ids}


def pool_drift(pool: Pool, sku: Sku | None = None, *, include_referred: bool = True) -> list[DriftLine]:
    """List the pool's unresolved drift per SKU, its level-2 pools included, ordered by SKU part number.

    Referred assignments are listed, with the latest referral, unless ``include_referred`` is false.
    """
    subtree = pool.subtree_ids()
    rows = unresolved_drift(pool.tenant, subtree, include_referred=include_referred).select_related("user", "sku").order_by(
        "sku__part_number", "first_seen_at", "user__user_principal_name"
    )
    if sku is not None:
        rows = rows.filter(sku=sku)
    rows = list(rows)
    if not rows:
        return []

    names = group_names(pool.tenant, [row.assigned_by_group for row in rows])
    by_sku: dict[int, list[UserLicense]] = defaultdict(list)
    for row in rows:
        by_sku[row.sku_id].append(row)
    lines_by_sku = {line.sku.pk: line for line in stock.pool_lines(pool)}
    drift_user_ids = _users_seated_only_by_drift(pool, {row.pk for row in rows}, list(by_sku))

    result = []
    for sku_pk, sku_rows in by_sku.items():
        line = lines_by_sku.get(sku_pk)
        result.append(
            DriftLine(
                sku=sku_rows[0].sku,
                allotment=line.allotment if line else 0,
                consumption=line.consumption if line else 0,
                external_seats=len(drift_user_ids.get(sku_pk, set())),
                assignments=[DriftAssignment(row, names.get(row.assigned_by_group, "")) for row in sku_rows],
            )
        )
    for line in result:
        if line.referred:
            line.referral = _latest_referral(pool, line.sku)
    return result


def _latest_referral(pool: Pool, sku: Sku) -> Referral | None:
    """Return the latest referral of ``sku`` drift in the pool or one of its level-2 pools, from the audit trail."""
    event = (
        AuditEvent.objects.filter(
            tenant_id=pool.tenant_id, action=AuditAction.DRIFT_REFERRED, sku=sku, pool_id__in=pool.subtree_ids()
        )
        .order_by("-occurred_at", "-pk")
        .first()
    )
    if event is None:
        return None
    after = event.after or {}
    return Referral(
        referred_at=event.occurred_at,
        referred_by=event.actor_name,
        managers=after.get("managers") or after.get("recipients") or [],
    )


def _users_seated_only_by_drift(pool: Pool, drift_pks: set[int], sku_pks: list[int]) -> dict[int, set[int]]:
    """Map SKU id to the users whose every seat-occupying row of that SKU is unresolved drift.

    A user who holds the SKU through the portal as well as through a group occupies one seat, and that
    seat is the portal's, so the user is not counted as an external seat.
    """
    rows = (
        UserLicense.objects.filter(
            tenant=pool.tenant, sku_id__in=sku_pks, user__pool_id__in=pool.subtree_ids(), user__is_deleted=False
        )
        .exclude(state__in=stock.SEAT_FREE_STATES)
        .values_list("pk", "sku_id", "user_id")
    )
    drift_only: dict[tuple[int, int], bool] = {}
    for pk, sku_pk, user_pk in rows:
        key = (sku_pk, user_pk)
        drift_only[key] = drift_only.get(key, True) and pk in drift_pks
    result: dict[int, set[int]] = defaultdict(set)
    for (sku_pk, user_pk), only in drift_only.items():
        if only:
            result[sku_pk].add(user_pk)
    return result


def _assignment_summary(line: DriftLine) -> list[dict]:
    return [
        {
            "user": item.user.user_principal_name,
            "source": item.license.assigned_by_group or "direct",
            "group": item.group_name,
            "first_seen_at": item.first_seen_at.isoformat() if item.first_seen_at else None,
        }
        for item in line.assignments
    ]


def _require_administrator(acting_user: AbstractBaseUser, pool: Pool, sku: Sku) -> None:
    if not scoping.can_administer_tenant(acting_user, pool.tenant) or sku.tenant_id != pool.tenant_id:
        raise Http404("No such pool.")


def _drift_line_or_error(pool: Pool, sku: Sku, *, include_referred: bool) -> DriftLine:
    lines = pool_drift(pool, sku, include_referred=include_referred)
    if lines:
        return lines[0]
    if not include_referred and pool_drift(pool, sku):
        raise DriftError(
            _("Every assignment of %(sku)s made outside the portal in pool %(pool)s has been referred to the pool "
              "managers already. Wait for them to revoke the licenses, or adopt the assignments.")
            % {"pool": str(pool), "sku": sku.name}
        )
    raise DriftError(
        _("Pool %(pool)s has no unresolved assignment of %(sku)s made outside the portal.")
        % {"pool": str(pool), "sku": sku.name}
    )


def _mark_resolved(line: DriftLine, resolution: DriftResolution, acting_user: AbstractBaseUser) -> int:
    """Record ``resolution`` on the line's assignments; adopting also settles assignments referred earlier."""
    pending = ["", DriftResolution.REFERRED] if resolution == DriftResolution.ADOPTED else [""]
    return UserLicense.objects.filter(
        pk__in=[item.license.pk for item in line.assignments], drift_resolution__in=pending
    ).update(drift_resolution=resolution, drift_resolved_at=timezone.now(), drift_resolved_by=acting_user)


def _allotment_pool(pool: Pool, sku: Sku) -> Pool:
    """Return the pool whose allotment covers ``pool``'s use of ``sku``: its own, or its parent's."""
    if pool.parent_id and not Allotment.objects.filter(pool=pool, sku=sku).exists():
        return pool.parent
    return pool


def adopt_drift(*, acting_user: AbstractBaseUser, pool: Pool, sku: Sku) -> DriftLine:
    """Raise the pool's allotment of ``sku`` so its spare is no longer negative, and mark the drift adopted.

    The new allotment is the pool's consumption; an allotment that already covers it stays as it is.
    A level-2 pool without an allotment of its own draws on its parent's, so the parent's rises. Raises
    DriftError, with the allotment rule's reason, when the tenant's enabled units (or the parent's
    allotment) cannot cover the consumption, and Http404 outside the acting user's scope.
    """
    _require_administrator(acting_user, pool, sku)
    with transaction.atomic():
        # The SKU row lock serialises this with assignments and allotment changes of the same SKU, and the
        # fresh row carries the enabled units of the latest sync.
        sku = Sku.objects.select_for_update().get(pk=sku.pk)
        line = _drift_line_or_error(pool, sku, include_referred=True)
        target = _allotment_pool(pool, sku)
        target_line = next((item for item in stock.pool_lines(target) if item.sku.pk == sku.pk), None)
        before = target_line.allotment if target_line else 0
        consumption = target_line.consumption if target_line else 0
        after = before
        if before is not None and consumption > before:
            try:
                from .services import set_allotment

                set_allotment(acting_user=acting_user, pool=target, sku=sku, seats=consumption)
            except AllotmentError as exc:
                message = _(
                    "Cannot adopt the assignments of %(sku)s made outside the portal in %(pool)s, because its allotment "
                    "cannot rise from %(before)s to the %(consumption)s seats in use. %(reason)s"
                ) % {"sku": sku.name, "pool": str(target), "before": before, "consumption": consumption,
                     "reason": exc.message}
                raise DriftError(message) from exc
            after = consumption
        count = _mark_resolved(line, DriftResolution.ADOPTED, acting_user)
        record_event(
            acting_user=acting_user, action=AuditAction.DRIFT_ADOPTED, tenant=pool.tenant, pool=pool, sku=sku,
            target=str(target), before={"seats": before, "consumption": consumption},
            after={"seats": after, "assignments": _assignment_summary(line)},
            message=ngettext(
                "Adopted %(count)s assignment made outside the portal.",
                "Adopted %(count)s assignments made outside the portal.",
                count,
            ) % {"count": count},
        )
    logger.info(
        "Drift of %s in pool %s (tenant %s) adopted by %s: %s assignments, allotment of pool %s %s -> %s",
        sku.part_number, pool.pk, pool.tenant_id, acting_user.get_username(), count, target.pk, before, after,
    )
    _evaluate_alerts(pool.tenant)
    return line


def refer_drift(*, acting_user: AbstractBaseUser, pool: Pool, sku: Sku) -> tuple[DriftLine, list[str]]:
    """Mark the pool's drift of ``sku`` referred and e-mail the list to the pool's managers.

    Returns the drift line and the addresses e-mailed. Raises DriftError when the pool has no manager with
    an e-mail address, since nobody would hear of the referral, and Http404 outside the acting user's scope.
    """
    from .notifications import pool_managers, send_drift_referral

    _require_administrator(acting_user, pool, sku)
    with transaction.atomic():
        line = _drift_line_or_error(pool, sku, include_referred=False)
        recipients = [user for user in pool_managers(pool) if user.email]
        if not recipients:
            raise DriftError(
                _("Pool %(pool)s has no manager with an e-mail address, so nobody would receive the referral. Appoint "
                  "a pool manager with an e-mail address, or adopt the assignments instead.") % {"pool": str(pool)}
            )
        count = _mark_resolved(line, DriftResolution.REFERRED, acting_user)
        record_event(
            acting_user=acting_user, action=AuditAction.DRIFT_REFERRED, tenant=pool.tenant, pool=pool, sku=sku,
            target=str(pool), before={"spare": line.spare},
            after={
                "assignments": _assignment_summary(line),
                "recipients": [user.email for user in recipients],
                "managers": [user.get_username() for user in recipients],
            },
            message=ngettext(
                "Referred %(count)s assignment made outside the portal to the pool managers.",
                "Referred %(count)s assignments made outside the portal to the pool managers.",
                count,
            ) % {"count": count},
        )
    addresses = send_drift_referral(pool=pool, line=line, recipients=recipients, acting_user=acting_user)
    logger.info(
        "Drift of %s in pool %s (tenant %s) referred by %s: %s assignments, e-mailed to %s managers",
        sku.part_number, pool.pk, pool.tenant_id, acting_user.get_username(), count, len(addresses),
    )
    _evaluate_alerts(pool.tenant)
    return line, addresses


def _evaluate_alerts(tenant: Tenant) -> None:
    from .alerts import evaluate_tenant

    evaluate_tenant(tenant)
