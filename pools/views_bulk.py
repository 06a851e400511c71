"""Pages for assignment details, a pool's default usage location and bulk assign and revoke jobs.

Every object comes through ``rbac.scoping``; the rules live in ``pools.services``, ``pools.usage_location``
and ``pools.bulk``.
"""
from __future__ import annotations

import logging

from celery import current_app
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models.functions import Lower
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from graphsync.models import Sku, UserLicense
from rbac import scoping
from rbac.choices import Action

from . import bulk, recovery, services
from .choices import BulkJobKind, BulkJobStatus
from .exceptions import PoolsError
from .forms_bulk import (
    AssignDetailsForm, BulkRevokeConfirmForm, BulkSelectionForm, BulkUploadForm, DefaultUsageLocationForm,
)
from .usage_location import choose_usage_location, missing_usage_location_message, set_default_usage_location
from .views import disabled_account_confirmation

logger = logging.getLogger(__name__)

RECENT_JOBS_SHOWN = 10
JOB_ITEMS_SHOWN = 1000


def _form_errors(form) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


def _sku_from_query(request: HttpRequest, pool) -> Sku | None:
    sku_pk = request.GET.get("sku") or request.POST.get("sku")
    if not sku_pk or not str(sku_pk).isdigit():
        return None
    return Sku.objects.filter(tenant=pool.tenant, pk=int(sku_pk)).first()


# Assignment details


@login_required
@require_http_methods(["GET", "POST"])
def assign_details(request: HttpRequest, pool_pk: int, user_pk: int) -> HttpResponse:
    """Assign a SKU with chosen service plans turned off, or change the plans of a SKU the user holds."""
    pool = scoping.get_pool_or_404(request.user, Action.ASSIGN, pk=pool_pk)
    member = pool.members_queryset().filter(pk=user_pk).first()
    if member is None:
        raise Http404("No such user in this pool.")
    sku = _sku_from_query(request, pool)
    current = UserLicense.objects.filter(user=member, sku=sku, assigned_by_group="").first() if sku else None

    if request.method == "POST" and request.POST.get("show_plans"):
        # The Options button of the pool page posts its row's form here so that the CSRF token never
        # reaches a URL. Nothing is assigned: the page opens with the chosen SKU, or without one.
        url = reverse("pools:assign_details", kwargs={"pool_pk": pool.pk, "user_pk": member.pk})
        return redirect(f"{url}?sku={sku.pk}" if sku else url)
    if request.method == "POST":
        form = AssignDetailsForm(request.POST, pool=pool, sku=sku)
        if form.is_valid():
            sku = form.cleaned_data["sku"]
            cancel_url = reverse("pools:pool", kwargs={"pool_pk": pool.pk}) + f"#member-{member.pk}"
            confirmation = disabled_account_confirmation(request, pool, member, sku, cancel_url=cancel_url)
            if confirmation is not None:
                return confirmation
            try:
                services.assign_license(
                    acting_user=request.user, pool=pool, user=member, sku=sku,
                    disabled_plans=form.cleaned_data["disabled_plans"],
                )
            except PoolsError as exc:
                logger.info(
                    "Assigning %s to user %s in pool %s by %s failed: %s", sku.part_number, member.user_id, pool.pk,
                    request.user, exc.message,
                )
                messages.error(request, exc.message)
            else:
                if current is not None:
                    text = _("Changed the service plans of %(sku)s for %(user)s.")
                else:
                    text = _("Assigned %(sku)s to %(user)s.")
                messages.success(request, text % {"sku": sku.name, "user": member.user_principal_name})
                return redirect(reverse("pools:pool", kwargs={"pool_pk": pool.pk}) + f"#member-{member.pk}")
        else:
            messages.error(request, _form_errors(form))
    else:
        initial = {"sku": sku.pk if sku else None}
        if current is not None:
            initial["disabled_plans"] = [plan.lower() for plan in current.disabled_plans]
        form = AssignDetailsForm(initial=initial, pool=pool, sku=sku)

    usage_choice = choose_usage_location(member) if not member.usage_location else None
    context = {
        "pool": pool,
        "member": member,
        "sku": sku,
        "form": form,
        "current": current,
        "other_licenses": UserLicense.objects.filter(user=member).exclude(sku=sku).select_related("sku"),
        "usage_choice": usage_choice,
        "usage_problem": missing_usage_location_message(member, pool)
        if not member.usage_location and usage_choice is None else "",
    }
    return render(request, "pools/bulk/assign_details.html", context)


