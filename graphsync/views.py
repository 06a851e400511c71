"""Sync progress and SKU names, for tenant administrators."""
import logging

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from rbac import scoping
from rbac.choices import Action

from .choices import SyncStatus
from .models import Sku, SyncRun
from .sku_names import SkuNameError, rename_sku

logger = logging.getLogger(__name__)


@login_required
@require_GET
def sync_progress(request, run_pk: int):
    """Return the status cell of one sync run; htmx polls it every second while the run is in progress."""
    tenants = scoping.tenants_with_tenant_permission(request.user, Action.ADMINISTER)
    run = SyncRun.objects.filter(pk=run_pk, tenant__in=tenants).first()
    if run is None:
        raise Http404("No such sync run.")
    previous = (
        SyncRun.objects.filter(tenant=run.tenant, status=SyncStatus.SUCCEEDED, kind=run.kind)
        .exclude(pk=run.pk)
        .order_by("-finished_at")
        .first()
    )
    context = {
        "run": run,
        "in_progress": run.status in (SyncStatus.QUEUED, SyncStatus.RUNNING),
        # Graph does not say how many users a listing will return; the last complete run is the estimate.
        "expected_users": previous.users_count if previous else None,
    }
    return render(request, "graphsync/_sync_status.html", context)


class SkuNameForm(forms.Form):
    name_override = forms.CharField(
        label=gettext_lazy("Name shown in the portal"),
        max_length=300,
        required=False,
        help_text=gettext_lazy("Leave empty to use Microsoft's product name, or the part number when Microsoft's table lacks the SKU."),
    )


@login_required
@require_http_methods(["GET", "POST"])
def sku_names(request, tenant_pk: int):
    """List a tenant's SKUs with their product names and let administrators override a name."""
    tenant = scoping.get_tenant_or_404(request.user, Action.ADMINISTER, pk=tenant_pk)
    skus = list(Sku.objects.filter(tenant=tenant).order_by("part_number"))

    if request.method == "POST":
        sku = next((item for item in skus if str(item.pk) == request.POST.get("sku")), None)
        if sku is None:
            raise Http404("No such SKU.")
        form = SkuNameForm(request.POST)
        if form.is_valid():
            try:
                rename_sku(acting_user=request.user, sku=sku, name_override=form.cleaned_data["name_override"])
            except SkuNameError as exc:
                logger.info(
                    "Rename of SKU %s (tenant %s) to %r rejected: %s",
                    sku.part_number, tenant.tenant_id, form.cleaned_data["name_override"], exc.message,
                )
                messages.error(request, exc.message)
            else:
                messages.success(
                    request, _("%(part)s is now shown as %(name)s.") % {"part": sku.part_number, "name": sku.name}
                )
                return redirect("graphsync:sku_names", tenant_pk=tenant.pk)
        else:
            messages.error(request, " ".join(form.errors.get("name_override", [])))

    return render(request, "graphsync/sku_names.html", {"tenant": tenant, "skus": skus})
