"""Alert evaluation: find the conditions that need attention and keep one open Alert per condition.

Each condition has a deduplication key. Evaluating again updates the open alert of a key that is still
true (``last_seen_at``, message, details), raises a new alert for a new key and resolves the open alerts
whose condition cleared. Newly raised alerts are e-mailed once through ``pools.notifications``.

A full evaluation of a tenant runs after every successful sync and after drift is adopted or referred.
Assignments, revocations and allotment changes queue an evaluation of only the pool and SKU they
touched, once the change has committed.
"""
from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Count, Min, Q, QuerySet
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from graphsync.choices import LicenseState
from graphsync.models import Sku, Subscription, Tenant, UserLicense

from . import stock
from .choices import AlertKind, AlertSeverity, RequestStatus
from .drift import group_names, unresolved_drift
from .models import Alert, Allotment, Pool, SeatRequest, TenantPolicy
from .movers import moved_in_holders

logger = logging.getLogger(__name__)

# Alert kinds about one pool, e-mailed to its managers; the others go to the tenant administrators.
POOL_KINDS = frozenset(
    {AlertKind.POOL_SPARE_LOW, AlertKind.POOL_OVER_ALLOTMENT, AlertKind.DRIFT, AlertKind.GROUP_LICENSE_ERROR}
)
# Pool alert kinds whose fix needs a tenant administrator (raising an allotment, adopting drift), so they
# are e-mailed to the tenant administrators as well as to the pool's managers.
ADMINISTRATOR_ACTION_KINDS = frozenset({AlertKind.POOL_OVER_ALLOTMENT, AlertKind.DRIFT})
ERROR_STATES = [LicenseState.ERROR, LicenseState.ACTIVE_WITH_ERROR]
# Capability states in which no new seat can be assigned, so free units are not counted.
UNASSIGNABLE_STATUSES = frozenset({"Suspended", "LockedOut", "Deleted"})


def number(value) -> str:
    return formats.number_format(value, use_l10n=True, force_grouping=True)


def date(value) -> str:
    return formats.date_format(timezone.localtime(value), "DATE_FORMAT", use_l10n=True) if value else ""


@dataclass
class Condition:
    """A condition found by an evaluation, before it becomes or refreshes an Alert.

    NOTE: ``message`` is translated into the language active during the evaluation (LANGUAGE_CODE in a
    worker) and stored, so the alerts page does not re-translate it per viewer.
    """

    kind: str
    dedup_key: str
    message: str
    severity: str = AlertSeverity.WARNING
    pool: Pool | None = None
    details: dict = field(default_factory=dict)


@dataclass
class EvaluationResult:
    raised: list[Alert] = field(default_factory=list)
    refreshed: int = 0
    resolved: int = 0


# Deduplication keys


def pool_sku_key(kind: str, pool_pk: int, sku_pk: int) -> str:
    return f"{kind}:pool{pool_pk}:sku{sku_pk}"


def sku_key(kind: str, sku_pk: int) -> str:
    return f"{kind}:sku{sku_pk}"


# Pool conditions


def _threshold_seats(pool: Pool, allotment: int) -> int:
    """Return the spare below which the pool alerts: the larger of its count and its percent of ``allotment``."""
    by_count = pool.spare_alert_count or 0
    by_percent = math.ceil(allotment * pool.spare_alert_percent / 100) if pool.spare_alert_percent else 0
    return max(by_count, by_percent)


