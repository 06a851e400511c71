"""Seat recovery pages: reclaim candidates per pool, reclaiming one license or many, and exemptions.

Pools come through ``rbac.scoping`` (viewing) and ``pools.recovery.recoverable_pools`` (changing), so a pool
or user outside the user's scope raises Http404. POST views call ``pools.recovery``, report the outcome
through Django messages and redirect back, except bulk reclaim, which starts a background job and
redirects to its page of per-user outcomes.
"""
from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from graphsync.models import DirectoryUser, Sku
from rbac import scoping
from rbac.choices import Action

from . import recovery
from .bulk import MAX_JOB_USERS
from .exceptions import PoolsError
from .forms_recovery import BulkReclaimForm, ExemptionForm, ReclaimForm
from .models import Pool
from .reclaim_jobs import create_reclaim_job

logger = logging.getLogger(__name__)

# Candidates shown in the recovery section of the pool page; the recovery page lists them all.
SUMMARY_CANDIDATES = 10


def _form_errors(form) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


def _reclaim_pool(request: HttpRequest, pool_pk: int) -> Pool:
    pool = recovery.recoverable_pools(request.user).select_related("tenant", "parent").filter(pk=pool_pk).first()
    if pool is None:
        raise Http404("No such pool.")
    return pool


def _member_or_404(pool: Pool, user_pk: int) -> DirectoryUser:
    user = pool.members_queryset().select_related("pool").filter(pk=user_pk).first()
    if user is None:
        raise Http404("No such user in this pool.")
    return user


def _back(pool: Pool, return_to: str = "") -> HttpResponseRedirect:
    if return_to == "pool":
        return HttpResponseRedirect(reverse("pools:pool", kwargs={"pool_pk": pool.pk}) + "#recovery")
    return HttpResponseRedirect(reverse("pools:pool_recovery", kwargs={"pool_pk": pool.pk}))


def _context(request: HttpRequest, pool: Pool) -> dict:
    can_reclaim = recovery.can_reclaim(request.user, pool)
    return {
        "pool": pool,
        "report": recovery.pool_report(pool),
        "can_reclaim": can_reclaim,
        "exemption_form": ExemptionForm() if can_reclaim else None,
        "has_children": pool.children.filter(is_active=True).exists(),
    }


@login_required
@require_GET
def pool_recovery(request: HttpRequest, pool_pk: int) -> HttpResponse:
    pool = scoping.get_pool_or_404(request.user, Action.VIEW, pk=pool_pk)
    return render(request, "pools/recovery/pool_recovery.html", _context(request, pool))


@login_required
@require_GET
def recovery_summary(request: HttpRequest, pool_pk: int) -> HttpResponse:
    """Render the recovery section of the pool page, loaded separately so the pool page does not wait for it."""
    pool = scoping.get_pool_or_404(request.user, Action.VIEW, pk=pool_pk)
    context = _context(request, pool)
    context["shown"] = context["report"].candidates[:SUMMARY_CANDIDATES]
    context["return_to"] = "pool"
    return render(request, "pools/recovery/_summary.html", context)


@login_required
@require_POST
def reclaim(request: HttpRequest, pool_pk: int) -> HttpResponse:
    pool = _reclaim_pool(request, pool_pk)
    form = ReclaimForm(request.POST)
    if not form.is_valid():
        raise Http404("No such user or SKU in this pool.")
    user = _member_or_404(pool, form.cleaned_data["user"])
    sku = Sku.objects.filter(tenant=pool.tenant, pk=form.cleaned_data["sku"]).first()
    if sku is None:
        raise Http404("No such SKU in this tenant.")
    if request.POST.get("confirmed") != "1":
        confirmation = _reclaim_confirmation(request, pool, user, sku, form.cleaned_data.get("return_to", ""))
        if confirmation is not None:
            return confirmation
    try:
        recovery.reclaim_license(acting_user=request.user, pool=pool, user=user, sku=sku)
    except PoolsError as exc:
        logger.info("Reclaim of %s from user %s in pool %s by %s rejected: %s", sku.part_number, user.user_id, pool.pk,
                    request.user.get_username(), exc.message)
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("Reclaimed %(sku)s from %(user)s; the seat is spare in pool %(pool)s again.")
            % {"sku": sku.name, "user": user.user_principal_name, "pool": str(user.pool)},
        )
    return _back(pool, form.cleaned_data.get("return_to", ""))


