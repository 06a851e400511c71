"""Seat recovery: finding licenses to reclaim in a pool, exemptions, and reclaiming them.

A pool member holding a seat is a reclaim candidate when the account is disabled, when its latest
sign-in of any kind (interactive, non-interactive or successful) is older than the inactivity threshold,
when it never signed in and was created longer ago than the threshold, or when one of its SKUs is
redundant: every service plan it enables is also enabled in another SKU the user holds. Sign-in times
come from Graph's signInActivity, which only Entra ID P1/P2 tenants return; without it only disabled
accounts and redundant licenses are listed. Entra ID records sign-ins only from April 2020 on, so an
account created before then without a sign-in is inactive since at least that date rather than one that
never signed in. An exempt user is never a candidate.

Reclaiming removes the direct assignment through ``services.revoke_license``, which records one
``license.reclaimed`` audit event with the reasons in place of its usual ``license.revoked``. A license
the user also or only gets from a group is not reclaimed, because removing the direct assignment would
free no seat.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.formats import date_format, number_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from guardian.shortcuts import get_objects_for_user

from graphsync.choices import LicenseState
from graphsync.models import DirectoryGroup, DirectoryUser, Sku, Tenant, UserLicense
from rbac import scoping
from rbac.choices import Action

from .audit import record_event
from .choices import AuditAction, Outcome
from .exceptions import AssignmentRejected, GraphRejected, PoolsError
from .models import AuditEvent, LicenseExemption, Pool, TenantPolicy
from .services import revoke_license

logger = logging.getLogger(__name__)

MAX_EXEMPTION_REASON_LENGTH = 500
# Microsoft Entra ID keeps interactive sign-ins from April 2020 on (Microsoft Graph, signInActivity resource
# type), so for an older account without a sign-in only the time since then is known.
SIGN_IN_RECORDS_START = dt.datetime(2020, 4, 1, tzinfo=dt.timezone.utc)
# A license in these states is not reclaimable: a group assignment that failed, or a reservation in progress
# or awaiting a sync to confirm it.
NO_SEAT_STATES = (LicenseState.PENDING, LicenseState.ASSIGNMENT_UNCONFIRMED, "Error")

# Tenant-wide and pool permissions that let a user reclaim seats and manage exemptions; license operators
# only assign and revoke.
RECLAIM_TENANT_PERMISSIONS = ["graphsync.administer_tenant", "graphsync.manage_pools"]
RECLAIM_POOL_PERMISSIONS = ["pools.manage_pool"]


class RecoveryError(PoolsError):
    """An exemption or reclaim request that cannot be carried out as asked."""


class ExemptionExists(RecoveryError):
    """The user is exempt already; an exemption is changed by removing it and adding a new one."""


class ReasonCode:
    DISABLED = "disabled"
    INACTIVE = "inactive"
    NEVER_SIGNED_IN = "never_signed_in"
    REDUNDANT = "redundant"


class ThresholdSource:
    POOL = "pool"
    PARENT = "parent"
    TENANT = "tenant"


def sign_in_statement(tenant: Tenant) -> str:
    """Return the statement the recovery pages show about missing sign-in data, or "" when the data is there."""
    if tenant.sign_in_activity_available is False:
        return _(
            "Sign-in data is unavailable for this tenant: Microsoft Graph returns signInActivity only to tenants "
            "with Microsoft Entra ID P1 or P2 and an app with AuditLog.Read.All. Disabled accounts and redundant "
            "licenses are still listed."
        )
    if tenant.sign_in_activity_available is None:
        return _(
            "Sign-in data has not been read for this tenant yet, so inactive accounts are listed only after the "
            "next sync. Disabled accounts and redundant licenses are listed."
        )
    return ""


# Scope


def recoverable_pools(user: AbstractBaseUser) -> QuerySet[Pool]:
    """Active pools in which the user may reclaim seats and manage exemptions: the pools the user manages,
    their level-2 pools, and every pool of tenants the user administers or manages as a whole."""
    pools = scoping.pools_for(user, Action.ASSIGN)
    if not user.is_authenticated:
        return pools
    tenants = get_objects_for_user(
        user, RECLAIM_TENANT_PERMISSIONS, klass=Tenant, any_perm=True, accept_global_perms=False
    ).values("pk")
    managed = get_objects_for_user(
        user, RECLAIM_POOL_PERMISSIONS, klass=Pool, any_perm=True, accept_global_perms=False
    ).values("pk")
    return pools.filter(Q(tenant__in=tenants) | Q(pk__in=managed) | Q(parent__in=managed))


def can_reclaim(user: AbstractBaseUser, pool: Pool) -> bool:
    return recoverable_pools(user).filter(pk=pool.pk).exists()


def _check_scope(acting_user: AbstractBaseUser, pool: Pool, user: DirectoryUser) -> None:
    if not can_reclaim(acting_user, pool):
        raise Http404("No such pool.")
    if user.tenant_id != pool.tenant_id or user.is_deleted or user.pool_id not in pool.subtree_ids():
        raise Http404("No such user in this pool.")


# Thresholds


@dataclass(frozen=True)
class Threshold:
    days: int
    source: str
    pool: Pool | None = None


def threshold_for(pool: Pool, tenant_days: int | None = None) -> Threshold:
    """Return the inactivity threshold of ``pool``: its own, else its parent's, else the tenant policy's."""
    if pool.inactivity_threshold_days is not None:
        return Threshold(pool.inactivity_threshold_days, ThresholdSource.POOL, pool)
    if pool.parent_id and pool.parent.inactivity_threshold_days is not None:
        return Threshold(pool.parent.inactivity_threshold_days, ThresholdSource.PARENT, pool.parent)
    if tenant_days is None:
        tenant_days = TenantPolicy.for_tenant(pool.tenant).inactivity_threshold_days
    return Threshold(tenant_days, ThresholdSource.TENANT)


# Candidates


def last_sign_in(user: DirectoryUser) -> dt.datetime | None:
    """Return the latest of the user's interactive, non-interactive and successful sign-ins, or None."""
    times = [
        value
        for value in (user.last_interactive_sign_in_at, user.last_non_interactive_sign_in_at, user.last_successful_sign_in_at)
        if value is not None
    ]
    return max(times) if times else None


