"""Seat requests: a pool manager asks for more seats of a SKU, a tenant administrator approves or declines.

Approval raises the pool's allotment out of the central reserve (``stock.CentralReserve``: the seats not in use
and not promised to any level-1 pool) and is rejected when the reserve does not cover it. Each decision locks
the request row and checks that it is still pending, so two administrators cannot both decide it. The requester is e-mailed on a decision when their account has an e-mail address, and the
tenant administrators who have one on a new request. Requests and decisions also show in the portal.
"""
from __future__ import annotations

import logging
import smtplib

from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from guardian.shortcuts import get_objects_for_user, get_users_with_perms

from graphsync.models import Sku, Tenant
from licensepools.links import portal_url
from rbac import scoping
from rbac.choices import Action

from . import capacity
from .audit import record_event
from .choices import AuditAction, RequestStatus
from .exceptions import PoolsError
from .models import Pool, SeatRequest

logger = logging.getLogger(__name__)

MAX_REASON_LENGTH = 2000
# Tenant-wide and pool permissions that let a user request seats; license operators only assign and revoke.
REQUEST_TENANT_PERMISSIONS = ["graphsync.administer_tenant", "graphsync.manage_pools"]
REQUEST_POOL_PERMISSIONS = ["pools.manage_pool"]


class SeatRequestError(PoolsError):
    """A seat request that cannot be created or decided as asked."""


# Scope


def requestable_pools(user: AbstractBaseUser) -> QuerySet[Pool]:
    """Active pools in which the user may request seats: pools the user manages, and their level-2 pools.

    Starts from the scoping path's assignable pools and keeps those granted by a manager permission.
    """
    pools = scoping.pools_for(user, Action.ASSIGN)
    if not user.is_authenticated:
        return pools
    tenants = get_objects_for_user(
        user, REQUEST_TENANT_PERMISSIONS, klass=Tenant, any_perm=True, accept_global_perms=False
    ).values("pk")
    managed = get_objects_for_user(
        user, REQUEST_POOL_PERMISSIONS, klass=Pool, any_perm=True, accept_global_perms=False
    ).values("pk")
    return pools.filter(Q(tenant__in=tenants) | Q(pk__in=managed) | Q(parent__in=managed))


def visible_requests(user: AbstractBaseUser) -> QuerySet[SeatRequest]:
    """Requests of tenants the user administers or audits, and of pools the user may view."""
    tenants = scoping.tenants_with_tenant_permission(user, Action.AUDIT).values("pk")
    pools = scoping.pools_for(user, Action.VIEW).values("pk")
    return SeatRequest.objects.filter(Q(tenant__in=tenants) | Q(pool__in=pools)).select_related(
        "tenant", "pool", "pool__parent", "sku", "requested_by", "decided_by"
    )


def pending_count(user: AbstractBaseUser, tenant: Tenant) -> int:
    """Count the tenant's pending requests when the user administers it, else 0."""
    if not scoping.can_administer_tenant(user, tenant):
        return 0
    return SeatRequest.objects.filter(tenant=tenant, status=RequestStatus.PENDING).count()


def tenant_administrators(tenant: Tenant) -> list[AbstractBaseUser]:
    """Active portal users holding ``administer_tenant`` on the tenant, directly or through a group."""
    users = get_users_with_perms(tenant, only_with_perms_in=["administer_tenant"], with_group_users=True)
    return list(users.filter(is_active=True).order_by("pk"))


# Creating and withdrawing