def pool_conditions(pool: Pool, sku: Sku, allotment: int | None, consumption: int, *, has_allotment: bool) -> list[Condition]:
    """Return the spare-low or over-allotment condition of one pool and SKU, if any.

    Only an allotment a tenant administrator set is checked: a pool without one for the SKU is left to
    the drift alerts, so a tenant whose allotments are still being set up is not flooded.
    """
    if allotment is None or not has_allotment:
        return []
    spare = allotment - consumption
    numbers = {
        "pool": str(pool), "sku": sku.name, "allotment": number(allotment), "consumption": number(consumption),
        "spare": number(spare), "over": number(-spare),
    }
    details = {"sku": sku.part_number, "allotment": allotment, "consumption": consumption, "spare": spare}
    if spare < 0:
        return [
            Condition(
                kind=AlertKind.POOL_OVER_ALLOTMENT,
                dedup_key=pool_sku_key(AlertKind.POOL_OVER_ALLOTMENT, pool.pk, sku.pk),
                severity=AlertSeverity.CRITICAL,
                pool=pool,
                details=details,
                message=_(
                    "Pool %(pool)s uses %(consumption)s seats of %(sku)s but is allotted %(allotment)s, %(over)s over. "
                    "Assignments made outside the portal and users who moved into the pool count here, and the portal "
                    "revokes none of them. Raise the allotment or revoke licenses in the pool."
                ) % numbers,
            )
        ]
    threshold = _threshold_seats(pool, allotment)
    if allotment > 0 and spare < threshold:
        return [
            Condition(
                kind=AlertKind.POOL_SPARE_LOW,
                dedup_key=pool_sku_key(AlertKind.POOL_SPARE_LOW, pool.pk, sku.pk),
                pool=pool,
                details={**details, "threshold": threshold},
                message=_(
                    "Pool %(pool)s has %(spare)s spare seats of %(sku)s left (%(allotment)s allotted, %(consumption)s in "
                    "use), fewer than its alert threshold of %(threshold)s."
                ) % {**numbers, "threshold": number(threshold)},
            )
        ]
    return []


def unallotted_mover_condition(pool: Pool, sku: Sku, consumption: int, moved_in: int) -> Condition:
    """Return the over-allotment condition of a level-1 pool without an allotment of ``sku`` that movers brought it.

    Such a pool has no seats of the SKU, so every holder is over. It is flagged only when a sync moved
    licensed users in, because the drift alerts already cover assignments made outside the portal.
    """
    numbers = {"pool": str(pool), "sku": sku.name, "consumption": number(consumption), "moved": number(moved_in)}
    return Condition(
        kind=AlertKind.POOL_OVER_ALLOTMENT,
        dedup_key=pool_sku_key(AlertKind.POOL_OVER_ALLOTMENT, pool.pk, sku.pk),
        severity=AlertSeverity.CRITICAL,
        pool=pool,
        details={"sku": sku.part_number, "allotment": None, "consumption": consumption, "moved_in": moved_in},
        message=ngettext(
            "Pool %(pool)s has no allotment of %(sku)s, but %(consumption)s users hold it, %(moved)s of them moved "
            "in from another pool by a sync. The portal revokes none of them. Raise the allotment or revoke "
            "licenses in the pool.",
            "Pool %(pool)s has no allotment of %(sku)s, but %(consumption)s users hold it, %(moved)s of them moved "
            "in from other pools by a sync. The portal revokes none of them. Raise the allotment or revoke "
            "licenses in the pool.",
            moved_in,
        ) % numbers,
    )


def _all_pool_conditions(tenant: Tenant) -> list[Condition]:
    pools = {pool.pk: pool for pool in Pool.objects.filter(tenant=tenant, is_active=True).select_related("parent")}
    own = stock.consumption_by_pool(tenant)
    consumed: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for pool_pk, by_sku in own.items():
        pool = pools.get(pool_pk)
        if pool is None:
            continue
        for sku_pk, users in by_sku.items():
            consumed[pool_pk][sku_pk] += users
            if pool.parent_id in pools:
                consumed[pool.parent_id][sku_pk] += users
    skus = {sku.pk: sku for sku in Sku.objects.filter(tenant=tenant)}
    conditions = []
    allotted = set()
    for pool_pk, sku_pk, seats in Allotment.objects.filter(pool_id__in=list(pools)).values_list("pool_id", "sku_id", "seats"):
        allotted.add((pool_pk, sku_pk))
        conditions += pool_conditions(
            pools[pool_pk], skus[sku_pk], seats, consumed[pool_pk].get(sku_pk, 0), has_allotment=True
        )
    for (pool_pk, sku_pk), moved_in in moved_in_holders(tenant).items():
        if (pool_pk, sku_pk) in allotted or pool_pk not in pools:
            continue
        conditions.append(
            unallotted_mover_condition(pools[pool_pk], skus[sku_pk], consumed[pool_pk].get(sku_pk, 0), moved_in)
        )
    return conditions