@dataclass
class Reason:
    code: str
    message: str


@dataclass(frozen=True)
class LicenseGroup:
    group_id: str
    name: str


@dataclass
class HeldLicense:
    """A SKU a candidate holds, with its sources and whether the portal can reclaim it."""

    sku: Sku
    direct: bool
    groups: list[LicenseGroup] = field(default_factory=list)
    redundant_with: Sku | None = None
    reclaimable: bool = False
    skip_message: str = ""

    @property
    def group_names(self) -> list[str]:
        return [group.name for group in self.groups]


@dataclass
class Candidate:
    user: DirectoryUser
    reasons: list[Reason]
    licenses: list[HeldLicense]
    threshold: Threshold
    last_sign_in: dt.datetime | None
    days_inactive: int | None
    exemption: LicenseExemption | None = None
    # The start of the sign-in records, for an account older than them without a recorded sign-in.
    no_sign_in_since: dt.datetime | None = None

    @property
    def reason_codes(self) -> list[str]:
        return [reason.code for reason in self.reasons]

    @property
    def message(self) -> str:
        return " ".join(reason.message for reason in self.reasons)

    @property
    def reclaimable_licenses(self) -> list[HeldLicense]:
        return [held for held in self.licenses if held.reclaimable]

    def held(self, sku: Sku) -> HeldLicense | None:
        return next((held for held in self.licenses if held.sku.pk == sku.pk), None)


@dataclass
class RecoveryReport:
    """The reclaim candidates of a pool, and the members whose exemption hides them."""

    pool: Pool
    threshold: Threshold
    sign_in_available: bool | None
    statement: str
    candidates: list[Candidate]
    exempted: list[Candidate]
    exemptions: list[LicenseExemption]

    def count(self, code: str) -> int:
        return sum(1 for candidate in self.candidates if code in candidate.reason_codes)

    @property
    def counts(self) -> dict[str, int]:
        return {
            code: self.count(code)
            for code in (ReasonCode.DISABLED, ReasonCode.INACTIVE, ReasonCode.NEVER_SIGNED_IN, ReasonCode.REDUNDANT)
        }


