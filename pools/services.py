"""Domain operations on pools: schemes, allotments, license assignment and revocation.

Each function takes the acting portal user keyword-only, checks scope through ``rbac.scoping``,
and writes its audit event in the same transaction as the change.
"""
from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Sum
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from graphsync.choices import UNCONFIRMED_STATES, LicenseState
from graphsync.client import GraphClient
from graphsync.errors import GraphError
from graphsync.models import DirectoryGroup, DirectoryUser, Sku, UserLicense
from rbac import scoping
from rbac.choices import Action

from . import pool_names, unconfirmed
from .audit import record_event
from .choices import AuditAction, Outcome
from .exceptions import AllotmentError, AssignmentRejected, GraphRejected
from .graph_messages import describe_graph_error
from .membership import recompute_membership
from .models import Allotment, AuditEvent, Pool, PoolScheme
from .seats import quota_chain, release_unit, reserve_seat
from .stock import pool_lines
from .usage_location import choose_usage_location, ensure_usage_location, set_user_usage_location

logger = logging.getLogger(__name__)


# Schemes and pools


def set_scheme(*, acting_user: AbstractBaseUser, tenant, level1_attribute: str, level2_attribute: str = "") -> PoolScheme:
    """Set the tenant's pool scheme and recompute every user's pool at once."""
    if not scoping.can_administer_tenant(acting_user, tenant):
        raise Http404("No such tenant.")
    with transaction.atomic():
        scheme = PoolScheme.objects.select_for_update().filter(tenant=tenant).first()
        before = {"level1": scheme.level1_attribute, "level2": scheme.level2_attribute} if scheme else None
        scheme = scheme or PoolScheme(tenant=tenant)
        scheme.level1_attribute = level1_attribute
        scheme.level2_attribute = level2_attribute or ""
        scheme.full_clean(exclude=["tenant"])
        scheme.save()
        moved = recompute_membership(tenant)
        from chargeback.history import record_license_history

        record_license_history(tenant)
        record_event(
            acting_user=acting_user,
            action=AuditAction.SCHEME_CHANGED,
            tenant=tenant,
            target=str(tenant),
            before=before,
            after={"level1": scheme.level1_attribute, "level2": scheme.level2_attribute, "users_moved": moved},
        )
    return scheme


def rename_pool(*, acting_user: AbstractBaseUser, pool: Pool, name: str) -> Pool:
    """Give the pool an administrator's name, or with "" show its attribute value's spelling again.

    Raises PoolNameError for an invisible, malformed or taken name; ``pools.pool_names`` has the rules.
    """
    if not scoping.can_administer_tenant(acting_user, pool.tenant):
        raise Http404("No such pool.")
    try:
        name_override = pool_names.clean_pool_name(name)
        with transaction.atomic():
            pool_names.check_name_available(pool, name_override)
            before = pool.name
            pool.name_override = name_override
            pool.save(update_fields=["name_override"])
            record_event(
                acting_user=acting_user, action=AuditAction.POOL_RENAMED, tenant=pool.tenant, pool=pool,
                target=str(pool), before={"name": before}, after={"name": pool.name},
            )
    except pool_names.PoolNameError as exc:
        # The event records the name as typed, invisible characters included, for auditors.
        # PostgreSQL cannot store U+0000 in text or JSON, so that one is written out.
        record_event(
            acting_user=acting_user, action=AuditAction.POOL_RENAMED, outcome=Outcome.REJECTED, tenant=pool.tenant,
            pool=pool, target=str(pool), before={"name": pool.name}, after={"name": name.replace("\x00", "U+0000")},
            message=exc.message,
        )
        raise
    return pool


# Allotments