def create_request(
    *, acting_user: AbstractBaseUser, pool: Pool, sku: Sku, quantity: int, reason: str
) -> SeatRequest:
    """Ask for ``quantity`` more seats of ``sku`` for ``pool`` and e-mail the tenant administrators."""
    if not requestable_pools(acting_user).filter(pk=pool.pk).exists():
        raise Http404("No such pool.")
    if sku.tenant_id != pool.tenant_id:
        raise Http404("No such SKU in this tenant.")
    reason = (reason or "").strip()
    if quantity is None or quantity < 1:
        raise SeatRequestError(
            _("Request at least 1 seat; %(quantity)s was given.") % {"quantity": quantity}
        )
    if not reason:
        raise SeatRequestError(_("Give a reason, so that the tenant administrators can decide the request."))
    if len(reason) > MAX_REASON_LENGTH:
        raise SeatRequestError(
            _("The reason has %(length)s characters; shorten it to at most %(limit)s.")
            % {"length": len(reason), "limit": MAX_REASON_LENGTH}
        )

    _check_no_pending_request(pool, sku)

    try:
        with transaction.atomic():
            request = SeatRequest.objects.create(
                tenant=pool.tenant, pool=pool, sku=sku, quantity=quantity, reason=reason, requested_by=acting_user
            )
            record_event(
                acting_user=acting_user, action=AuditAction.REQUEST_CREATED, tenant=pool.tenant, pool=pool, sku=sku,
                target=str(pool), after={"request": request.pk, "quantity": quantity, "reason": reason},
            )
            transaction.on_commit(lambda: _notify_administrators(request))
    except IntegrityError:
        # A concurrent submit created the pending request first; the partial unique constraint refused this one.
        _check_no_pending_request(pool, sku)
        raise
    logger.info(
        "Seat request %s: %s x %s for pool %s (tenant %s) by %s",
        request.pk, quantity, sku.part_number, pool.pk, pool.tenant_id, acting_user.get_username(),
    )
    return request


def _check_no_pending_request(pool: Pool, sku: Sku) -> None:
    """Raise SeatRequestError when ``pool`` already has a pending request for ``sku``."""
    pending = (
        SeatRequest.objects.filter(pool=pool, sku=sku, status=RequestStatus.PENDING)
        .select_related("requested_by").first()
    )
    if pending is None:
        return
    requester = pending.requested_by.get_username() if pending.requested_by else _("a deleted user")
    raise SeatRequestError(
        _("%(pool)s already has a pending request (ID %(id)s) for %(quantity)s seats of %(sku)s, made on "
          "%(requested_at)s by %(requester)s. A pool has one pending request per SKU: wait for the tenant "
          "administrators to decide it, or withdraw it and request the seats you need now.")
        % {
            "pool": str(pool), "id": pending.pk, "quantity": pending.quantity, "sku": sku.name,
            "requested_at": timezone.localtime(pending.requested_at).strftime("%Y-%m-%d %H:%M"),
            "requester": requester,
        }
    )


def withdraw_request(*, acting_user: AbstractBaseUser, seat_request: SeatRequest) -> SeatRequest:
    """Withdraw a pending request; only the user who made it may."""
    if not visible_requests(acting_user).filter(pk=seat_request.pk).exists():
        raise Http404("No such seat request.")
    with transaction.atomic():
        seat_request = _lock_pending(seat_request)
        if seat_request.requested_by_id != acting_user.pk:
            raise SeatRequestError(_("Only the user who made a request can withdraw it."))
        seat_request.status = RequestStatus.WITHDRAWN
        seat_request.decided_by = acting_user
        seat_request.decided_at = timezone.now()
        seat_request.save(update_fields=["status", "decided_by", "decided_at"])
        _record_decision(acting_user, seat_request, AuditAction.REQUEST_WITHDRAWN)
    logger.info("Seat request %s (tenant %s) withdrawn", seat_request.pk, seat_request.tenant_id)
    return seat_request


# Deciding