# Tenant stock conditions


def stock_conditions(tenant: Tenant, lines: list[stock.TenantSkuStock], policy: TenantPolicy) -> list[Condition]:
    """Return stock-low, warning and suspended conditions of the given SKUs."""
    conditions = []
    for line in lines:
        sku = line.sku
        if sku.applies_to != "User":
            continue
        conditions += _stock_low(tenant, line, policy)
        if sku.warning_units > 0:
            conditions.append(_units_warning(tenant, sku))
        unassignable = sku.suspended_units + sku.locked_out_units
        if unassignable > 0:
            conditions.append(
                Condition(
                    kind=AlertKind.UNITS_SUSPENDED,
                    dedup_key=sku_key(AlertKind.UNITS_SUSPENDED, sku.pk),
                    severity=AlertSeverity.CRITICAL,
                    details={"sku": sku.part_number, "suspended": sku.suspended_units,
                             "locked_out": sku.locked_out_units, "holders": line.holders},
                    message=_(
                        "%(units)s units of %(sku)s are suspended or locked out and cannot be assigned; %(holders)s "
                        "users still hold the license. Renew or reactivate the subscription in the Microsoft 365 admin "
                        "center."
                    ) % {"units": number(unassignable), "sku": sku.name, "holders": number(line.holders)},
                )
            )
    return conditions


def _stock_low(tenant: Tenant, line: stock.TenantSkuStock, policy: TenantPolicy) -> list[Condition]:
    sku = line.sku
    # A SKU without enabled units, or in a state that takes no assignment, is covered by the warning and
    # suspended alerts.
    if sku.enabled_units <= 0 or sku.capability_status in UNASSIGNABLE_STATUSES:
        return []
    by_percent = math.ceil(sku.enabled_units * policy.stock_alert_percent / 100) if policy.stock_alert_percent else 0
    threshold = max(policy.stock_alert_count or 0, by_percent)
    free = line.available
    if free >= threshold:
        return []
    return [
        Condition(
            kind=AlertKind.TENANT_STOCK_LOW,
            dedup_key=sku_key(AlertKind.TENANT_STOCK_LOW, sku.pk),
            severity=AlertSeverity.CRITICAL if free <= 0 else AlertSeverity.WARNING,
            details={"sku": sku.part_number, "enabled": sku.enabled_units, "holders": line.holders, "free": free,
                     "threshold": threshold},
            message=_(
                "%(sku)s has %(free)s free units left in %(tenant)s (%(enabled)s enabled, %(holders)s assigned), fewer "
                "than the alert threshold of %(threshold)s. Buy more units or reclaim unused licenses."
            ) % {"sku": sku.name, "free": number(free), "tenant": tenant.name, "enabled": number(sku.enabled_units),
                 "holders": number(line.holders), "threshold": number(threshold)},
        )
    ]


def _units_warning(tenant: Tenant, sku: Sku) -> Condition:
    lapse = (
        Subscription.objects.filter(tenant=tenant, sku_id=sku.sku_id, status="Warning", next_lifecycle_at__isnull=False)
        .aggregate(first=Min("next_lifecycle_at"))["first"]
    )
    message = _(
        "%(units)s units of %(sku)s are in their grace period (warning state) and stop working unless the "
        "subscription is renewed."
    ) % {"units": number(sku.warning_units), "sku": sku.name}
    if lapse:
        message += " " + _("The next lifecycle date is %(date)s.") % {"date": date(lapse)}
    return Condition(
        kind=AlertKind.UNITS_WARNING,
        dedup_key=sku_key(AlertKind.UNITS_WARNING, sku.pk),
        details={"sku": sku.part_number, "warning": sku.warning_units, "next_lifecycle_at": lapse.isoformat() if lapse else None},
        message=message,
    )


