"""The scheme page of a tenant: scheme change with preview, value aliases, pool merges and portal values.

Only tenant administrators reach these pages; for anyone else the tenant does not exist (404).
"""
from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models.functions import Lower
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from graphsync.models import DirectoryUser
from rbac import scoping
from rbac.choices import Action

from . import scheme_impacts, schemes
from .exceptions import PoolsError
from .forms_schemes import (
    AliasForm, MergeForm, PortalValueForm, PortalValuesUploadForm, SchemeConfirmForm, SchemeForm,
)
from .models import PoolAlias, PoolScheme, PortalValue

logger = logging.getLogger(__name__)


def _tenant(request: HttpRequest, tenant_pk: int):
    return scoping.get_tenant_or_404(request.user, Action.ADMINISTER, pk=tenant_pk)


def _form_errors(form) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


def _scheme_context(tenant, **overrides) -> dict:
    scheme = PoolScheme.objects.filter(tenant=tenant).first()
    initial = {"level1_attribute": scheme.level1_attribute, "level2_attribute": scheme.level2_attribute} if scheme else {}
    context = {
        "tenant": tenant,
        "scheme": scheme,
        "scheme_form": SchemeForm(initial=initial),
        "aliases": PoolAlias.objects.filter(tenant=tenant).select_related("pool", "pool__parent", "parent")
        .order_by("attribute", "pool__display_name", "alias_key"),
        "alias_form": AliasForm(tenant=tenant),
        "merge_form": MergeForm(tenant=tenant),
        "portal_value_form": PortalValueForm(),
        "upload_form": PortalValuesUploadForm(),
        "portal_values_count": PortalValue.objects.filter(tenant=tenant, user__is_deleted=False).count(),
        "import_errors": [],
    }
    context.update(overrides)
    return context


@login_required
@require_GET
def scheme_page(request: HttpRequest, tenant_pk: int) -> HttpResponse:
    tenant = _tenant(request, tenant_pk)
    return render(request, "pools/schemes/scheme.html", _scheme_context(tenant))


@login_required
@require_GET
def scheme_preview(request: HttpRequest, tenant_pk: int) -> HttpResponse:
    tenant = _tenant(request, tenant_pk)
    form = SchemeForm(request.GET)
    if not form.is_valid():
        return render(request, "pools/schemes/scheme.html", _scheme_context(tenant, scheme_form=form), status=400)
    try:
        preview = schemes.preview_scheme(
            acting_user=request.user, tenant=tenant, level1_attribute=form.cleaned_data["level1_attribute"],
            level2_attribute=form.cleaned_data["level2_attribute"],
        )
    except PoolsError as exc:
        form.add_error(None, exc.message)
        return render(request, "pools/schemes/scheme.html", _scheme_context(tenant, scheme_form=form), status=400)
    return _render_preview(request, tenant, preview)


def _render_preview(request: HttpRequest, tenant, preview, status: int = 200) -> HttpResponse:
    confirm = SchemeConfirmForm(
        initial={
            "level1_attribute": preview.level1_attribute,
            "level2_attribute": preview.level2_attribute,
            "token": preview.token,
        }
    )
    context = {"tenant": tenant, "preview": preview, "confirm_form": confirm}
    return render(request, "pools/schemes/preview.html", context, status=status)


@login_required
@require_POST
def scheme_apply(request: HttpRequest, tenant_pk: int) -> HttpResponse:
    tenant = _tenant(request, tenant_pk)
    form = SchemeConfirmForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("The confirmation was incomplete: %(errors)s Preview the scheme again.") % {
            "errors": _form_errors(form)
        })
        return redirect("pools:scheme", tenant_pk=tenant.pk)
    data = form.cleaned_data
    try:
        scheme = schemes.apply_scheme(
            acting_user=request.user, tenant=tenant, level1_attribute=data["level1_attribute"],
            level2_attribute=data["level2_attribute"], token=data["token"],
        )
    except schemes.StalePreview as exc:
        messages.warning(request, exc.message)
        return _render_preview(request, tenant, exc.preview, status=409)
    except PoolsError as exc:
        messages.error(request, exc.message)
        return redirect("pools:scheme", tenant_pk=tenant.pk)
    pools = scoping.pools_for(request.user, Action.VIEW).filter(tenant=tenant).count()
    message = ngettext(
        "Saved the pool scheme %(scheme)s. The tenant now has %(pools)s pool.",
        "Saved the pool scheme %(scheme)s. The tenant now has %(pools)s pools.",
        pools,
    )
    messages.success(request, message % {"scheme": scheme, "pools": pools})
    return redirect("pools:tenant", tenant_pk=tenant.pk)


def _moved_message(moved: int) -> str:
    return ngettext("%(count)s user changed pool.", "%(count)s users changed pool.", moved) % {"count": moved}