def approve_request(*, acting_user: AbstractBaseUser, seat_request: SeatRequest, note: str = "") -> SeatRequest:
    """Approve a pending request: raise the pool's allotment by the requested seats out of the central reserve."""
    _check_administrator(acting_user, seat_request)
    with transaction.atomic():
        seat_request = _lock_pending(seat_request)
        pool = Pool.objects.select_related("tenant", "parent").get(pk=seat_request.pool_id)
        if not pool.is_active:
            raise SeatRequestError(
                _("The pool %(pool)s no longer exists under the current pool scheme; decline the request instead.")
                % {"pool": str(pool)}
            )
        # Allotment changes of this SKU wait here, so approvals and purchases cannot spend the same reserve.
        sku = Sku.objects.select_for_update().get(pk=seat_request.sku_id)
        plan = capacity.plan_raise(pool, sku, seat_request.quantity)
        if not plan.fits:
            raise SeatRequestError(_approval_rejection(plan))
        capacity.apply_raise(plan, acting_user=acting_user)

        seat_request.status = RequestStatus.APPROVED
        seat_request.decided_by = acting_user
        seat_request.decided_at = timezone.now()
        seat_request.decision_reason = (note or "").strip()
        seat_request.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
        _record_decision(
            acting_user, seat_request, AuditAction.REQUEST_APPROVED,
            before={"allotments": plan.audit_before()}, allotments=plan.audit_after(),
        )
        transaction.on_commit(lambda: _notify_requester(seat_request))
    logger.info(
        "Seat request %s approved: %s x %s for pool %s (tenant %s)",
        seat_request.pk, seat_request.quantity, sku.part_number, pool.pk, pool.tenant_id,
    )
    return seat_request


def decline_request(*, acting_user: AbstractBaseUser, seat_request: SeatRequest, reason: str) -> SeatRequest:
    """Decline a pending request with a reason, which the requester receives by e-mail if they have an address."""
    _check_administrator(acting_user, seat_request)
    reason = (reason or "").strip()
    if not reason:
        raise SeatRequestError(_("Give a reason for declining, so that the requester knows what to do next."))
    if len(reason) > MAX_REASON_LENGTH:
        raise SeatRequestError(
            _("The reason has %(length)s characters; shorten it to at most %(limit)s.")
            % {"length": len(reason), "limit": MAX_REASON_LENGTH}
        )
    with transaction.atomic():
        seat_request = _lock_pending(seat_request)
        seat_request.status = RequestStatus.DECLINED
        seat_request.decided_by = acting_user
        seat_request.decided_at = timezone.now()
        seat_request.decision_reason = reason
        seat_request.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
        _record_decision(acting_user, seat_request, AuditAction.REQUEST_DECLINED)
        transaction.on_commit(lambda: _notify_requester(seat_request))
    logger.info("Seat request %s (tenant %s) declined", seat_request.pk, seat_request.tenant_id)
    return seat_request


def _check_administrator(acting_user: AbstractBaseUser, seat_request: SeatRequest) -> None:
    if not scoping.can_administer_tenant(acting_user, seat_request.tenant):
        raise Http404("No such seat request.")


def _lock_pending(seat_request: SeatRequest) -> SeatRequest:
    """Lock the request row and return it fresh; raise SeatRequestError when it was already decided."""
    locked = (
        SeatRequest.objects.select_for_update(of=("self",))
        .select_related("tenant", "pool", "pool__parent", "sku", "requested_by", "decided_by")
        .get(pk=seat_request.pk)
    )
    if locked.status != RequestStatus.PENDING:
        decided_by = locked.decided_by.get_username() if locked.decided_by else _("someone")
        raise SeatRequestError(
            _("This request is already %(status)s (by %(user)s); it can no longer be changed.")
            % {"status": locked.get_status_display().lower(), "user": decided_by}
        )
    return locked


def _approval_rejection(plan: capacity.AllotmentRaise) -> str:
    names = {
        "quantity": plan.quantity, "sku": plan.sku.name, "pool": str(plan.pool), "needed": plan.from_reserve,
        "reserve": plan.reserve, "parts": capacity.describe_reserve(plan.central),
        "status": plan.sku.get_capability_status_display(),
    }
    if plan.central.is_blocked:
        return _(
            "Cannot approve %(quantity)s seats of %(sku)s for %(pool)s: the SKU is %(status)s in the tenant, so no "
            "seat can be assigned. Renew the subscription in the Microsoft 365 admin center and run a sync, or "
            "decline the request."
        ) % names
    return _(
        "Cannot approve %(quantity)s seats of %(sku)s for %(pool)s: this needs %(needed)s seats from the central "
        "reserve, which has %(reserve)s: %(parts)s. Buy more seats, lower another pool's unused allotment, or "
        "decline the request."
    ) % names


