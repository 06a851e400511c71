"""Assignments and removals whose outcome is unknown because the connection failed after the request was sent.

The Graph client sends assignLicense once (see ``GraphClient.assign_license``). When the connection
fails after the request went out, Graph may have applied it, so the user's licenses are read back at
once with a short timeout (``GRAPH_READBACK_TIMEOUT_SECONDS``) and the change is completed or undone
from what Graph holds. When that read fails too, the license row is marked unconfirmed: it keeps its
seat, so the pool cannot go over its allotment, and every sync settles such rows before it reads the
tenant (``settle_unconfirmed_licenses``).
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chargeback.history import close_interval, open_interval
from graphsync.choices import UNCONFIRMED_STATES, LicenseOrigin, LicenseState
from graphsync.client import GraphClient
from graphsync.errors import GraphConnectionError, GraphError, GraphNotFoundError
from graphsync.models import DirectoryUser, Sku, Tenant, UserLicense

from . import graph_messages
from .audit import record_event
from .choices import AuditAction, Outcome
from .exceptions import GraphRejected, OutcomeUnknown
from .models import AuditEvent
from .seats import release_unit

logger = logging.getLogger(__name__)


def outcome_unknown(error: GraphError) -> bool:
    """Tell whether Graph may have applied a write that failed with ``error``."""
    return isinstance(error, GraphConnectionError) and error.request_sent


def direct_state(states: list[dict], sku: Sku) -> dict | None:
    """Return the direct ``licenseAssignmentStates`` entry of the SKU, or None."""
    sku_id = str(sku.sku_id).lower()
    return next(
        (state for state in states if str(state.get("skuId", "")).lower() == sku_id and not state.get("assignedByGroup")),
        None,
    )


def read_direct_license(tenant: Tenant, user: DirectoryUser, sku: Sku) -> dict | None:
    """Read the user's direct license of the SKU back from Graph; None when the user or license is gone.

    Raises GraphError when Graph cannot answer within ``GRAPH_READBACK_TIMEOUT_SECONDS`` per attempt.
    """
    try:
        states = GraphClient(tenant).read_user_licenses(
            str(user.user_id), timeout=settings.GRAPH_READBACK_TIMEOUT_SECONDS
        )
    except GraphNotFoundError:
        return None
    return direct_state(states, sku)


def _same_plans(state: dict, disabled_plans: list[str]) -> bool:
    return {plan.lower() for plan in state.get("disabledPlans") or []} == {plan.lower() for plan in disabled_plans}


def _assignment_after(license: UserLicense) -> dict:
    return {"skuId": str(license.sku.sku_id), "disabledPlans": list(license.disabled_plans)}


# Completing or undoing a change; call inside a transaction.


def confirm_assignment(reservation: UserLicense, *, audit: dict, graph_request_id: str = "", message: str = "") -> None:
    """Mark the reservation as the portal's active assignment, open its license history and audit it."""
    reservation.state = LicenseState.ACTIVE
    reservation.error = "None"
    reservation.last_updated = timezone.now()
    # The portal made this assignment, so it is never drift.
    reservation.origin = LicenseOrigin.PORTAL
    reservation.first_seen_at = reservation.first_seen_at or reservation.last_updated
    reservation.save(update_fields=["state", "error", "last_updated", "origin", "first_seen_at", "disabled_plans"])
    open_interval(reservation.user, reservation.sku)
    record_event(
        action=AuditAction.LICENSE_ASSIGNED, graph_request_id=graph_request_id, after=_assignment_after(reservation),
        message=message, **audit,
    )


def release_assignment(reservation: UserLicense, *, audit: dict, message: str, graph_request_id: str = "") -> None:
    """Release the reservation's seat and audit the assignment as failed."""
    release_unit(reservation)
    record_event(
        action=AuditAction.LICENSE_ASSIGNED, outcome=Outcome.FAILED, message=message,
        graph_request_id=graph_request_id, **audit,
    )