def _enabled_plans(sku: Sku, licenses: list[UserLicense]) -> frozenset[str]:
    """Return the user service plans of ``sku`` that any of the user's ``licenses`` of it leaves enabled."""
    plans = {
        str(plan.get("servicePlanId", "")).lower()
        for plan in sku.service_plans
        if plan.get("servicePlanId") and (plan.get("appliesTo") or "User") == "User"
    }
    enabled: set[str] = set()
    for user_license in licenses:
        disabled = {str(plan_id).lower() for plan_id in user_license.disabled_plans or []}
        enabled |= plans - disabled
    return frozenset(enabled)


def redundant_skus(held: dict[int, tuple[Sku, frozenset[str]]]) -> dict[int, Sku]:
    """Map each redundant SKU's pk to a SKU that covers it, from the user's SKUs and enabled plans.

    A SKU is redundant when every plan it enables is enabled in another SKU too. The covering SKU returned
    is the one that enables the most plans. Of two SKUs that enable the same plans, only the one with fewer plans
    in its catalog entry (then the earlier part number) is redundant, so one of them is always kept. A SKU
    that enables no plan is not compared.
    """
    redundant: dict[int, Sku] = {}
    ordered = sorted(held.values(), key=lambda item: (len(item[0].service_plans), item[0].part_number))
    for index, (sku, plans) in enumerate(ordered):
        if not plans:
            continue
        covers = [
            (len(other_plans), other_index, other)
            for other_index, (other, other_plans) in enumerate(ordered)
            if other_index != index
            and plans <= other_plans
            # Equal plans: only the SKU sorted first is redundant.
            and not (plans == other_plans and other_index < index)
        ]
        if covers:
            redundant[sku.pk] = max(covers, key=lambda cover: (cover[0], cover[1]))[2]
    return redundant


def _group_names(tenant: Tenant, licenses: list[UserLicense]) -> dict[str, str]:
    group_ids = {user_license.assigned_by_group for user_license in licenses if user_license.assigned_by_group}
    names = {
        str(group_id): name
        for group_id, name in DirectoryGroup.objects.filter(tenant=tenant, group_id__in=group_ids).values_list(
            "group_id", "display_name"
        )
    }
    # A group missing from the mirror is named by its ID.
    return {group_id: names.get(group_id) or group_id for group_id in group_ids}


def _held_licenses(user: DirectoryUser, licenses: list[UserLicense], group_names: dict[str, str]) -> list[HeldLicense]:
    by_sku: dict[int, list[UserLicense]] = {}
    for user_license in licenses:
        by_sku.setdefault(user_license.sku_id, []).append(user_license)
    held = []
    for sku_licenses in by_sku.values():
        sku = sku_licenses[0].sku
        groups = sorted(
            {
                LicenseGroup(item.assigned_by_group, group_names.get(item.assigned_by_group, item.assigned_by_group))
                for item in sku_licenses
                if item.assigned_by_group
            },
            key=lambda group: group.name.casefold(),
        )
        held.append(HeldLicense(sku=sku, direct=any(item.is_direct for item in sku_licenses), groups=groups))
    held.sort(key=lambda item: item.sku.name.casefold())
    return held


def _mark_reclaimable(held: HeldLicense, *, only_redundant: bool, redundant: dict[int, Sku]) -> None:
    names = {"sku": held.sku.name, "groups": ", ".join(held.group_names)}
    if only_redundant and held.sku.pk not in redundant:
        held.skip_message = _("Kept: only the redundant license is reclaimed.")
    elif held.groups and held.direct:
        held.skip_message = _(
            "%(sku)s is assigned directly and also comes from the group %(groups)s, so removing the direct "
            "assignment would free no seat. Remove the user from the group, or the license from the group, in "
            "Entra ID."
        ) % names
    elif held.groups:
        held.skip_message = _(
            "%(sku)s comes from the group %(groups)s, so it cannot be reclaimed directly. Remove the user from the "
            "group, or the license from the group, in Entra ID."
        ) % names
    else:
        held.reclaimable = True
    if held.sku.pk in redundant:
        held.redundant_with = redundant[held.sku.pk]