# Drift, licensing errors and requests


def drift_conditions(tenant: Tenant, pools: dict[int, Pool]) -> list[Condition]:
    rows = (
        unresolved_drift(tenant)
        .values("user__pool_id", "sku_id")
        .annotate(count=Count("pk"), first_seen=Min("first_seen_at"))
        .order_by()
    )
    skus = {sku.pk: sku for sku in Sku.objects.filter(tenant=tenant)}
    conditions = []
    for row in rows:
        pool = pools.get(row["user__pool_id"])
        sku = skus[row["sku_id"]]
        names = {"count": number(row["count"]), "sku": sku.name, "pool": str(pool) if pool else _("(no pool)"),
                 "first_seen": date(row["first_seen"])}
        conditions.append(
            Condition(
                kind=AlertKind.DRIFT,
                dedup_key=f"{AlertKind.DRIFT}:pool{row['user__pool_id']}:sku{sku.pk}",
                severity=AlertSeverity.WARNING,
                pool=pool,
                details={"sku": sku.part_number, "assignments": row["count"],
                         "first_seen_at": row["first_seen"].isoformat()},
                message=ngettext(
                    "%(count)s assignment of %(sku)s in pool %(pool)s was made outside the portal (first seen "
                    "%(first_seen)s). A tenant administrator can adopt it or refer it to the pool managers.",
                    "%(count)s assignments of %(sku)s in pool %(pool)s were made outside the portal (first seen "
                    "%(first_seen)s). A tenant administrator can adopt them or refer them to the pool managers.",
                    row["count"],
                ) % names,
            )
        )
    return conditions


def license_error_rows(tenant: Tenant, pool_ids: list[int] | None = None):
    """License rows of non-deleted users that Graph reports in error, direct or inherited from a group."""
    rows = UserLicense.objects.filter(tenant=tenant, user__is_deleted=False).filter(
        Q(state__in=ERROR_STATES) | ~Q(error__in=["None", ""])
    )
    if pool_ids is not None:
        rows = rows.filter(user__pool_id__in=pool_ids)
    return rows


def license_error_conditions(tenant: Tenant, pools: dict[int, Pool]) -> list[Condition]:
    from .notifications import explain_error

    rows = list(
        license_error_rows(tenant)
        .values("user__pool_id", "sku_id", "assigned_by_group", "error")
        .annotate(users=Count("user_id", distinct=True))
        .order_by()
    )
    names = group_names(tenant, [row["assigned_by_group"] for row in rows])
    skus = {sku.pk: sku for sku in Sku.objects.filter(tenant=tenant)}
    conditions = []
    for row in rows:
        pool = pools.get(row["user__pool_id"])
        sku = skus[row["sku_id"]]
        group = row["assigned_by_group"]
        values = {
            "count": number(row["users"]), "sku": sku.name, "pool": str(pool) if pool else _("(no pool)"),
            "group": names.get(group, ""), "code": row["error"], "explanation": explain_error(row["error"]),
        }
        if group:
            message = ngettext(
                "%(count)s member of pool %(pool)s does not get %(sku)s from group %(group)s: %(code)s. %(explanation)s",
                "%(count)s members of pool %(pool)s do not get %(sku)s from group %(group)s: %(code)s. %(explanation)s",
                row["users"],
            ) % values
        else:
            message = ngettext(
                "%(count)s member of pool %(pool)s has a direct assignment of %(sku)s in error: %(code)s. %(explanation)s",
                "%(count)s members of pool %(pool)s have a direct assignment of %(sku)s in error: %(code)s. "
                "%(explanation)s",
                row["users"],
            ) % values
        conditions.append(
            Condition(
                kind=AlertKind.GROUP_LICENSE_ERROR,
                dedup_key=f"{AlertKind.GROUP_LICENSE_ERROR}:pool{row['user__pool_id']}:sku{sku.pk}:"
                f"group{group or 'direct'}:{row['error'][:100]}",
                pool=pool,
                details={"sku": sku.part_number, "group_id": group, "group": names.get(group, ""),
                         "error": row["error"], "users": row["users"]},
                message=message,
            )
        )
    return conditions