def complete_removal(
    direct: UserLicense, *, audit: dict, action: AuditAction, details: dict | None = None, message: str = "",
    graph_request_id: str = "",
) -> AuditEvent:
    """Delete the direct license row, return its seat, close its license history and audit the removal."""
    user, sku = direct.user, direct.sku
    Sku.objects.select_for_update().get(pk=sku.pk)
    release_unit(direct)
    if not UserLicense.objects.filter(user=user, sku=sku).exclude(state="Error").exists():
        close_interval(user, sku)
    return record_event(
        action=action, graph_request_id=graph_request_id, message=message,
        before={"skuId": str(sku.sku_id), "disabledPlans": direct.disabled_plans, **(details or {})}, **audit,
    )


# Right after the connection failed


def settle_lost_assignment(error: GraphConnectionError, *, reservation: UserLicense, audit: dict) -> UserLicense:
    """Complete, release or mark unconfirmed a reservation whose assignLicense lost its response.

    Returns the confirmed license. Raises GraphRejected when Graph does not hold the assignment, and
    OutcomeUnknown when Graph cannot tell or holds the SKU with other disabled plans.
    """
    user, sku, pool = audit["user"], audit["sku"], audit["pool"]
    names = {"user": user.user_principal_name, "sku": sku.name}
    read_error = None
    try:
        held = read_direct_license(pool.tenant, user, sku)
    except GraphError as exc:
        held, read_error = None, exc

    if read_error is None and held is not None and _same_plans(held, reservation.disabled_plans):
        with transaction.atomic():
            confirm_assignment(
                reservation, audit=audit, graph_request_id=error.request_id,
                message=graph_messages.describe_assignment_confirmed(),
            )
        logger.info(
            "Assignment of %s to user %s in pool %s (tenant %s) lost its response; reading back confirmed it",
            sku.part_number, user.user_id, pool.pk, pool.tenant.tenant_id,
        )
        return reservation

    if read_error is None and held is None:
        message = graph_messages.describe_assignment_not_made(error, **names)
        with transaction.atomic():
            release_assignment(reservation, audit=audit, message=message, graph_request_id=error.request_id)
        logger.warning(
            "Assignment of %s to user %s in pool %s (tenant %s) lost its response; reading back found it not "
            "made, so the seat was released", sku.part_number, user.user_id, pool.pk, pool.tenant.tenant_id,
        )
        raise GraphRejected(message, graph_message=error.message, request_id=error.request_id) from error

    message = graph_messages.describe_assignment_unknown(error, read_failed=read_error is not None, **names)
    with transaction.atomic():
        reservation.state = LicenseState.ASSIGNMENT_UNCONFIRMED
        reservation.save(update_fields=["state"])
        record_event(
            action=AuditAction.LICENSE_ASSIGNED, outcome=Outcome.FAILED, message=message,
            after=_assignment_after(reservation), graph_request_id=error.request_id, **audit,
        )
    logger.warning(
        "Assignment of %s to user %s in pool %s (tenant %s) lost its response and reading back %s; the seat "
        "stays reserved until a sync settles it",
        sku.part_number, user.user_id, pool.pk, pool.tenant.tenant_id,
        f"failed: {read_error}" if read_error else "found other disabled plans",
    )
    raise OutcomeUnknown(message, graph_message=error.message, request_id=error.request_id) from error


def settle_lost_removal(
    error: GraphConnectionError, *, direct: UserLicense, audit: dict, action: AuditAction, details: dict,
    message: str = "",
) -> AuditEvent:
    """Complete, report or mark unconfirmed a removal whose assignLicense lost its response.

    Returns the removal's audit event. Raises GraphRejected when the user still holds the license, and
    OutcomeUnknown when Graph cannot tell.
    """
    user, sku, pool = audit["user"], audit["sku"], audit["pool"]
    names = {"user": user.user_principal_name, "sku": sku.name}
    try:
        held = read_direct_license(pool.tenant, user, sku)
    except GraphError as read_error:
        text = graph_messages.describe_removal_unknown(error, **names)
        with transaction.atomic():
            direct.state = LicenseState.REMOVAL_UNCONFIRMED
            direct.save(update_fields=["state"])
            record_event(
                action=action, outcome=Outcome.FAILED, message=text, before=details or None,
                graph_request_id=error.request_id, **audit,
            )
        logger.warning(
            "Removal of %s from user %s in pool %s (tenant %s) lost its response and reading back failed (%s); "
            "the seat stays counted until a sync settles it",
            sku.part_number, user.user_id, pool.pk, pool.tenant.tenant_id, read_error,
        )
        raise OutcomeUnknown(text, graph_message=error.message, request_id=error.request_id) from error

    if held is None:
        note = " ".join(part for part in (message, graph_messages.describe_removal_confirmed()) if part)
        with transaction.atomic():
            event = complete_removal(
                direct, audit=audit, action=action, details=details, message=note, graph_request_id=error.request_id
            )
        logger.info(
            "Removal of %s from user %s in pool %s (tenant %s) lost its response; reading back confirmed it",
            sku.part_number, user.user_id, pool.pk, pool.tenant.tenant_id,
        )
        return event

    text = graph_messages.describe_removal_not_made(error, **names)
    record_event(
        action=action, outcome=Outcome.FAILED, message=text, before=details or None,
        graph_request_id=error.request_id, **audit,
    )
    logger.warning(
        "Removal of %s from user %s in pool %s (tenant %s) lost its response; reading back found the license "
        "still held", sku.part_number, user.user_id, pool.pk, pool.tenant.tenant_id,
    )
    raise GraphRejected(text, graph_message=error.message, request_id=error.request_id) from error