def evaluate(
    user: DirectoryUser,
    licenses: list[UserLicense],
    *,
    threshold: Threshold,
    sign_in_available: bool | None,
    group_names: dict[str, str],
    now: dt.datetime,
) -> Candidate | None:
    """Return the user as a candidate with every reason that applies, or None when no reason applies.

    ``licenses`` are the user's seat-holding licenses with their SKUs; an exemption is not considered here.
    """
    if not licenses:
        return None
    reasons: list[Reason] = []
    numbers = {"threshold": number_format(threshold.days)}
    if not user.account_enabled:
        reasons.append(Reason(ReasonCode.DISABLED, _("The account is disabled in Entra ID but still holds licenses.")))

    latest = last_sign_in(user)
    days_inactive = (now - latest).days if latest else None
    no_sign_in_since = None
    limit = now - dt.timedelta(days=threshold.days)
    if sign_in_available:
        if latest is not None and latest < limit:
            reasons.append(Reason(ReasonCode.INACTIVE, ngettext(
                "No sign-in of any kind for %(days)s day; the threshold is %(threshold)s days.",
                "No sign-in of any kind for %(days)s days; the threshold is %(threshold)s days.",
                days_inactive,
            ) % {**numbers, "days": number_format(days_inactive)}))
        # NOTE: an account that never signed in and has no createdDateTime is not listed, because its age
        # cannot be compared with the threshold.
        elif latest is None and user.created_at_graph is not None and user.created_at_graph < SIGN_IN_RECORDS_START:
            no_sign_in_since = SIGN_IN_RECORDS_START
            reasons.append(Reason(ReasonCode.INACTIVE, _(
                "No sign-in recorded since %(start)s, when Entra ID began recording sign-ins. The account was "
                "created on %(created)s, and the threshold is %(threshold)s days."
            ) % {
                **numbers, "start": date_format(SIGN_IN_RECORDS_START, "YEAR_MONTH_FORMAT"),
                "created": date_format(user.created_at_graph, "SHORT_DATE_FORMAT"),
            }))
        elif latest is None and user.created_at_graph is not None and user.created_at_graph < limit:
            age = (now - user.created_at_graph).days
            reasons.append(Reason(ReasonCode.NEVER_SIGNED_IN, ngettext(
                "Never signed in; the account was created %(days)s day ago and the threshold is %(threshold)s days.",
                "Never signed in; the account was created %(days)s days ago and the threshold is %(threshold)s days.",
                age,
            ) % {**numbers, "days": number_format(age)}))

    # A license assigned within the threshold is no sign of waste: its user has had no time to sign in.
    # Graph's lastUpdatedDateTime tells when the assignment last changed.
    recent = {item.sku_id: item.last_updated for item in licenses if item.last_updated and item.last_updated >= limit}
    inactivity = [reason for reason in reasons if reason.code in (ReasonCode.INACTIVE, ReasonCode.NEVER_SIGNED_IN)]
    if inactivity and {item.sku_id for item in licenses} <= set(recent):
        reasons = [reason for reason in reasons if reason not in inactivity]
        inactivity = []

    held = _held_licenses(user, licenses, group_names)
    plans_by_sku = {
        item.sku.pk: (item.sku, _enabled_plans(item.sku, [lic for lic in licenses if lic.sku_id == item.sku.pk]))
        for item in held
    }
    redundant = redundant_skus(plans_by_sku)
    for sku_pk, other in sorted(redundant.items(), key=lambda pair: plans_by_sku[pair[0]][0].name.casefold()):
        reasons.append(Reason(ReasonCode.REDUNDANT, _(
            "Every enabled service plan of %(sku)s is also in %(other)s, which the user holds too."
        ) % {"sku": plans_by_sku[sku_pk][0].name, "other": other.name}))
    if not reasons:
        return None

    only_redundant = all(reason.code == ReasonCode.REDUNDANT for reason in reasons)
    disabled = any(reason.code == ReasonCode.DISABLED for reason in reasons)
    for item in held:
        _mark_reclaimable(item, only_redundant=only_redundant, redundant=redundant)
        if item.reclaimable and inactivity and not disabled and item.sku.pk in recent and item.sku.pk not in redundant:
            item.reclaimable = False
            item.skip_message = _(
                "Kept: assigned on %(date)s, less than %(threshold)s days ago, so the user has had no time to sign "
                "in yet."
            ) % {"date": date_format(recent[item.sku.pk], "SHORT_DATE_FORMAT"), **numbers}
    return Candidate(
        user=user, reasons=reasons, licenses=held, threshold=threshold, last_sign_in=latest,
        days_inactive=days_inactive, no_sign_in_since=no_sign_in_since if inactivity else None,
    )