def set_allotment(
    *, acting_user: AbstractBaseUser, pool: Pool, sku: Sku, seats: int | None, level2_moving: bool = False
) -> Allotment | None:
    """Set (or with ``seats=None`` remove) a pool's allotment of a SKU.

    Level-1 allotments of a SKU together stay within the tenant's enabled units; the allotments of a
    level-1 pool's children stay within the parent's. A level-1 allotment is not removed while its
    level-2 pools have allotments of the SKU, unless ``level2_moving`` is set because the caller moves
    those away in the same transaction, as a pool merge does.
    """
    if not scoping.can_administer_tenant(acting_user, pool.tenant) or sku.tenant_id != pool.tenant_id:
        raise Http404("No such pool.")
    try:
        return _set_allotment(acting_user=acting_user, pool=pool, sku=sku, seats=seats, level2_moving=level2_moving)
    except AllotmentError as exc:
        record_event(
            acting_user=acting_user, action=AuditAction.ALLOTMENT_CHANGED, outcome=Outcome.REJECTED,
            tenant=pool.tenant, pool=pool, sku=sku, target=str(pool), after={"seats": seats}, message=exc.message,
        )
        raise


def _set_allotment(
    *, acting_user: AbstractBaseUser, pool: Pool, sku: Sku, seats: int | None, level2_moving: bool
) -> Allotment | None:
    if seats is not None and seats < 0:
        raise AllotmentError(_("An allotment cannot be negative; %(seats)s was given.") % {"seats": seats})

    with transaction.atomic():
        # Re-read under the lock: a sync may have changed the enabled units since the caller loaded the SKU.
        sku = Sku.objects.select_for_update().get(pk=sku.pk)
        current = Allotment.objects.filter(pool=pool, sku=sku).first()
        before = current.seats if current else None
        if seats is not None:
            _check_allotment_limits(pool, sku, seats)
        elif current and pool.parent_id is None and not level2_moving:
            _check_removal(pool, sku)
        if seats is None:
            if current:
                current.delete()
            allotment = None
        else:
            allotment, _created = Allotment.objects.update_or_create(
                pool=pool, sku=sku, defaults={"seats": seats, "updated_by": acting_user}
            )
        record_event(
            acting_user=acting_user, action=AuditAction.ALLOTMENT_CHANGED, tenant=pool.tenant, pool=pool, sku=sku,
            target=str(pool), before={"seats": before}, after={"seats": seats},
        )
    logger.info("Allotment of %s in pool %s (tenant %s): %s -> %s", sku.part_number, pool.pk, pool.tenant_id, before, seats)
    _evaluate_alerts(pool.pk, sku.pk)
    return allotment


def _evaluate_alerts(pool_pk: int, sku_pk: int) -> None:
    """Re-check the spare and stock alerts of the pool and SKU a change touched, after it commits."""
    from .alerts import evaluate_after_commit

    evaluate_after_commit(pool_pk=pool_pk, sku_pk=sku_pk)


def _check_removal(pool: Pool, sku: Sku) -> None:
    """Raise AllotmentError while level-2 pools of ``pool`` have allotments of ``sku``.

    Their allotments stay within the parent's, and without the parent's they would have no limit.
    """
    child_allotments = list(
        Allotment.objects.filter(pool__parent=pool, pool__is_active=True, sku=sku)
        .select_related("pool")
        .order_by("pool__display_name", "pool__pk")
    )
    if not child_allotments:
        return
    pools = ", ".join(
        ngettext("%(pool)s (%(seats)s seat)", "%(pool)s (%(seats)s seats)", allotment.seats)
        % {"pool": allotment.pool, "seats": allotment.seats}
        for allotment in child_allotments
    )
    raise AllotmentError(
        _("Cannot remove the allotment of %(sku)s from %(pool)s: its level-2 pools have allotments of it: "
          "%(pools)s. Remove their allotments of %(sku)s first, or set a number of seats here instead.")
        % {"sku": sku.name, "pool": pool, "pools": pools}
    )