@login_required
@require_POST
def pool_usage_location(request: HttpRequest, pool_pk: int) -> HttpResponse:
    pool = scoping.get_pool_or_404(request.user, Action.ADMINISTER, pk=pool_pk)
    form = DefaultUsageLocationForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
    else:
        try:
            set_default_usage_location(
                acting_user=request.user, pool=pool, code=form.cleaned_data["default_usage_location"]
            )
        except PoolsError as exc:
            messages.error(request, exc.message)
        else:
            if pool.default_usage_location:
                messages.success(
                    request,
                    _("Members of %(pool)s without a usage location get %(code)s when they are licensed.")
                    % {"pool": pool, "code": pool.default_usage_location},
                )
            else:
                messages.success(request, _("Removed the default usage location of %(pool)s.") % {"pool": pool})
    return redirect(reverse("pools:pool", kwargs={"pool_pk": pool.pk}) + "#usage-location")


# Bulk jobs


def _start_job(request: HttpRequest, pool, *, sku, kind: str, names: list[str], disabled_plans=None) -> HttpResponse | None:
    try:
        job = bulk.create_bulk_job(
            acting_user=request.user, pool=pool, sku=sku, kind=kind, user_principal_names=names,
            disabled_plans=disabled_plans,
        )
    except PoolsError as exc:
        messages.error(request, exc.message)
        return None
    return redirect("pools:bulk_job", job_pk=job.pk)


@login_required
@require_POST
def bulk_selection(request: HttpRequest, pool_pk: int) -> HttpResponse:
    """Start a job for the members ticked on the pool page."""
    pool = scoping.get_pool_or_404(request.user, Action.ASSIGN, pk=pool_pk)
    form = BulkSelectionForm(request.POST, pool=pool)
    if not form.is_valid():
        if form.has_error("users", code="invalid_choice"):
            raise Http404("No such user in this pool.")
        messages.error(request, _form_errors(form))
        return redirect(reverse("pools:pool", kwargs={"pool_pk": pool.pk}) + "#members")
    users = form.cleaned_data["users"].order_by("user_principal_name")
    kind = form.cleaned_data["kind"]
    if kind == BulkJobKind.REVOKE and request.POST.get("confirmed") != "1":
        return _selection_revoke_confirmation(request, pool, sku=form.cleaned_data["sku"], users=users)
    names = [user.user_principal_name for user in users]
    response = _start_job(request, pool, sku=form.cleaned_data["sku"], kind=kind, names=names)
    return response or redirect(reverse("pools:pool", kwargs={"pool_pk": pool.pk}) + "#members")


