"""The audit trail page and its CSV and JSON Lines downloads.

The tenant comes through ``rbac.scoping`` with the audit action, so a tenant outside the user's scope
raises Http404. The page and the downloads select events with one filter form.
"""
from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET

from rbac import scoping
from rbac.choices import Action

from .audit_display import add_value_rows
from .audit_export import export_response, start_export
from .forms_audit import AuditFilterForm
from .models import AuditEvent

logger = logging.getLogger(__name__)

AUDIT_EVENTS_PER_PAGE = 50


def _form_errors(form: AuditFilterForm) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


@login_required
@require_GET
def audit_log(request: HttpRequest, tenant_pk: int) -> HttpResponse:
    tenant = scoping.get_tenant_or_404(request.user, Action.AUDIT, pk=tenant_pk)
    filters = AuditFilterForm(request.GET, tenant=tenant)
    context = {"tenant": tenant, "filters": filters, "page": None, "query": ""}
    if not filters.is_valid():
        return render(request, "pools/audit_log.html", context, status=400)

    events = filters.filter_events(AuditEvent.objects.filter(tenant=tenant)).order_by("-occurred_at", "-pk")
    page = Paginator(events, AUDIT_EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    add_value_rows(page, tenant)
    context.update(page=page, query=urlencode(filters.active_filters()))
    return render(request, "pools/audit_log.html", context)


@login_required
@require_GET
def audit_export(request: HttpRequest, tenant_pk: int, file_format: str) -> HttpResponse:
    """Stream the events that the page's filters select, as CSV or JSON Lines."""
    tenant = scoping.get_tenant_or_404(request.user, Action.AUDIT, pk=tenant_pk)
    filters = AuditFilterForm(request.GET, tenant=tenant)
    if not filters.is_valid():
        return HttpResponseBadRequest(_form_errors(filters), content_type="text/plain; charset=utf-8")

    export = start_export(
        acting_user=request.user, tenant=tenant, events=filters.filter_events(AuditEvent.objects.filter(tenant=tenant)),
        filters=filters.active_filters(), file_format=file_format, channel="web",
    )
    logger.info(
        "Audit trail of tenant %s exported as %s by %s, filters %s", tenant.pk, file_format,
        request.user.get_username(), filters.active_filters(),
    )
    return export_response(export)
