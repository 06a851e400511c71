"""Pages of the tenant stock, the purchase ledger and seat requests.

Every object comes through ``rbac.scoping`` (directly or through the scoped querysets of
``pools.purchases`` and ``pools.seat_requests``), so an object outside the user's scope raises Http404.
"""
from __future__ import annotations

import csv
import io
import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chargeback.exports import BYTE_ORDER_MARK, CSV_CONTENT_TYPE, safe_text
from rbac import scoping
from rbac.choices import Action

from . import capacity, purchases, seat_requests
from .choices import RequestStatus
from .exceptions import PoolsError
from .forms_purchases import (
    DecisionForm, LedgerFilterForm, LinkSubscriptionForm, PurchaseForm, SeatRequestForm, VoidPurchaseForm,
)
from .models import Purchase

logger = logging.getLogger(__name__)

PURCHASES_PER_PAGE = 50
DECIDED_REQUESTS_SHOWN = 50


def _form_errors(form) -> str:
    return " ".join(str(error) for errors in form.errors.values() for error in errors)


# Stock


@login_required
@require_GET
def tenant_stock(request: HttpRequest, tenant_pk: int) -> HttpResponse:
    # The stock shows the whole tenant's units and reserve, so it needs a tenant-wide grant.
    tenant = scoping.ledger_tenants_for(request.user).filter(pk=tenant_pk).first()
    if tenant is None:
        raise scoping.ObjectNotFound(_("Tenant not found."))
    context = {
        "tenant": tenant,
        "lines": capacity.tenant_capacity(tenant),
        "can_administer": scoping.can_administer_tenant(request.user, tenant),
    }
    return render(request, "pools/stock/tenant_stock.html", context)


# Purchase ledger


def _filtered_ledger(request: HttpRequest, tenant):
    ledger = purchases.tenant_ledger(request.user, tenant)
    pools = scoping.ledger_pools_for(request.user).filter(is_active=True)
    filters = LedgerFilterForm(request.GET or None, tenant=tenant, pools=pools)
    if filters.is_bound and filters.is_valid():
        if filters.cleaned_data["pool"]:
            ledger = ledger.filter(pool_id__in=filters.cleaned_data["pool"].subtree_ids())
        if filters.cleaned_data["sku"]:
            ledger = ledger.filter(sku=filters.cleaned_data["sku"])
    elif filters.is_bound:
        messages.error(request, _form_errors(filters))
        ledger = ledger.none()
    return ledger, filters