def _record_decision(acting_user, seat_request: SeatRequest, action: AuditAction, *, before=None, allotments=None):
    after = {
        "request": seat_request.pk,
        "status": seat_request.status,
        "quantity": seat_request.quantity,
        "reason": seat_request.decision_reason,
    }
    if allotments is not None:
        after["allotments"] = allotments
    record_event(
        acting_user=acting_user, action=action, tenant=seat_request.tenant, pool=seat_request.pool,
        sku=seat_request.sku, target=str(seat_request.pool), before=before or {"status": RequestStatus.PENDING},
        after=after,
    )


# Notifications


def _absolute(path: str) -> str:
    """Return the absolute URL of ``path`` under the ``PORTAL_BASE_URL`` setting, for links in e-mails."""
    return portal_url(path)


def _send(subject: str, body: str, recipients: list[str], *, seat_request: SeatRequest) -> None:
    if not recipients:
        logger.warning(
            "Seat request %s (tenant %s): no recipient with an e-mail address for %r",
            seat_request.pk, seat_request.tenant_id, subject,
        )
        return
    try:
        send_mail(subject, body, None, recipients)
    except (smtplib.SMTPException, OSError) as exc:
        # The request is saved and shown in the portal; a mail failure must not undo it.
        logger.error(
            "Seat request %s (tenant %s): sending %r to %s failed: %s",
            seat_request.pk, seat_request.tenant_id, subject, recipients, exc,
        )


def _notify_administrators(seat_request: SeatRequest) -> None:
    recipients = [user.email for user in tenant_administrators(seat_request.tenant) if user.email]
    names = {
        "user": seat_request.requested_by.get_username() if seat_request.requested_by else _("a pool manager"),
        "quantity": seat_request.quantity,
        "sku": seat_request.sku.name,
        "pool": str(seat_request.pool),
        "tenant": seat_request.tenant.name,
        "reason": seat_request.reason,
        "url": _absolute(reverse("pools:tenant_requests", kwargs={"tenant_pk": seat_request.tenant_id})),
    }
    subject = _("Seat request: %(quantity)s × %(sku)s for %(pool)s") % names
    body = _(
        "%(user)s asks for %(quantity)s more seats of %(sku)s for the pool %(pool)s in %(tenant)s.\n\n"
        "Reason: %(reason)s\n\nApprove or decline it at %(url)s"
    ) % names
    _send(subject, body, recipients, seat_request=seat_request)


def _notify_requester(seat_request: SeatRequest) -> None:
    requester = seat_request.requested_by
    recipients = [requester.email] if requester is not None and requester.email else []
    names = {
        "quantity": seat_request.quantity,
        "sku": seat_request.sku.name,
        "pool": str(seat_request.pool),
        "user": seat_request.decided_by.get_username() if seat_request.decided_by else "",
        "reason": seat_request.decision_reason,
        "url": _absolute(reverse("pools:pool_requests", kwargs={"pool_pk": seat_request.pool_id})),
    }
    if seat_request.status == RequestStatus.APPROVED:
        subject = _("Approved: %(quantity)s × %(sku)s for %(pool)s") % names
        body = _(
            "%(user)s approved your request for %(quantity)s more seats of %(sku)s for %(pool)s. The pool's "
            "allotment has been raised.\n\nSee %(url)s"
        ) % names
        if seat_request.decision_reason:
            body += "\n\n" + _("Note: %(reason)s") % names
    else:
        subject = _("Declined: %(quantity)s × %(sku)s for %(pool)s") % names
        body = _(
            "%(user)s declined your request for %(quantity)s more seats of %(sku)s for %(pool)s.\n\n"
            "Reason: %(reason)s\n\nSee %(url)s"
        ) % names
    _send(subject, body, recipients, seat_request=seat_request)
