"""Server-rendered pages: overview, tenant administration, and the pool page with members.

Every object comes through ``rbac.scoping``, so an object outside the user's scope raises Http404. POST
views call ``pools.services``, report the outcome through Django messages and redirect back.
"""
from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Prefetch, Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from graphsync.choices import SyncStatus
from graphsync.models import DirectoryGroup, Sku, SyncRun, UserLicense
from graphsync.services import request_sync
from rbac import scoping
from rbac.choices import Action

from . import inactive_pools, services, stock, views_inactive
from .exceptions import PoolsError
from .forms import (
    AllotmentForm, AssignForm, MemberSearchForm, RenamePoolForm, RevokeForm, SchemeForm, assignable_skus,
)
from .models import Allotment, Pool, PoolScheme
from .overview import pool_tree, tenants_in_scope

logger = logging.getLogger(__name__)

MEMBERS_PER_PAGE = 50
SYNC_RUNS_SHOWN = 10


def _form_errors(form) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


# Overview


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "pools/home.html", {"scopes": tenants_in_scope(request.user, with_usage=True)})


# Tenant administration


@login_required
@require_GET
def tenant_detail(request: HttpRequest, tenant_pk: int) -> HttpResponse:
    tenant = scoping.get_tenant_or_404(request.user, Action.ADMINISTER, pk=tenant_pk)
    scheme = PoolScheme.objects.filter(tenant=tenant).first()
    # The form leads to the preview, which lists the users, licenses and pools a change would move;
    # the scheme changes only when the administrator confirms there.
    initial = {"level1_attribute": scheme.level1_attribute, "level2_attribute": scheme.level2_attribute} if scheme else {}
    form = SchemeForm(initial=initial)

    pools = scoping.pools_for(request.user, Action.VIEW).filter(tenant=tenant).select_related("parent")
    context = {
        "tenant": tenant,
        "scheme": scheme,
        "scheme_form": form,
        "stock": stock.tenant_stock(tenant),
        "sync_runs": tenant.sync_runs.order_by("-queued_at")[:SYNC_RUNS_SHOWN],
        "pool_tree": pool_tree(tenant, pools, with_usage=True),
        "stranded_pools": inactive_pools.stranded_pools(tenant),
    }
    return render(request, "pools/tenant_detail.html", context)


@login_required
@require_POST
def tenant_sync(request: HttpRequest, tenant_pk: int) -> HttpResponse:
    tenant = scoping.get_tenant_or_404(request.user, Action.ADMINISTER, pk=tenant_pk)
    run = request_sync(tenant, acting_user=request.user)
    logger.info("Sync run %s of tenant %s queued by %s", run.pk, tenant.pk, request.user.get_username())
    _report_sync_request(request, run)
    return redirect("pools:tenant", tenant_pk=tenant.pk)


def _report_sync_request(request: HttpRequest, run: SyncRun) -> None:
    """Add a message with the state of a requested sync run.

    Without a broker Celery runs the task eagerly inside ``request_sync``, so the run may have
    finished before this view responds. Its outcome is then reported instead of "queued".
    """
    run.refresh_from_db(fields=["status", "users_count", "error_message"])
    if run.status == SyncStatus.SUCCEEDED:
        message = ngettext(
            "Sync finished: %(users)s user synced.", "Sync finished: %(users)s users synced.", run.users_count
        )
        messages.success(request, message % {"users": run.users_count})
    elif run.status == SyncStatus.FAILED:
        messages.error(request, _("Sync failed: %(error)s") % {"error": run.error_message})
    elif run.status == SyncStatus.SKIPPED:
        messages.warning(request, run.error_message)
    else:
        messages.success(request, _("Sync queued. Reload this page to follow its progress."))


# Pool page


def _members_page(request: HttpRequest, pool: Pool, search: MemberSearchForm):
    members = pool.members_queryset().select_related("pool").prefetch_related(
        Prefetch("licenses", queryset=UserLicense.objects.select_related("sku").order_by("sku__display_name"))
    )
    if search.is_valid():
        query = search.cleaned_data["q"]
        if query:
            members = members.filter(Q(display_name__icontains=query) | Q(user_principal_name__icontains=query))
    else:
        # Listing every member would look like the result of the search, so list none and let the
        # template show the form's error. The typed text stays in the box, without NUL characters.
        query = search.data.get("q", "").replace("\x00", "")
        members = members.none()
    page = Paginator(members.order_by("display_name", "user_principal_name"), MEMBERS_PER_PAGE).get_page(
        request.GET.get("page")
    )

    # Name the group behind each inherited license. A group missing from the mirror shows its ID instead.
    group_ids = {
        user_license.assigned_by_group
        for member in page
        for user_license in member.licenses.all()
        if user_license.assigned_by_group
    }
    group_names = {
        str(group_id): name
        for group_id, name in DirectoryGroup.objects.filter(tenant=pool.tenant, group_id__in=group_ids).values_list(
            "group_id", "display_name"
        )
    }
    for member in page:
        for user_license in member.licenses.all():
            user_license.group_name = group_names.get(user_license.assigned_by_group) or user_license.assigned_by_group
    return page, query