@login_required
@require_GET
def tenant_purchases(request: HttpRequest, tenant_pk: int) -> HttpResponse:
    tenant = scoping.get_ledger_tenant_or_404(request.user, pk=tenant_pk)
    ledger, filters = _filtered_ledger(request, tenant)
    can_administer = scoping.can_administer_tenant(request.user, tenant)
    page = Paginator(ledger.order_by("-purchased_on", "-pk"), PURCHASES_PER_PAGE).get_page(request.GET.get("page"))
    if can_administer:
        for purchase in page:
            if purchase.subscription_id is None:
                purchase.link_form = LinkSubscriptionForm(purchase=purchase, auto_id=f"id_purchase{purchase.pk}_%s")
            if not purchase.is_voided:
                purchase.void_form = VoidPurchaseForm(auto_id=f"id_void{purchase.pk}_%s")
    context = {
        "tenant": tenant,
        "page": page,
        "filters": filters,
        "query": request.GET.urlencode(),
        "totals_by_pool": purchases.totals_by_pool(ledger.filter(voided_at__isnull=True)),
        "totals_by_sku": purchases.totals_by_sku(ledger.filter(voided_at__isnull=True)),
        "can_administer": can_administer,
        "can_view_stock": scoping.ledger_tenants_for(request.user).filter(pk=tenant.pk).exists(),
    }
    return render(request, "pools/purchases/ledger.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def purchase_new(request: HttpRequest, tenant_pk: int) -> HttpResponse:
    tenant = scoping.get_tenant_or_404(request.user, Action.ADMINISTER, pk=tenant_pk)
    pools = scoping.pools_for(request.user, Action.ADMINISTER)
    form = PurchaseForm(request.POST or None, tenant=tenant, pools=pools)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        chosen, subscription = form.chosen_subscription()
        try:
            purchase = purchases.record_purchase(
                acting_user=request.user,
                data=purchases.PurchaseInput(
                    sku=data["sku"], pool=data["pool"], quantity=data["quantity"], purchased_on=data["purchased_on"],
                    unit_price=data["unit_price"], currency=data["currency"], term=data["term"],
                    order_reference=data["order_reference"],
                ),
                subscription=subscription,
                link_automatically=not chosen,
                confirm_duplicate=data["confirm_duplicate"],
            )
        except PoolsError as exc:
            logger.info("Purchase for pool %s (tenant %s) rejected: %s", data["pool"].pk, tenant.pk, exc.message)
            form.add_error(None, exc.message)
        else:
            message = ngettext(
                "Recorded %(quantity)s seat of %(sku)s for %(pool)s.",
                "Recorded %(quantity)s seats of %(sku)s for %(pool)s.",
                purchase.quantity,
            ) % {"quantity": purchase.quantity, "sku": purchase.sku.name, "pool": purchase.pool}
            if purchase.subscription is None:
                message += " " + _("No single commerce subscription matches it; choose one in the ledger.")
            messages.success(request, message)
            warning = purchases.currency_warning(purchase)
            if warning:
                messages.warning(request, warning)
            return redirect("pools:tenant_purchases", tenant_pk=tenant.pk)
    return render(request, "pools/purchases/purchase_form.html", {"tenant": tenant, "form": form})


@login_required
@require_POST
def purchase_link(request: HttpRequest, purchase_pk: int) -> HttpResponse:
    purchase = get_object_or_404(purchases.visible_purchases(request.user), pk=purchase_pk)
    if not scoping.can_administer_tenant(request.user, purchase.tenant):
        raise Http404("No such purchase.")
    form = LinkSubscriptionForm(request.POST, purchase=purchase)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
    else:
        subscription = form.cleaned_data["subscription"]
        purchases.link_subscription(acting_user=request.user, purchase=purchase, subscription=subscription)
        if subscription is None:
            messages.success(request, _("The purchase is no longer linked to a subscription."))
        else:
            messages.success(
                request, _("Linked the purchase to subscription %(subscription)s.")
                % {"subscription": subscription.subscription_id},
            )
    return redirect("pools:tenant_purchases", tenant_pk=purchase.tenant_id)


@login_required
@require_POST
def purchase_void(request: HttpRequest, purchase_pk: int) -> HttpResponse:
    purchase = get_object_or_404(purchases.visible_purchases(request.user), pk=purchase_pk)
    if not scoping.can_administer_tenant(request.user, purchase.tenant):
        raise Http404("No such purchase.")
    form = VoidPurchaseForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("pools:tenant_purchases", tenant_pk=purchase.tenant_id)
    try:
        purchases.void_purchase(acting_user=request.user, purchase=purchase, reason=form.cleaned_data["reason"])
    except PoolsError as exc:
        logger.info("Voiding purchase %s (tenant %s) rejected: %s", purchase.pk, purchase.tenant_id, exc.message)
        messages.error(request, exc.message)
    else:
        messages.success(
            request, _("Voided purchase %(id)s and lowered the allotment of %(pool)s by %(quantity)s seats of %(sku)s.")
            % {"id": purchase.pk, "pool": purchase.pool, "quantity": purchase.quantity, "sku": purchase.sku.name},
        )
    return redirect("pools:tenant_purchases", tenant_pk=purchase.tenant_id)


def _csv_rows(ledger):
    yield [
        _("Purchase date"), _("Pool"), _("SKU"), _("Product"), _("Seats"), _("Unit price per month"), _("Currency"),
        _("Term"), _("Order reference"), _("Commerce subscription"), _("Recorded by"), _("Recorded at"),
        _("Voided at"), _("Voided by"), _("Reason for voiding"),
    ]
    for purchase in ledger:
        yield [
            purchase.purchased_on.isoformat(),
            safe_text(str(purchase.pool)),
            safe_text(purchase.sku.part_number),
            safe_text(purchase.sku.name),
            purchase.quantity,
            f"{purchase.unit_price:.4f}",
            safe_text(purchase.currency),
            purchase.term,
            safe_text(purchase.order_reference),
            safe_text(purchase.subscription.subscription_id) if purchase.subscription else "",
            safe_text(purchase.recorded_by.get_username()) if purchase.recorded_by else "",
            purchase.recorded_at.isoformat(timespec="seconds"),
            purchase.voided_at.isoformat(timespec="seconds") if purchase.voided_at else "",
            safe_text(purchase.voided_by.get_username()) if purchase.voided_by else "",
            safe_text(purchase.void_reason),
        ]


@login_required
@require_GET
def purchases_export(request: HttpRequest, tenant_pk: int) -> HttpResponse:
    """Download the ledger, with the page's filters, as CSV: UTF-8 with a byte order mark, formula-safe text."""
    tenant = scoping.get_ledger_tenant_or_404(request.user, pk=tenant_pk)
    ledger, _filters = _filtered_ledger(request, tenant)
    buffer = io.StringIO()
    buffer.write(BYTE_ORDER_MARK)
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(_csv_rows(ledger.order_by("purchased_on", "pk")))
    response = HttpResponse(buffer.getvalue().encode("utf-8"), content_type=CSV_CONTENT_TYPE)
    filename = f"purchases-{slugify(tenant.name) or f'tenant-{tenant.pk}'}.csv"
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response


@login_required
@require_GET
def pool_purchases(request: HttpRequest, pool_pk: int) -> HttpResponse:
    pool = scoping.get_ledger_pool_or_404(request.user, pk=pool_pk)
    ledger = purchases.pool_ledger(request.user, pool)
    context = {
        "pool": pool,
        "purchases": ledger.order_by("-purchased_on", "-pk"),
        "totals_by_sku": purchases.totals_by_sku(ledger.filter(voided_at__isnull=True)),
    }
    return render(request, "pools/purchases/pool_ledger.html", context)


# Seat requests


@login_required
@require_GET
def tenant_requests(request: HttpRequest, tenant_pk: int) -> HttpResponse:
    tenant = scoping.get_tenant_or_404(request.user, Action.ADMINISTER, pk=tenant_pk)
    requests = seat_requests.visible_requests(request.user).filter(tenant=tenant)
    pending = list(requests.filter(status=RequestStatus.PENDING).order_by("requested_at", "pk"))
    stock = {line.sku.pk: line for line in capacity.tenant_capacity(tenant)}
    for item in pending:
        item.reserve = stock[item.sku_id].reserve if item.sku_id in stock else 0
        item.decision_form = DecisionForm(auto_id=f"id_request{item.pk}_%s", seat_request=item)
    decided = requests.exclude(status=RequestStatus.PENDING).order_by("-decided_at", "-pk")[:DECIDED_REQUESTS_SHOWN]
    context = {"tenant": tenant, "pending": pending, "decided": decided}
    return render(request, "pools/requests/tenant_requests.html", context)


def _decide(request: HttpRequest, request_pk: int, decision: str) -> HttpResponse:
    seat_request = get_object_or_404(seat_requests.visible_requests(request.user), pk=request_pk)
    if not scoping.can_administer_tenant(request.user, seat_request.tenant):
        raise Http404("No such seat request.")
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return redirect("pools:tenant_requests", tenant_pk=seat_request.tenant_id)
    names = {"quantity": seat_request.quantity, "sku": seat_request.sku.name, "pool": seat_request.pool}
    try:
        if decision == "approve":
            seat_requests.approve_request(
                acting_user=request.user, seat_request=seat_request, note=form.cleaned_data["reason"]
            )
            messages.success(request, _("Approved %(quantity)s seats of %(sku)s for %(pool)s.") % names)
        else:
            seat_requests.decline_request(
                acting_user=request.user, seat_request=seat_request, reason=form.cleaned_data["reason"]
            )
            messages.success(request, _("Declined the request for %(quantity)s seats of %(sku)s for %(pool)s.") % names)
    except PoolsError as exc:
        logger.info("Decision on seat request %s (tenant %s) rejected: %s", seat_request.pk, seat_request.tenant_id, exc.message)
        messages.error(request, exc.message)
    return redirect("pools:tenant_requests", tenant_pk=seat_request.tenant_id)


@login_required
@require_POST
def request_approve(request: HttpRequest, request_pk: int) -> HttpResponse:
    return _decide(request, request_pk, "approve")


@login_required
@require_POST
def request_decline(request: HttpRequest, request_pk: int) -> HttpResponse:
    return _decide(request, request_pk, "decline")


@login_required
@require_POST
def request_withdraw(request: HttpRequest, request_pk: int) -> HttpResponse:
    seat_request = get_object_or_404(seat_requests.visible_requests(request.user), pk=request_pk)
    try:
        seat_requests.withdraw_request(acting_user=request.user, seat_request=seat_request)
    except PoolsError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Withdrew the request."))
    return redirect("pools:pool_requests", pool_pk=seat_request.pool_id)


@login_required
@require_http_methods(["GET", "POST"])
def pool_requests(request: HttpRequest, pool_pk: int) -> HttpResponse:
    pool = scoping.get_pool_or_404(request.user, Action.VIEW, pk=pool_pk)
    can_request = seat_requests.requestable_pools(request.user).filter(pk=pool.pk).exists()
    form = SeatRequestForm(request.POST or None, tenant=pool.tenant) if can_request else None
    if request.method == "POST":
        if form is None:
            raise Http404("No such pool.")
        if form.is_valid():
            data = form.cleaned_data
            try:
                seat_requests.create_request(
                    acting_user=request.user, pool=pool, sku=data["sku"], quantity=data["quantity"],
                    reason=data["reason"],
                )
            except PoolsError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(
                    request, _("Sent the request for %(quantity)s seats of %(sku)s to the tenant administrators.")
                    % {"quantity": data["quantity"], "sku": data["sku"].name},
                )
                return redirect("pools:pool_requests", pool_pk=pool.pk)
    requests = seat_requests.visible_requests(request.user).filter(pool_id__in=pool.subtree_ids())
    context = {"pool": pool, "form": form, "requests": requests.order_by("-requested_at", "-pk")}
    return render(request, "pools/requests/pool_requests.html", context)