def request_conditions(tenant: Tenant) -> list[Condition]:
    conditions = []
    for seat_request in SeatRequest.objects.filter(tenant=tenant, status=RequestStatus.PENDING).select_related(
        "pool", "pool__parent", "sku", "requested_by"
    ):
        requester = seat_request.requested_by.get_username() if seat_request.requested_by else _("A pool manager")
        conditions.append(
            Condition(
                kind=AlertKind.PENDING_REQUEST,
                dedup_key=f"{AlertKind.PENDING_REQUEST}:request{seat_request.pk}",
                severity=AlertSeverity.INFO,
                pool=seat_request.pool,
                details={"request": seat_request.pk, "sku": seat_request.sku.part_number,
                         "quantity": seat_request.quantity},
                message=_(
                    "%(user)s asked on %(date)s for %(quantity)s more seats of %(sku)s for pool %(pool)s; the request "
                    "is waiting for a decision."
                ) % {"user": requester, "date": date(seat_request.requested_at), "quantity": number(seat_request.quantity),
                     "sku": seat_request.sku.name, "pool": str(seat_request.pool)},
            )
        )
    return conditions


# Evaluation


def tenant_conditions(tenant: Tenant) -> list[Condition]:
    """Return every condition of the tenant that needs an open alert now."""
    pools = {pool.pk: pool for pool in Pool.objects.filter(tenant=tenant).select_related("parent")}
    return [
        *_all_pool_conditions(tenant),
        *stock_conditions(tenant, stock.tenant_stock(tenant), TenantPolicy.for_tenant(tenant)),
        *drift_conditions(tenant, pools),
        *license_error_conditions(tenant, pools),
        *request_conditions(tenant),
    ]


def evaluate_tenant(tenant: Tenant, *, notify: bool = True) -> EvaluationResult:
    """Evaluate every alert condition of the tenant and e-mail the alerts it raised."""
    result = reconcile(tenant, tenant_conditions(tenant), covered_keys=None)
    _finish(tenant, result, notify)
    return result


def evaluate_pool_sku(pool: Pool, sku: Sku, *, notify: bool = True) -> EvaluationResult:
    """Evaluate only the spare and over-allotment alerts of ``pool`` (and its parent) and the stock of ``sku``.

    A few counting queries, so it can run after each assignment, revocation or allotment change.
    """
    tenant = pool.tenant
    chain = [pool] + ([pool.parent] if pool.parent_id else [])
    conditions: list[Condition] = []
    covered = {sku_key(AlertKind.TENANT_STOCK_LOW, sku.pk)}
    for level_pool in chain:
        allotment = Allotment.objects.filter(pool=level_pool, sku=sku).values_list("seats", flat=True).first()
        consumption = stock.holders(tenant, sku, level_pool.subtree_ids())
        conditions += pool_conditions(level_pool, sku, allotment, consumption, has_allotment=allotment is not None)
        if allotment is None and level_pool.parent_id is None:
            moved_in = moved_in_holders(tenant, sku).get((level_pool.pk, sku.pk), 0)
            if moved_in:
                conditions.append(unallotted_mover_condition(level_pool, sku, consumption, moved_in))
        covered |= {pool_sku_key(kind, level_pool.pk, sku.pk) for kind in (AlertKind.POOL_SPARE_LOW, AlertKind.POOL_OVER_ALLOTMENT)}
    line = stock.TenantSkuStock(sku=sku, allotted=0, holders=stock.holders(tenant, sku))
    conditions += [
        item for item in _stock_low(tenant, line, TenantPolicy.for_tenant(tenant)) if item.dedup_key in covered
    ]
    result = reconcile(tenant, conditions, covered_keys=covered)
    _finish(tenant, result, notify)
    return result