# During a sync


def settle_unconfirmed_licenses(tenant: Tenant) -> int:
    """Settle the tenant's unconfirmed assignments and removals from what Graph holds now; return how many.

    A sync calls this before it reads the tenant. No request for these rows is in flight any more (the
    client does not resend assignLicense), so Graph's answer is final. Raises GraphError when Graph
    cannot be read; the rows then stay unconfirmed.
    """
    from graphsync.delta import fetch_changed_users_licenses

    rows = list(
        UserLicense.objects.filter(tenant=tenant, state__in=UNCONFIRMED_STATES).select_related("user__pool", "sku")
    )
    if not rows:
        return 0
    user_ids = sorted({str(row.user.user_id).lower() for row in rows})
    bodies = fetch_changed_users_licenses(GraphClient(tenant), user_ids)
    # Users missing from the answer no longer exist in Entra ID, and so hold no license.
    states_by_user = {str(body.get("id", "")).lower(): body.get("licenseAssignmentStates") or [] for body in bodies}
    for row in rows:
        held = direct_state(states_by_user.get(str(row.user.user_id).lower(), []), row.sku)
        _settle_row(tenant, row, held)
    return len(rows)


def _settle_row(tenant: Tenant, row: UserLicense, held: dict | None) -> None:
    removal = row.state == LicenseState.REMOVAL_UNCONFIRMED
    message = graph_messages.describe_sync_settlement(removal=removal, held=held is not None)
    audit = {"acting_user": None, "tenant": tenant, "pool": row.user.pool, "user": row.user, "sku": row.sku}
    with transaction.atomic():
        # An assignment's own read-back or another sync may have settled the row since it was listed.
        locked = UserLicense.objects.select_for_update().filter(pk=row.pk, state=row.state).first()
        if locked is None:
            return
        locked.user, locked.sku = row.user, row.sku
        if not removal and held is not None:
            locked.disabled_plans = list(held.get("disabledPlans") or [])
            confirm_assignment(locked, audit=audit, message=message)
        elif not removal:
            release_assignment(locked, audit=audit, message=message)
        elif held is None:
            complete_removal(locked, audit=audit, action=_removal_action(row), message=message)
        else:
            locked.state = str(held.get("state") or LicenseState.ACTIVE)
            locked.save(update_fields=["state"])
            record_event(action=_removal_action(row), outcome=Outcome.FAILED, message=message, **audit)
    logger.info(
        "Tenant %s: %s of %s for user %s settled by a sync: %s",
        tenant.tenant_id, "removal" if removal else "assignment", row.sku.part_number, row.user.user_id,
        "held" if held is not None else "not held",
    )


def _removal_action(row: UserLicense) -> AuditAction:
    """Return the action of the revocation or reclaim that left the row unconfirmed."""
    latest = (
        AuditEvent.objects.filter(
            target_user=row.user, sku=row.sku, action__in=[AuditAction.LICENSE_REVOKED, AuditAction.LICENSE_RECLAIMED]
        )
        .order_by("-pk")
        .values_list("action", flat=True)
        .first()
    )
    return AuditAction(latest) if latest else AuditAction.LICENSE_REVOKED