def over_allotment_warning(pool: Pool, sku: Sku) -> str | None:
    """Return a warning when the pool's members already hold more of ``sku`` than its allotment, else None."""
    line = next((line for line in pool_lines(pool) if line.sku.pk == sku.pk), None)
    if line is None or not line.over_allotment:
        return None
    # Nothing is revoked: the pool shows the excess and its managers cannot assign more until it is gone.
    message = _(
        "%(pool)s already holds %(consumption)s licenses of %(sku)s, %(over)s more than the allotment. Nothing was "
        "revoked; the pool cannot assign more until licenses are revoked or the allotment is raised."
    )
    return message % {"pool": pool, "consumption": line.consumption, "sku": sku.name, "over": -line.spare}


def disabled_account_warning(user: DirectoryUser) -> str | None:
    """Return a warning when ``user``'s account was disabled in Entra ID at the last sync, else None.

    A disabled account's license is a reclaim candidate at once, so assigning one is allowed but flagged.
    """
    if user.account_enabled:
        return None
    return _("%(upn)s is disabled in Entra ID; the seat will show as reclaimable.") % {
        "upn": user.user_principal_name
    }


def _check_allotment_limits(pool: Pool, sku: Sku, seats: int) -> None:
    names = {"pool": str(pool), "sku": sku.name, "seats": seats}
    if pool.parent_id is None:
        others = (
            Allotment.objects.filter(pool__tenant=pool.tenant, pool__parent__isnull=True, pool__is_active=True, sku=sku)
            .exclude(pool=pool)
            .aggregate(total=Sum("seats"))["total"]
            or 0
        )
        if others + seats > sku.enabled_units:
            raise AllotmentError(
                _("Cannot allot %(seats)s seats of %(sku)s to %(pool)s: the tenant has %(enabled)s enabled units and "
                  "other pools hold %(others)s, so at most %(room)s can go here. Buy more seats or lower another "
                  "pool's allotment first.")
                % {**names, "enabled": sku.enabled_units, "others": others, "room": max(sku.enabled_units - others, 0)}
            )
        children = Allotment.objects.filter(pool__parent=pool, pool__is_active=True, sku=sku).aggregate(
            total=Sum("seats")
        )["total"] or 0
        if seats < children:
            raise AllotmentError(
                _("Cannot lower %(pool)s to %(seats)s seats of %(sku)s: its level-2 pools hold %(children)s. Lower "
                  "theirs first.") % {**names, "children": children}
            )
        return

    parent_allotment = Allotment.objects.filter(pool=pool.parent, sku=sku).first()
    parent_seats = parent_allotment.seats if parent_allotment else 0
    siblings = (
        Allotment.objects.filter(pool__parent=pool.parent, pool__is_active=True, sku=sku)
        .exclude(pool=pool)
        .aggregate(total=Sum("seats"))["total"]
        or 0
    )
    if siblings + seats > parent_seats:
        raise AllotmentError(
            _("Cannot allot %(seats)s seats of %(sku)s to %(pool)s: its parent %(parent)s has %(parent_seats)s and "
              "the other level-2 pools hold %(siblings)s. Raise the parent's allotment first.")
            % {**names, "parent": pool.parent.name, "parent_seats": parent_seats, "siblings": siblings}
        )


# Assignment and revocation


def _check_user_in_pool(acting_user: AbstractBaseUser, pool: Pool, user: DirectoryUser) -> list[Pool]:
    """Raise Http404 unless the acting user may assign in ``pool`` and the user is in it or its level-2 pools.

    Returns the pools whose allotments limit the user, from ``seats.quota_chain``.
    """
    if not scoping.can_on_pool(acting_user, Action.ASSIGN, pool):
        raise Http404("No such pool.")
    chain = None
    if user.tenant_id == pool.tenant_id and not user.is_deleted:
        chain = quota_chain(pool, user)
    if chain is None:
        raise Http404("No such user in this pool.")
    return chain


def _precheck_assignment(user: DirectoryUser, sku: Sku) -> None:
    if sku.applies_to != "User":
        raise AssignmentRejected(
            _("%(sku)s applies to the whole company, not to users; it cannot be assigned to %(user)s.")
            % {"sku": sku.name, "user": user.user_principal_name}
        )
    if sku.capability_status in ("Suspended", "LockedOut", "Deleted"):
        raise AssignmentRejected(
            _("%(sku)s is %(status)s in the tenant; no new seats can be assigned. Renew the subscription first.")
            % {"sku": sku.name, "status": sku.get_capability_status_display()}
        )