def _seat_licenses() -> Prefetch:
    return Prefetch(
        "licenses",
        queryset=UserLicense.objects.exclude(state__in=NO_SEAT_STATES).select_related("sku"),
        to_attr="seat_licenses",
    )


def _evaluate_users(pool: Pool, users: list[DirectoryUser], now: dt.datetime) -> list[tuple[DirectoryUser, Candidate | None]]:
    tenant = pool.tenant
    tenant_days = TenantPolicy.for_tenant(tenant).inactivity_threshold_days
    all_licenses = [user_license for user in users for user_license in user.seat_licenses]
    group_names = _group_names(tenant, all_licenses)
    thresholds: dict[int, Threshold] = {}
    results = []
    for user in users:
        if user.pool_id not in thresholds:
            thresholds[user.pool_id] = threshold_for(user.pool, tenant_days)
        candidate = evaluate(
            user, user.seat_licenses, threshold=thresholds[user.pool_id],
            sign_in_available=tenant.sign_in_activity_available, group_names=group_names, now=now,
        )
        results.append((user, candidate))
    return results


def pool_report(pool: Pool, *, now: dt.datetime | None = None) -> RecoveryReport:
    """Find the reclaim candidates among the pool's members and its level-2 pools' members."""
    now = now or timezone.now()
    members = (
        pool.members_queryset()
        .filter(licenses__isnull=False)
        .exclude(licenses__state__in=NO_SEAT_STATES)
        .distinct()
        .select_related("pool", "pool__parent", "reclaim_exemption", "reclaim_exemption__created_by")
        .prefetch_related(_seat_licenses())
        .order_by("display_name", "user_principal_name")
    )
    candidates, exempted = [], []
    for user, candidate in _evaluate_users(pool, list(members), now):
        if candidate is None:
            continue
        exemption = getattr(user, "reclaim_exemption", None)
        if exemption is not None:
            candidate.exemption = exemption
            exempted.append(candidate)
        else:
            candidates.append(candidate)
    exemptions = list(
        LicenseExemption.objects.filter(user__in=pool.members_queryset())
        .select_related("user", "created_by")
        .order_by("user__display_name", "user__user_principal_name")
    )
    return RecoveryReport(
        pool=pool,
        threshold=threshold_for(pool),
        sign_in_available=pool.tenant.sign_in_activity_available,
        statement=sign_in_statement(pool.tenant),
        candidates=candidates,
        exempted=exempted,
        exemptions=exemptions,
    )


def evaluate_user(pool: Pool, user: DirectoryUser, *, now: dt.datetime | None = None) -> Candidate | None:
    """Evaluate one member of ``pool`` from the database as it is now; the exemption is set on the result."""
    fresh = (
        DirectoryUser.objects.select_related("pool", "pool__parent", "pool__tenant", "reclaim_exemption")
        .prefetch_related(_seat_licenses())
        .get(pk=user.pk)
    )
    candidate = _evaluate_users(pool, [fresh], now or timezone.now())[0][1]
    if candidate is not None:
        candidate.exemption = getattr(fresh, "reclaim_exemption", None)
    return candidate


# Exemptions


def add_exemption(*, acting_user: AbstractBaseUser, pool: Pool, user: DirectoryUser, reason: str) -> LicenseExemption:
    """Exempt a member of the pool from seat reclamation. Raises RecoveryError or Http404."""
    _check_scope(acting_user, pool, user)
    reason = " ".join((reason or "").split())
    if not reason:
        raise RecoveryError(_("Give a reason for the exemption, such as \"service account\" or \"shared mailbox\"."))
    if len(reason) > MAX_EXEMPTION_REASON_LENGTH:
        raise RecoveryError(
            _("The reason has %(length)s characters; shorten it to at most %(limit)s.")
            % {"length": number_format(len(reason)), "limit": number_format(MAX_EXEMPTION_REASON_LENGTH)}
        )
    try:
        with transaction.atomic():
            exemption = LicenseExemption.objects.create(
                tenant=pool.tenant, user=user, reason=reason, created_by=acting_user
            )
            record_event(
                acting_user=acting_user, action=AuditAction.EXEMPTION_ADDED, tenant=pool.tenant, pool=pool, user=user,
                after={"reason": reason},
            )
    except IntegrityError:
        current = LicenseExemption.objects.filter(user=user).first()
        raise ExemptionExists(
            _("%(user)s is already exempt: %(reason)s. Remove that exemption first to change its reason.")
            % {"user": user.user_principal_name, "reason": current.reason if current else ""}
        ) from None
    logger.info("Exempted user %s from reclaiming in pool %s (tenant %s)", user.user_id, pool.pk, pool.tenant.tenant_id)
    return exemption


