"""Alert pages, the alert e-mail preference, and the adopt and refer actions on drift.

Alerts come through ``pools.alerts.visible_alerts`` and pools through ``rbac.scoping``, so anything outside
the user's scope is not found. POST views call the services, report through Django messages and redirect.
"""
from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from rbac import scoping
from rbac.choices import Action

from . import drift
from .alerts import visible_alerts
from .exceptions import PoolsError
from .forms_alerts import AlertFilterForm, AlertPreferenceForm, DriftActionForm
from .models import AlertPreference

logger = logging.getLogger(__name__)

ALERTS_PER_PAGE = 50


def _alert_page(request: HttpRequest, alerts):
    form = AlertFilterForm(request.GET)
    state = form.cleaned_data.get("state") if form.is_valid() else ""
    if state == AlertFilterForm.RESOLVED:
        alerts = alerts.filter(resolved_at__isnull=False).order_by("-resolved_at", "-pk")
    else:
        state = AlertFilterForm.OPEN
        alerts = alerts.filter(resolved_at__isnull=True).order_by("tenant__name", "-raised_at", "-pk")
    alerts = alerts.select_related("tenant", "pool", "pool__parent")
    return Paginator(alerts, ALERTS_PER_PAGE).get_page(request.GET.get("page")), state


@login_required
@require_GET
def alert_list(request: HttpRequest) -> HttpResponse:
    page, state = _alert_page(request, visible_alerts(request.user))
    return render(request, "pools/alerts/list.html", {"page": page, "state": state, "tenant": None})


@login_required
@require_GET
def tenant_alerts(request: HttpRequest, tenant_pk: int) -> HttpResponse:
    tenant = scoping.get_tenant_or_404(request.user, Action.VIEW, pk=tenant_pk)
    page, state = _alert_page(request, visible_alerts(request.user).filter(tenant=tenant))
    return render(request, "pools/alerts/list.html", {"page": page, "state": state, "tenant": tenant})


@login_required
@require_http_methods(["GET", "POST"])
def alert_preferences(request: HttpRequest) -> HttpResponse:
    preference, _created = AlertPreference.objects.get_or_create(user=request.user)
    form = AlertPreferenceForm(request.POST or None, instance=preference)
    if request.method == "POST" and form.is_valid():
        form.save()
        logger.info(
            "User %s set alert e-mails to %s", request.user.pk, "daily digest" if preference.daily_digest else "per alert"
        )
        if preference.daily_digest:
            messages.success(request, _("Saved. You will receive one alert digest a day."))
        else:
            messages.success(request, _("Saved. You will receive an e-mail for each alert as it is raised."))
        return redirect("pools:alert_preferences")
    return render(
        request, "pools/alerts/preferences.html", {"form": form, "has_email": bool(request.user.email)}
    )


def _drift_action(request: HttpRequest, pool_pk: int):
    pool = scoping.get_pool_or_404(request.user, Action.ADMINISTER, pk=pool_pk)
    form = DriftActionForm(request.POST, tenant=pool.tenant)
    if not form.is_valid():
        raise Http404("No such SKU in this tenant.")
    return pool, form.cleaned_data["sku"]


def _back_to_drift(pool):
    return redirect(reverse("pools:pool", kwargs={"pool_pk": pool.pk}) + "#drift")


@login_required
@require_POST
def drift_adopt(request: HttpRequest, pool_pk: int) -> HttpResponse:
    pool, sku = _drift_action(request, pool_pk)
    try:
        line = drift.adopt_drift(acting_user=request.user, pool=pool, sku=sku)
    except PoolsError as exc:
        logger.info("Adopting drift of %s in pool %s by %s rejected: %s", sku.part_number, pool.pk, request.user.pk, exc.message)
        messages.error(request, exc.message)
    else:
        count = len(line.assignments)
        messages.success(
            request,
            ngettext(
                "Adopted %(count)s assignment of %(sku)s made outside the portal.",
                "Adopted %(count)s assignments of %(sku)s made outside the portal.",
                count,
            ) % {"count": count, "sku": sku.name},
        )
    return _back_to_drift(pool)


@login_required
@require_POST
def drift_refer(request: HttpRequest, pool_pk: int) -> HttpResponse:
    pool, sku = _drift_action(request, pool_pk)
    try:
        line, addresses = drift.refer_drift(acting_user=request.user, pool=pool, sku=sku)
    except PoolsError as exc:
        logger.info("Referring drift of %s in pool %s by %s rejected: %s", sku.part_number, pool.pk, request.user.pk, exc.message)
        messages.error(request, exc.message)
    else:
        if addresses:
            messages.success(
                request,
                ngettext(
                    "Referred %(count)s assignment of %(sku)s to the pool managers: e-mailed %(recipients)s.",
                    "Referred %(count)s assignments of %(sku)s to the pool managers: e-mailed %(recipients)s.",
                    len(line.assignments),
                ) % {"count": len(line.assignments), "sku": sku.name, "recipients": ", ".join(addresses)},
            )
        else:
            messages.warning(
                request,
                _("Referred the assignments of %(sku)s, but the e-mail to the pool managers could not be sent; tell "
                  "them another way.") % {"sku": sku.name},
            )
    return _back_to_drift(pool)