def _reject_unconfirmed(user: DirectoryUser, sku: Sku) -> None:
    """Raise AssignmentRejected while an earlier assignment or removal of the SKU awaits a sync to settle it."""
    if UserLicense.objects.filter(user=user, sku=sku, assigned_by_group="", state__in=UNCONFIRMED_STATES).exists():
        raise AssignmentRejected(
            _("Whether an earlier change of %(sku)s for %(user)s was made in Microsoft 365 is unknown, because the "
              "connection to Microsoft Graph failed. The next sync settles it; run a sync, then check the user "
              "before you try again.")
            % {"user": user.user_principal_name, "sku": sku.name}
        )


def user_service_plans(sku: Sku) -> dict[str, dict]:
    """Map the lower-case ids of the SKU's service plans that apply to users to Graph's plan objects."""
    return {
        str(plan.get("servicePlanId", "")).lower(): plan
        for plan in sku.service_plans
        if plan.get("servicePlanId") and (plan.get("appliesTo") or "User") == "User"
    }


def check_disabled_plans(sku: Sku, disabled_plans: list[str] | None) -> list[str]:
    """Return the plan ids to send as ``disabledPlans``, lower-cased and without repeats.

    Raises AssignmentRejected naming the first value that is not a user service plan of the SKU, so
    Graph never sees it.
    """
    known = user_service_plans(sku)
    chosen: list[str] = []
    for value in disabled_plans or []:
        plan_id = str(value).strip().lower()
        if plan_id not in known:
            raise AssignmentRejected(
                _("\"%(plan)s\" is not a service plan of %(sku)s that applies to users, so it cannot be disabled. "
                  "Choose among the service plans listed for %(sku)s, or run a sync if its plans changed recently.")
                % {"plan": value, "sku": sku.name}
            )
        if plan_id not in chosen:
            chosen.append(plan_id)
    return chosen


def _license_to_update(user: DirectoryUser, sku: Sku, disabled_plans: list[str] | None) -> UserLicense | None:
    """Return the user's direct license of the SKU when the request only changes its disabled plans."""
    if disabled_plans is None:
        return None
    current = UserLicense.objects.filter(user=user, sku=sku, assigned_by_group="").first()
    if current is None or current.state == LicenseState.PENDING:
        return None
    if {plan.lower() for plan in current.disabled_plans} == set(disabled_plans):
        return None  # Nothing to change: the seat check reports that the user holds it already.
    return current


def _update_disabled_plans(
    *, acting_user: AbstractBaseUser, pool: Pool, user: DirectoryUser, sku: Sku, current: UserLicense,
    disabled_plans: list[str],
) -> UserLicense:
    """Send assignLicense with the SKU the user holds and new disabledPlans; this takes no new seat."""
    audit = {"acting_user": acting_user, "tenant": pool.tenant, "pool": pool, "user": user, "sku": sku}
    before = {"skuId": str(sku.sku_id), "disabledPlans": list(current.disabled_plans)}
    after = {"skuId": str(sku.sku_id), "disabledPlans": disabled_plans}
    try:
        response = GraphClient(pool.tenant).assign_license(
            str(user.user_id), add=[{"skuId": str(sku.sku_id), "disabledPlans": disabled_plans}], remove=[]
        )
    except GraphError as exc:
        message = describe_graph_error(exc, user=user.user_principal_name, sku=sku.name)
        record_event(
            action=AuditAction.LICENSE_ASSIGNED, outcome=Outcome.FAILED, message=message, before=before, after=after,
            graph_request_id=exc.request_id, **audit,
        )
        logger.warning(
            "Changing disabled plans of %s for user %s in pool %s (tenant %s) failed in Graph: %s",
            sku.part_number, user.user_id, pool.pk, pool.tenant.tenant_id, exc,
        )
        raise GraphRejected(message, graph_message=exc.message, request_id=exc.request_id) from exc

    with transaction.atomic():
        current.disabled_plans = disabled_plans
        current.last_updated = timezone.now()
        current.save(update_fields=["disabled_plans", "last_updated"])
        record_event(
            action=AuditAction.LICENSE_ASSIGNED, graph_request_id=response.request_id, before=before, after=after,
            message=_("Changed the disabled service plans; the user keeps the same seat."), **audit,
        )
    logger.info(
        "Changed disabled plans of %s for user %s in pool %s (tenant %s, request-id %s)",
        sku.part_number, user.user_id, pool.pk, pool.tenant.tenant_id, response.request_id,
    )
    return current