def remove_exemption(*, acting_user: AbstractBaseUser, pool: Pool, user: DirectoryUser) -> None:
    """Remove a member's exemption, so the user can be a reclaim candidate again. Raises Http404."""
    _check_scope(acting_user, pool, user)
    with transaction.atomic():
        exemption = (
            LicenseExemption.objects.select_for_update(of=("self",)).filter(user=user).select_related("created_by").first()
        )
        if exemption is None:
            raise Http404("The user has no exemption.")
        before = {
            "reason": exemption.reason,
            "createdBy": exemption.created_by.get_username() if exemption.created_by else None,
            "createdAt": exemption.created_at.isoformat(),
        }
        exemption.delete()
        record_event(
            acting_user=acting_user, action=AuditAction.EXEMPTION_REMOVED, tenant=pool.tenant, pool=pool, user=user,
            before=before,
        )
    logger.info("Removed the reclaim exemption of user %s in pool %s (tenant %s)", user.user_id, pool.pk, pool.tenant.tenant_id)


# Reclaiming


def not_candidate_message(user: DirectoryUser, candidate: Candidate | None) -> str:
    """Return why the user is not reclaimed at all, or an empty string when the user is a candidate."""
    if candidate is not None and candidate.exemption is not None:
        return _("%(user)s is exempt from reclaiming: %(reason)s. Remove the exemption first.") % {
            "user": user.user_principal_name, "reason": candidate.exemption.reason
        }
    if candidate is None:
        return _(
            "%(user)s is no longer a reclaim candidate: no reason to reclaim applies to the licenses the user holds now."
        ) % {"user": user.user_principal_name}
    return ""


def _check_reclaimable(pool: Pool, user: DirectoryUser, sku: Sku) -> Candidate:
    candidate = evaluate_user(pool, user)
    names = {"user": user.user_principal_name, "sku": sku.name}
    rejection = not_candidate_message(user, candidate)
    if rejection:
        raise AssignmentRejected(rejection)
    held = candidate.held(sku)
    if held is None:
        raise AssignmentRejected(_("%(user)s does not hold %(sku)s.") % names)
    if not held.reclaimable:
        raise AssignmentRejected(_("%(sku)s of %(user)s is not reclaimed. %(why)s") % {**names, "why": held.skip_message})
    return candidate


def reclaim_license(*, acting_user: AbstractBaseUser, pool: Pool, user: DirectoryUser, sku: Sku) -> AuditEvent:
    """Reclaim a candidate's direct license of ``sku`` and return its ``license.reclaimed`` audit event.

    A reclaim writes this one event and no ``license.revoked`` event besides. The event contains the reasons,
    the candidate's message and Graph's request id, so the audit trail shows each removal once, with why.
    The user is evaluated again first, so a user who signed in, was exempted or lost the license since the
    list was shown is not touched. Raises AssignmentRejected, GraphRejected, or Http404 outside the acting
    user's scope.
    """
    _check_scope(acting_user, pool, user)
    if sku.tenant_id != pool.tenant_id:
        raise Http404("No such SKU in this tenant.")
    try:
        candidate = _check_reclaimable(pool, user, sku)
    except AssignmentRejected as exc:
        record_event(
            acting_user=acting_user, action=AuditAction.LICENSE_RECLAIMED, outcome=Outcome.REJECTED,
            tenant=pool.tenant, pool=pool, user=user, sku=sku, message=exc.message,
        )
        raise

    event = revoke_license(
        acting_user=acting_user, pool=pool, user=user, sku=sku, audit_action=AuditAction.LICENSE_RECLAIMED,
        audit_details={"skuId": str(sku.sku_id), "reasons": candidate.reason_codes}, audit_message=candidate.message,
    )
    logger.info(
        "Reclaimed %s from user %s in pool %s (tenant %s, reasons %s, request-id %s)",
        sku.part_number, user.user_id, pool.pk, pool.tenant.tenant_id, ",".join(candidate.reason_codes),
        event.graph_request_id,
    )
    return event
