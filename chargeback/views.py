"""Chargeback pages: the monthly report, its CSV download and SKU prices."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from rbac.choices import Action
from rbac.scoping import can_administer_tenant, chargeback_pools_for, get_tenant_or_404

from .exports import csv_response
from .forms import MonthForm, PriceForm
from .models import SkuPrice
from .reports import InvalidMonth, build_report, parse_month
from .services import set_price
from .templatetags.chargeback_format import price as format_price


def chargeback_pools(request: HttpRequest, tenant):
    return chargeback_pools_for(request.user).filter(tenant=tenant)


@login_required
@require_GET
def report(request: HttpRequest, tenant_pk: int) -> HttpResponse:
    tenant = get_tenant_or_404(request.user, Action.CHARGEBACK, pk=tenant_pk)
    form = MonthForm(request.GET if "month" in request.GET else {"month": MonthForm.current_month()})
    context = {"tenant": tenant, "form": form, "report": None}
    if not form.is_valid():
        return render(request, "chargeback/report.html", context, status=400)

    year, month = form.cleaned_data["month"]
    context["report"] = build_report(tenant=tenant, year=year, month=month, pools=chargeback_pools(request, tenant))
    return render(request, "chargeback/report.html", context)


@login_required
@require_GET
def report_csv(request: HttpRequest, tenant_pk: int, month: str) -> HttpResponse:
    tenant = get_tenant_or_404(request.user, Action.CHARGEBACK, pk=tenant_pk)
    try:
        year, month_number = parse_month(month)
    except InvalidMonth as exc:
        return HttpResponseBadRequest(exc.message, content_type="text/plain; charset=utf-8")
    report = build_report(tenant=tenant, year=year, month=month_number, pools=chargeback_pools(request, tenant))
    return csv_response(report)


@login_required
@require_http_methods(["GET", "POST"])
def prices(request: HttpRequest, tenant_pk: int) -> HttpResponse:
    """Show the price history to users who may see the tenant's chargeback, and let tenant administrators set prices."""
    if request.method == "POST":
        tenant = get_tenant_or_404(request.user, Action.ADMINISTER, pk=tenant_pk)
    else:
        tenant = get_tenant_or_404(request.user, Action.CHARGEBACK, pk=tenant_pk)
    can_set_prices = can_administer_tenant(request.user, tenant)
    form = PriceForm(request.POST or None, tenant=tenant) if can_set_prices else None
    if request.method == "POST" and form.is_valid():
        data = {name: value for name, value in form.cleaned_data.items() if name != "replace_existing"}
        price = set_price(acting_user=request.user, tenant=tenant, **data)
        messages.success(
            request,
            _("%(sku)s now costs %(price)s %(currency)s per seat and month from %(date)s.")
            % {
                "sku": price.sku.name,
                "price": format_price(price.monthly_price),
                "currency": price.currency,
                "date": date_format(price.effective_from, "SHORT_DATE_FORMAT"),
            },
        )
        return redirect("chargeback:prices", tenant_pk=tenant.pk)

    history = SkuPrice.objects.filter(tenant=tenant).select_related("sku", "created_by").order_by(
        "sku__part_number", "-effective_from"
    )
    status = 400 if request.method == "POST" else 200
    context = {"tenant": tenant, "form": form, "prices": history}
    return render(request, "chargeback/prices.html", context, status=status)