def assign_license(
    *, acting_user: AbstractBaseUser, pool: Pool, user: DirectoryUser, sku: Sku, disabled_plans: list[str] | None = None
) -> UserLicense:
    """Assign a SKU to a user of the pool, within the pool's allotment and the tenant's stock.

    ``disabled_plans`` become the SKU's ``disabledPlans``; the user's other SKUs keep theirs. When the
    user already holds the SKU directly and ``disabled_plans`` differ from its current ones, only the
    disabled plans change and no seat is taken. A user without a usage location gets one from their
    country or the pool's default first. Raises AssignmentRejected when a rule forbids it,
    GraphRejected when Graph refuses or fails, and Http404 when the pool or user is outside the acting
    user's scope.
    """
    chain = _check_user_in_pool(acting_user, pool, user)
    if sku.tenant_id != pool.tenant_id:
        raise Http404("No such SKU in this tenant.")
    audit = {"acting_user": acting_user, "tenant": pool.tenant, "pool": pool, "user": user, "sku": sku}

    try:
        _precheck_assignment(user, sku)
        _reject_unconfirmed(user, sku)
        plans = check_disabled_plans(sku, disabled_plans)
        current = _license_to_update(user, sku, plans if disabled_plans is not None else None)
        if current is None:
            ensure_usage_location(acting_user=acting_user, pool=pool, user=user)
            reservation = reserve_seat(chain=chain, user=user, sku=sku, disabled_plans=plans)
    except AssignmentRejected as exc:
        record_event(action=AuditAction.LICENSE_ASSIGNED, outcome=Outcome.REJECTED, message=exc.message, **audit)
        raise
    if current is not None:
        return _update_disabled_plans(
            acting_user=acting_user, pool=pool, user=user, sku=sku, current=current, disabled_plans=plans
        )

    if not user.usage_location:
        # ensure_usage_location has checked that a choice exists.
        try:
            set_user_usage_location(acting_user=acting_user, pool=pool, user=user, choice=choose_usage_location(user))
        except GraphRejected as exc:
            with transaction.atomic():
                release_unit(reservation)
                record_event(
                    action=AuditAction.LICENSE_ASSIGNED, outcome=Outcome.FAILED, message=exc.message,
                    graph_request_id=exc.request_id, **audit,
                )
            raise

    try:
        response = GraphClient(pool.tenant).assign_license(
            str(user.user_id), add=[{"skuId": str(sku.sku_id), "disabledPlans": reservation.disabled_plans}], remove=[]
        )
    except GraphError as exc:
        if unconfirmed.outcome_unknown(exc):
            reservation = unconfirmed.settle_lost_assignment(exc, reservation=reservation, audit=audit)
            _evaluate_alerts(user.pool_id, sku.pk)
            return reservation
        message = describe_graph_error(exc, user=user.user_principal_name, sku=sku.name)
        with transaction.atomic():
            release_unit(reservation)
            record_event(
                action=AuditAction.LICENSE_ASSIGNED, outcome=Outcome.FAILED, message=message,
                graph_request_id=exc.request_id, **audit,
            )
        logger.warning(
            "Assigning %s to user %s in pool %s (tenant %s) failed in Graph: %s",
            sku.part_number, user.user_id, pool.pk, pool.tenant.tenant_id, exc,
        )
        raise GraphRejected(message, graph_message=exc.message, request_id=exc.request_id) from exc

    with transaction.atomic():
        unconfirmed.confirm_assignment(reservation, audit=audit, graph_request_id=response.request_id)
    logger.info(
        "Assigned %s to user %s in pool %s (tenant %s, request-id %s)",
        sku.part_number, user.user_id, pool.pk, pool.tenant.tenant_id, response.request_id,
    )
    _evaluate_alerts(user.pool_id, sku.pk)
    return reservation