@login_required
@require_POST
def alias_add(request: HttpRequest, tenant_pk: int) -> HttpResponse:
    tenant = _tenant(request, tenant_pk)
    form = AliasForm(request.POST, tenant=tenant)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("pools:scheme", tenant_pk=tenant.pk)
    pool = form.cleaned_data["pool"]
    impact = schemes.alias_impact(pool, form.cleaned_data["value"])
    if impact is not None and request.POST.get("confirmed") != "1":
        # The value is a pool of its own: its users, licenses and the pool itself would go. Nothing
        # changes until the administrator confirms on this page.
        context = {"tenant": tenant, "pool": pool, "value": form.cleaned_data["value"], "impact": impact}
        return render(request, "pools/schemes/alias_confirm.html", context)
    try:
        alias = schemes.add_alias(acting_user=request.user, pool=pool, value=form.cleaned_data["value"])
    except PoolsError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, _("Users with the value %(value)s now belong to %(pool)s.") % {"value": alias.spelling, "pool": pool}
        )
    return redirect("pools:scheme", tenant_pk=tenant.pk)


@login_required
@require_POST
def alias_remove(request: HttpRequest, tenant_pk: int, alias_pk: int) -> HttpResponse:
    tenant = _tenant(request, tenant_pk)
    alias = PoolAlias.objects.filter(tenant=tenant, pk=alias_pk).select_related("pool").first()
    if alias is None:
        raise Http404("No such alias.")
    if request.POST.get("confirmed") != "1":
        # Removing the alias moves its value's users out of the pool. Nothing changes until the
        # administrator confirms on this page.
        context = {"tenant": tenant, "impact": scheme_impacts.alias_removal_impact(alias)}
        return render(request, "pools/schemes/alias_remove_confirm.html", context)
    moved = schemes.remove_alias(acting_user=request.user, alias=alias)
    messages.success(
        request,
        _("Removed the alias %(value)s of %(pool)s.") % {"value": alias.spelling, "pool": alias.pool} + " "
        + _moved_message(moved),
    )
    return redirect("pools:scheme", tenant_pk=tenant.pk)


@login_required
@require_POST
def pool_merge(request: HttpRequest, tenant_pk: int) -> HttpResponse:
    tenant = _tenant(request, tenant_pk)
    form = MergeForm(request.POST, tenant=tenant)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("pools:scheme", tenant_pk=tenant.pk)
    source, target = form.cleaned_data["source"], form.cleaned_data["target"]
    # Pools the merge rejects anyway go straight to the service, which explains why.
    mergeable = source.pk != target.pk and source.parent_id == target.parent_id
    if mergeable and request.POST.get("confirmed") != "1":
        # The merge moves users, licenses, allotments, grants and pending requests and deactivates the
        # source. Nothing changes until the administrator confirms on this page.
        context = {"tenant": tenant, "impact": scheme_impacts.merge_impact(source, target)}
        return render(request, "pools/schemes/merge_confirm.html", context)
    try:
        moved = schemes.merge_pools(acting_user=request.user, source=source, target=target)
    except PoolsError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("Merged %(source)s into %(target)s.") % {"source": source, "target": target} + " " + _moved_message(moved),
        )
    return redirect("pools:scheme", tenant_pk=tenant.pk)


@login_required
@require_POST
def portal_value_set(request: HttpRequest, tenant_pk: int) -> HttpResponse:
    tenant = _tenant(request, tenant_pk)
    form = PortalValueForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("pools:scheme", tenant_pk=tenant.pk)
    upn = form.cleaned_data["user_principal_name"].strip()
    user = (
        DirectoryUser.objects.filter(tenant=tenant, is_deleted=False)
        .annotate(upn_lower=Lower("user_principal_name"))
        .filter(upn_lower=upn.lower())
        .first()
    )
    if user is None:
        messages.error(
            request, _("No user %(upn)s in this tenant. Check the spelling, or run a sync if the user is new.") % {"upn": upn}
        )
        return redirect("pools:scheme", tenant_pk=tenant.pk)
    try:
        changed = schemes.set_portal_value(acting_user=request.user, user=user, value=form.cleaned_data["value"])
    except PoolsError as exc:
        messages.error(request, exc.message)
        return redirect("pools:scheme", tenant_pk=tenant.pk)
    value = form.cleaned_data["value"].strip()
    if not changed:
        messages.info(request, _("%(upn)s already had that value; nothing changed.") % {"upn": user.user_principal_name})
    elif value:
        messages.success(request, _("Set the value of %(upn)s to %(value)s.") % {"upn": user.user_principal_name, "value": value})
    else:
        messages.success(request, _("Cleared the value of %(upn)s.") % {"upn": user.user_principal_name})
    return redirect("pools:scheme", tenant_pk=tenant.pk)


@login_required
@require_POST
def portal_values_upload(request: HttpRequest, tenant_pk: int) -> HttpResponse:
    tenant = _tenant(request, tenant_pk)
    form = PortalValuesUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return render(request, "pools/schemes/scheme.html", _scheme_context(tenant, upload_form=form), status=400)
    try:
        result = schemes.import_portal_values(acting_user=request.user, tenant=tenant, data=form.cleaned_data["file"].read())
    except schemes.PortalValueImportError as exc:
        logger.info("Portal-value upload for tenant %s by %s rejected: %s", tenant.pk, request.user, exc.message)
        messages.error(request, exc.message)
        context = _scheme_context(tenant, import_errors=exc.errors)
        return render(request, "pools/schemes/scheme.html", context, status=400)
    messages.success(
        request,
        _("Imported the file. Values set: %(set)s. Values cleared: %(cleared)s. Unchanged: %(unchanged)s.")
        % {"set": result.set, "cleared": result.cleared, "unchanged": result.unchanged},
    )
    return redirect("pools:scheme", tenant_pk=tenant.pk)