def _allotment_rows(pool: Pool) -> list[dict]:
    current = dict(Allotment.objects.filter(pool=pool).values_list("sku_id", "seats"))
    rows = []
    for sku in Sku.objects.filter(tenant=pool.tenant).order_by("display_name", "part_number"):
        seats = current.get(sku.pk)
        # Each row is its own form, so auto_id keeps the element ids unique on the page.
        form = AllotmentForm(pool=pool, initial={"sku": sku.pk, "seats": seats}, auto_id=f"id_sku{sku.pk}_%s")
        rows.append({"sku": sku, "seats": seats, "form": form})
    return rows


@login_required
@require_GET
def pool_detail(request: HttpRequest, pool_pk: int) -> HttpResponse:
    try:
        pool = scoping.get_pool_or_404(request.user, Action.VIEW, pk=pool_pk)
    except Http404:
        # Tenant administrators still open an inactive pool, read-only, and everyone else gets 404 from it too.
        return views_inactive.inactive_pool_page(request, pool_pk)
    search = MemberSearchForm(request.GET)
    members, query = _members_page(request, pool, search)
    can_assign = scoping.can(request.user, Action.ASSIGN, pool)
    context = {
        "pool": pool,
        # A manager granted only a level-2 pool cannot open its parent, so the breadcrumb names it unlinked.
        "can_view_parent": pool.parent_id is not None and scoping.can_on_pool(request.user, Action.VIEW, pool.parent),
        "members": members,
        "query": query,
        "search_form": search,
        "can_assign": can_assign,
        "has_children": pool.children.filter(is_active=True).exists(),
        "assignable_skus": list(assignable_skus(pool.tenant)) if can_assign else [],
    }
    if request.htmx and request.htmx.target == "members":
        return render(request, "pools/_members.html", context)

    can_administer = scoping.can_administer_tenant(request.user, pool.tenant)
    context.update(
        {
            "lines": stock.pool_lines(pool),
            "can_administer": can_administer,
            "allotment_rows": _allotment_rows(pool) if can_administer else [],
            "rename_form": RenamePoolForm(initial={"name": pool.name_override}) if can_administer else None,
        }
    )
    return render(request, "pools/pool_detail.html", context)


def _back_to_pool(request: HttpRequest, pool: Pool, anchor: str = "") -> HttpResponseRedirect:
    """Redirect to the pool page, keeping the member search and page the form was posted from."""
    params = {key: request.POST[key] for key in ("q", "page") if request.POST.get(key)}
    url = reverse("pools:pool", kwargs={"pool_pk": pool.pk})
    if params:
        url = f"{url}?{urlencode(params)}"
    if anchor:
        url = f"{url}#{anchor}"
    return HttpResponseRedirect(url)


@login_required
@require_POST
def pool_allot(request: HttpRequest, pool_pk: int) -> HttpResponse:
    pool = scoping.get_pool_or_404(request.user, Action.ADMINISTER, pk=pool_pk)
    form = AllotmentForm(request.POST, pool=pool)
    if not form.is_valid():
        if form.has_error("sku"):
            raise Http404("No such SKU in this tenant.")
        messages.error(request, _form_errors(form))
        return _back_to_pool(request, pool, anchor="allotments")

    sku, seats = form.cleaned_data["sku"], form.cleaned_data["seats"]
    try:
        services.set_allotment(acting_user=request.user, pool=pool, sku=sku, seats=seats)
    except PoolsError as exc:
        logger.info("Allotment of %s in pool %s by %s rejected: %s", sku.part_number, pool.pk, request.user, exc.message)
        messages.error(request, exc.message)
    else:
        if seats is None:
            messages.success(request, _("Removed the allotment of %(sku)s.") % {"sku": sku.name})
        else:
            message = ngettext(
                "Allotted %(seats)s seat of %(sku)s to %(pool)s.", "Allotted %(seats)s seats of %(sku)s to %(pool)s.", seats
            )
            messages.success(request, message % {"seats": seats, "sku": sku.name, "pool": pool})
            _warn_if_over(request, pool, sku)
    return _back_to_pool(request, pool, anchor="allotments")