def _selection_revoke_confirmation(request: HttpRequest, pool, *, sku: Sku, users) -> HttpResponse:
    """Render the confirmation page for revoking ``sku`` from the members ticked on the pool page."""
    direct = UserLicense.objects.filter(user__in=users, sku=sku, assigned_by_group="")
    context = {
        "pool": pool,
        "sku": sku,
        "user_pks": [user.pk for user in users],
        "licenses": direct.values("user_id").distinct().count(),
    }
    return render(request, "pools/bulk/selection_revoke_confirm.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def bulk_upload(request: HttpRequest, pool_pk: int) -> HttpResponse:
    """Start a job from an uploaded CSV of user principal names; also lists the pool's recent jobs."""
    pool = scoping.get_pool_or_404(request.user, Action.ASSIGN, pk=pool_pk)
    sku = _sku_from_query(request, pool)
    if request.method == "POST" and request.POST.get("confirmed") == "1":
        return _confirmed_revoke(request, pool)
    if request.method == "POST":
        form = BulkUploadForm(request.POST, request.FILES, pool=pool, sku=sku)
        if form.is_valid():
            try:
                users = bulk.parse_upn_csv(form.cleaned_data["file"].read())
            except PoolsError as exc:
                form.add_error("file", exc.message)
            else:
                if users.duplicates:
                    messages.warning(
                        request,
                        ngettext(
                            "This name appears more than once in the file and is processed once: %(names)s.",
                            "These names appear more than once in the file and are processed once: %(names)s.",
                            len(users.duplicates),
                        ) % {"names": ", ".join(users.duplicates)},
                    )
                kind = form.cleaned_data["kind"]
                if kind == BulkJobKind.REVOKE:
                    return _revoke_confirmation(request, pool, sku=form.cleaned_data["sku"], names=users.names)
                plans = form.cleaned_data["disabled_plans"] if kind == BulkJobKind.ASSIGN else None
                response = _start_job(
                    request, pool, sku=form.cleaned_data["sku"], kind=kind, names=users.names, disabled_plans=plans
                )
                if response is not None:
                    return response
    else:
        form = BulkUploadForm(initial={"sku": sku.pk if sku else None}, pool=pool, sku=sku)

    if request.htmx and request.htmx.target == "plan-choices":
        return render(request, "pools/bulk/_plans.html", {"form": form})
    jobs = pool.bulk_jobs.select_related("sku", "created_by").order_by("-created_at")[:RECENT_JOBS_SHOWN]
    return render(request, "pools/bulk/upload.html", {"pool": pool, "form": form, "jobs": jobs})


def _revoke_confirmation(request: HttpRequest, pool, *, sku: Sku, names: list[str]) -> HttpResponse:
    """Render the page that asks to confirm revoking ``sku`` from the users of an uploaded file."""
    members = (
        pool.members_queryset()
        .annotate(upn_lower=Lower("user_principal_name"))
        .filter(upn_lower__in=[name.lower() for name in names])
    )
    direct = UserLicense.objects.filter(user__in=members, sku=sku, assigned_by_group="")
    context = {
        "pool": pool,
        "sku": sku,
        "names": names,
        "names_text": "\n".join(names),
        "members": members.count(),
        "licenses": direct.values("user_id").distinct().count(),
    }
    return render(request, "pools/bulk/revoke_confirm.html", context)


def _confirmed_revoke(request: HttpRequest, pool) -> HttpResponse:
    """Start the revoke job that the administrator confirmed, from the names the confirmation page posted."""
    form = BulkRevokeConfirmForm(request.POST, pool=pool)
    if not form.is_valid():
        if form.has_error("sku"):
            raise Http404("No such SKU in this tenant.")
        messages.error(request, _form_errors(form))
        return redirect("pools:bulk_upload", pool_pk=pool.pk)
    response = _start_job(
        request, pool, sku=form.cleaned_data["sku"], kind=BulkJobKind.REVOKE, names=form.cleaned_data["names"]
    )
    return response or redirect("pools:bulk_upload", pool_pk=pool.pk)


def _job_context(job) -> dict:
    progress = bulk.job_progress(job)
    retries_automatically = not current_app.conf.task_always_eager
    return {
        "job": job,
        "progress": progress,
        "items": job.items.select_related("user").order_by("position")[:JOB_ITEMS_SHOWN],
        "items_hidden": max(progress["total"] - JOB_ITEMS_SHOWN, 0),
        # Tasks that run eagerly cannot be scheduled for later, so a waiting job runs again only when resumed
        # and its page has nothing to poll for.
        "is_active": job.status in (BulkJobStatus.QUEUED, BulkJobStatus.RUNNING)
        or (job.status == BulkJobStatus.WAITING and retries_automatically),
        "can_resume": job.status != BulkJobStatus.FINISHED and not bulk.is_runner_alive(job),
        "retries_automatically": retries_automatically,
    }


@login_required
@require_GET
def bulk_job(request: HttpRequest, job_pk: int) -> HttpResponse:
    """Render the job page. While the job runs, htmx polls it every second for the progress fragment."""
    job = bulk.get_job_or_404(request.user, Action.VIEW, job_pk)
    context = _job_context(job)
    if job.kind == BulkJobKind.RECLAIM:
        context["can_assign"] = recovery.can_reclaim(request.user, job.pool)
    else:
        context["can_assign"] = scoping.can(request.user, Action.ASSIGN, job.pool)
    if request.htmx and request.htmx.target == "job-progress":
        return render(request, "pools/bulk/_progress.html", context)
    return render(request, "pools/bulk/job.html", context)


@login_required
@require_POST
def bulk_job_resume(request: HttpRequest, job_pk: int) -> HttpResponse:
    # resume_bulk_job checks that the user may assign licenses, or for a reclaim job reclaim seats.
    job = bulk.get_job_or_404(request.user, Action.VIEW, job_pk)
    try:
        bulk.resume_bulk_job(acting_user=request.user, job=job)
    except PoolsError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Bulk job %(id)s is queued to resume.") % {"id": job.pk})
    return redirect("pools:bulk_job", job_pk=job.pk)


@login_required
@require_GET
def bulk_job_results(request: HttpRequest, job_pk: int) -> HttpResponse:
    """Download the per-user outcomes as CSV (UTF-8 with a byte order mark, for spreadsheet programs)."""
    job = bulk.get_job_or_404(request.user, Action.VIEW, job_pk)
    response = HttpResponse(("\ufeff" + bulk.results_csv(job)).encode("utf-8"), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="bulk-job-{job.pk}-results.csv"'
    return response