def revoke_license(
    *, acting_user: AbstractBaseUser, pool: Pool, user: DirectoryUser, sku: Sku,
    audit_action: AuditAction = AuditAction.LICENSE_REVOKED, audit_details: dict | None = None, audit_message: str = "",
) -> AuditEvent:
    """Remove a user's direct assignment of a SKU and return the audit event.

    A license inherited from a group is rejected with the group's name. A caller that revokes for a
    reason of its own, such as seat recovery, passes ``audit_action``, ``audit_details`` (added to the
    event's ``before``) and ``audit_message``, so that one action writes one audit event.
    """
    _check_user_in_pool(acting_user, pool, user)
    if sku.tenant_id != pool.tenant_id:
        raise Http404("No such SKU in this tenant.")
    audit = {"acting_user": acting_user, "tenant": pool.tenant, "pool": pool, "user": user, "sku": sku}
    details = audit_details or {}

    licenses = list(UserLicense.objects.filter(user=user, sku=sku))
    direct = next((item for item in licenses if item.is_direct), None)
    try:
        if direct is None:
            group_ids = [item.assigned_by_group for item in licenses]
            if group_ids:
                names = sorted(
                    DirectoryGroup.objects.filter(tenant=pool.tenant, group_id__in=group_ids).values_list(
                        "display_name", flat=True
                    )
                ) or group_ids
                raise AssignmentRejected(
                    _("%(user)s gets %(sku)s from the group %(groups)s, not directly. Remove the user from the group "
                      "or the license from the group in Entra ID.")
                    % {"user": user.user_principal_name, "sku": sku.name, "groups": ", ".join(names)}
                )
            raise AssignmentRejected(
                _("%(user)s does not hold %(sku)s.") % {"user": user.user_principal_name, "sku": sku.name}
            )
        _reject_unconfirmed(user, sku)
        if direct.state == LicenseState.PENDING:
            raise AssignmentRejected(
                _("An assignment of %(sku)s to %(user)s is still in progress; try again in a moment.")
                % {"user": user.user_principal_name, "sku": sku.name}
            )
    except AssignmentRejected as exc:
        record_event(
            action=audit_action, outcome=Outcome.REJECTED, message=exc.message, before=details or None, **audit
        )
        raise

    try:
        response = GraphClient(pool.tenant).assign_license(str(user.user_id), add=[], remove=[str(sku.sku_id)])
    except GraphError as exc:
        if unconfirmed.outcome_unknown(exc):
            event = unconfirmed.settle_lost_removal(
                exc, direct=direct, audit=audit, action=audit_action, details=details, message=audit_message
            )
            _evaluate_alerts(user.pool_id, sku.pk)
            return event
        message = describe_graph_error(exc, user=user.user_principal_name, sku=sku.name)
        record_event(
            action=audit_action, outcome=Outcome.FAILED, message=message, before=details or None,
            graph_request_id=exc.request_id, **audit,
        )
        raise GraphRejected(message, graph_message=exc.message, request_id=exc.request_id) from exc

    with transaction.atomic():
        event = unconfirmed.complete_removal(
            direct, audit=audit, action=audit_action, details=details, message=audit_message,
            graph_request_id=response.request_id,
        )
    logger.info(
        "Revoked %s from user %s in pool %s (tenant %s, request-id %s)",
        sku.part_number, user.user_id, pool.pk, pool.tenant.tenant_id, response.request_id,
    )
    _evaluate_alerts(user.pool_id, sku.pk)
    return event