def _warn_if_over(request: HttpRequest, pool, sku: Sku) -> None:
    """Say when the pool's members already hold more of ``sku`` than the allotment just set."""
    warning = services.over_allotment_warning(pool, sku)
    if warning:
        messages.warning(request, warning)


@login_required
@require_POST
def pool_rename(request: HttpRequest, pool_pk: int) -> HttpResponse:
    pool = scoping.get_pool_or_404(request.user, Action.ADMINISTER, pk=pool_pk)
    form = RenamePoolForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return _back_to_pool(request, pool)
    try:
        pool = services.rename_pool(acting_user=request.user, pool=pool, name=form.cleaned_data["name"])
    except PoolsError as exc:
        logger.info("Renaming pool %s (tenant %s) by %s rejected: %s", pool.pk, pool.tenant_id, request.user, exc.message)
        messages.error(request, exc.message)
        return _back_to_pool(request, pool, anchor="rename")
    messages.success(request, _("The pool is now called %(name)s.") % {"name": pool.name})
    return _back_to_pool(request, pool)


def _license_change(request: HttpRequest, pool_pk: int, form_class) -> tuple[Pool, dict | None]:
    """Load the pool and the posted member and SKU, raising Http404 for a member outside the pool."""
    pool = scoping.get_pool_or_404(request.user, Action.ASSIGN, pk=pool_pk)
    form = form_class(request.POST, pool=pool)
    if form.is_valid():
        return pool, form.cleaned_data
    if form.has_error("user"):
        raise Http404("No such user in this pool.")
    messages.error(request, _form_errors(form))
    return pool, None


def disabled_account_confirmation(
    request: HttpRequest, pool: Pool, member, sku: Sku, *, cancel_url: str
) -> HttpResponse | None:
    """Render a confirmation page before a new seat goes to a disabled account, or return None to go ahead.

    The page posts the request's fields back to the same URL with ``confirm_disabled=1``. A license the
    member already holds directly takes no new seat, so changing it needs no confirmation.
    """
    warning = services.disabled_account_warning(member)
    if warning is None or request.POST.get("confirm_disabled") == "1":
        return None
    if UserLicense.objects.filter(user=member, sku=sku, assigned_by_group="").exists():
        return None
    fields = [
        (name, value)
        for name in request.POST
        if name != "csrfmiddlewaretoken"
        for value in request.POST.getlist(name)
    ]
    context = {
        "pool": pool,
        "member": member,
        "sku": sku,
        "warning": warning,
        "action": request.get_full_path(),
        "fields": fields,
        "cancel_url": cancel_url,
    }
    return render(request, "pools/assign_disabled_confirm.html", context)


@login_required
@require_POST
def license_assign(request: HttpRequest, pool_pk: int) -> HttpResponse:
    pool, data = _license_change(request, pool_pk, AssignForm)
    if data is None:
        return _back_to_pool(request, pool, anchor="members")
    user, sku = data["user"], data["sku"]
    cancel_url = _back_to_pool(request, pool, anchor=f"member-{user.pk}").url
    confirmation = disabled_account_confirmation(request, pool, user, sku, cancel_url=cancel_url)
    if confirmation is not None:
        return confirmation
    try:
        services.assign_license(acting_user=request.user, pool=pool, user=user, sku=sku)
    except PoolsError as exc:
        logger.info(
            "Assigning %s to user %s in pool %s by %s failed: %s", sku.part_number, user.user_id, pool.pk, request.user,
            exc.message,
        )
        messages.error(request, exc.message)
    else:
        messages.success(
            request, _("Assigned %(sku)s to %(user)s.") % {"sku": sku.name, "user": user.user_principal_name}
        )
    return _back_to_pool(request, pool, anchor=f"member-{user.pk}")


@login_required
@require_POST
def license_revoke(request: HttpRequest, pool_pk: int) -> HttpResponse:
    pool, data = _license_change(request, pool_pk, RevokeForm)
    if data is None:
        return _back_to_pool(request, pool, anchor="members")
    user, sku = data["user"], data["sku"]
    try:
        services.revoke_license(acting_user=request.user, pool=pool, user=user, sku=sku)
    except PoolsError as exc:
        logger.info(
            "Revoking %s from user %s in pool %s by %s failed: %s", sku.part_number, user.user_id, pool.pk, request.user,
            exc.message,
        )
        messages.error(request, exc.message)
    else:
        messages.success(
            request, _("Revoked %(sku)s from %(user)s.") % {"sku": sku.name, "user": user.user_principal_name}
        )
    return _back_to_pool(request, pool, anchor=f"member-{user.pk}")