def _reclaim_confirmation(
    request: HttpRequest, pool: Pool, user: DirectoryUser, sku: Sku, return_to: str
) -> HttpResponse | None:
    """Render the page that asks to confirm reclaiming one license.

    Returns None when the reclaim would be rejected anyway, so that the service's message explains why.
    """
    candidate = recovery.evaluate_user(pool, user)
    held_license = candidate.held(sku) if candidate is not None and candidate.exemption is None else None
    if held_license is None or not held_license.reclaimable:
        return None
    context = {"pool": pool, "candidate": candidate, "sku": sku, "return_to": return_to}
    return render(request, "pools/recovery/reclaim_confirm.html", context)


def _bulk_reclaim_confirmation(request: HttpRequest, pool: Pool, user_pks: list[int]) -> HttpResponse:
    """Render the page that asks to confirm a bulk reclaim, with the licenses it would reclaim now."""
    user_pks = list(dict.fromkeys(user_pks))
    selected = set(user_pks)
    candidates = [candidate for candidate in recovery.pool_report(pool).candidates if candidate.user.pk in selected]
    context = {
        "pool": pool,
        "user_pks": user_pks,
        "candidates": [candidate for candidate in candidates if candidate.reclaimable_licenses],
        "licenses": sum(len(candidate.reclaimable_licenses) for candidate in candidates),
        "without_licenses": len(user_pks) - sum(1 for candidate in candidates if candidate.reclaimable_licenses),
    }
    return render(request, "pools/recovery/bulk_reclaim_confirm.html", context)


@login_required
@require_POST
def bulk_reclaim(request: HttpRequest, pool_pk: int) -> HttpResponse:
    pool = _reclaim_pool(request, pool_pk)
    form = BulkReclaimForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return _back(pool)
    user_pks = form.cleaned_data["users"]
    # An empty or oversized selection goes straight to create_reclaim_job, which explains what to do.
    if request.POST.get("confirmed") != "1" and 0 < len(set(user_pks)) <= MAX_JOB_USERS:
        return _bulk_reclaim_confirmation(request, pool, user_pks)
    try:
        job = create_reclaim_job(acting_user=request.user, pool=pool, user_pks=form.cleaned_data["users"])
    except PoolsError as exc:
        logger.info("Bulk reclaim in pool %s by %s rejected: %s", pool.pk, request.user.get_username(), exc.message)
        messages.error(request, exc.message)
        return _back(pool)
    return redirect("pools:bulk_job", job_pk=job.pk)


@login_required
@require_POST
def exemption_add(request: HttpRequest, pool_pk: int) -> HttpResponse:
    pool = _reclaim_pool(request, pool_pk)
    form = ExemptionForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return _back(pool, request.POST.get("return_to", ""))
    name = form.cleaned_data["user_principal_name"]
    user = pool.members_queryset().select_related("pool").filter(user_principal_name__iexact=name).first()
    if user is None:
        logger.info("Exemption in pool %s by %s rejected: no member %s", pool.pk, request.user.get_username(), name)
        messages.error(
            request,
            _("No member of pool %(pool)s has the user principal name %(upn)s. Check the spelling, or run a sync if "
              "the user joined the pool recently.") % {"pool": str(pool), "upn": name},
        )
        return _back(pool, form.cleaned_data.get("return_to", ""))
    try:
        recovery.add_exemption(acting_user=request.user, pool=pool, user=user, reason=form.cleaned_data["reason"])
    except PoolsError as exc:
        logger.info("Exemption of user %s in pool %s by %s rejected: %s", user.user_id, pool.pk,
                    request.user.get_username(), exc.message)
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("%(user)s is exempt from reclaiming and no longer listed as a candidate.")
            % {"user": user.user_principal_name},
        )
    return _back(pool, form.cleaned_data.get("return_to", ""))


@login_required
@require_POST
def exemption_remove(request: HttpRequest, pool_pk: int, user_pk: int) -> HttpResponse:
    pool = _reclaim_pool(request, pool_pk)
    user = _member_or_404(pool, user_pk)
    recovery.remove_exemption(acting_user=request.user, pool=pool, user=user)
    messages.success(
        request,
        _("Removed the exemption of %(user)s; the user is listed again when a reason to reclaim applies.")
        % {"user": user.user_principal_name},
    )
    return _back(pool, request.POST.get("return_to", ""))