def evaluate_after_commit(*, pool_pk: int, sku_pk: int) -> None:
    """Queue an evaluation of the pool's and SKU's alerts once the current transaction commits.

    A Celery worker runs it a moment later, coalesced with the other changes to the same pool and SKU;
    without a broker it runs in this process on commit. Errors are logged, not raised, because the
    change that calls this has already succeeded.
    """
    from .alert_tasks import queue_pool_sku_evaluation

    transaction.on_commit(lambda: queue_pool_sku_evaluation(pool_pk, sku_pk))


def reconcile(tenant: Tenant, conditions: list[Condition], *, covered_keys: set[str] | None) -> EvaluationResult:
    """Make the tenant's open alerts match ``conditions``.

    With ``covered_keys``, only open alerts with those keys are resolved; the others were not evaluated.
    """
    result = EvaluationResult()
    now = timezone.now()
    wanted = {condition.dedup_key: condition for condition in conditions}
    with transaction.atomic():
        _lock_tenant_alerts(tenant)
        open_alerts = Alert.objects.filter(tenant=tenant, resolved_at__isnull=True)
        if covered_keys is not None:
            open_alerts = open_alerts.filter(dedup_key__in=covered_keys)
        current = {alert.dedup_key: alert for alert in open_alerts}

        stale = [alert.pk for key, alert in current.items() if key not in wanted]
        result.resolved = Alert.objects.filter(pk__in=stale).update(resolved_at=now)

        seen = []
        for key, condition in wanted.items():
            alert = current.get(key)
            if alert is None:
                result.raised.append(
                    Alert.objects.create(
                        tenant=tenant, pool=condition.pool, kind=condition.kind, severity=condition.severity,
                        dedup_key=key, message=condition.message, details=condition.details,
                    )
                )
                continue
            seen.append(alert.pk)
            if (alert.message, alert.details, alert.severity, alert.pool_id) != (
                condition.message, condition.details, condition.severity, condition.pool.pk if condition.pool else None
            ):
                Alert.objects.filter(pk=alert.pk).update(
                    message=condition.message, details=condition.details, severity=condition.severity,
                    pool=condition.pool,
                )
        Alert.objects.filter(pk__in=seen).update(last_seen_at=now)
        result.refreshed = len(seen)
    return result


# First key of the PostgreSQL advisory lock that serialises alert evaluations; the second is the tenant's pk.
ALERT_LOCK_CLASS = 0x414C5254


def _lock_tenant_alerts(tenant: Tenant) -> None:
    """Make evaluations of one tenant take turns, so two cannot both raise an alert for one key.

    An advisory lock, not the tenant row, because a sync holds the tenant row for its whole write.
    SQLite, used by the embedded default, allows one writer at a time anyway.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ALERT_LOCK_CLASS, tenant.pk])


def _finish(tenant: Tenant, result: EvaluationResult, notify: bool) -> None:
    if result.raised or result.resolved:
        logger.info(
            "Alerts of tenant %s: %s raised, %s still open, %s resolved",
            tenant.pk, len(result.raised), result.refreshed, result.resolved,
        )
    if notify and result.raised:
        from .notifications import send_raised_alerts

        send_raised_alerts([alert.pk for alert in result.raised])


# Scope


def visible_alerts(user) -> QuerySet[Alert]:
    """Alerts the user may see: every alert of tenants they hold a tenant-wide grant on, and the alerts of
    the pools they may view (a pool manager's pools and their level-2 pools)."""
    from rbac import scoping
    from rbac.choices import Action

    if not user.is_authenticated:
        return Alert.objects.none()
    tenant_ids = scoping.tenants_with_tenant_permission(user, Action.VIEW).values("pk")
    pool_ids = scoping.pools_for(user, Action.VIEW).values("pk")
    return Alert.objects.filter(Q(tenant__in=tenant_ids) | Q(pool__in=pool_ids))
