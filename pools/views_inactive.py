"""The read-only page of an inactive pool for tenant administrators, and the release of its allotments."""
from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from . import inactive_pools
from .exceptions import PoolsError

logger = logging.getLogger(__name__)


def inactive_pool_page(request: HttpRequest, pool_pk: int) -> HttpResponse:
    """Render an inactive pool for a tenant administrator of its tenant; raise Http404 for everyone else."""
    pool = inactive_pools.get_inactive_pool_or_404(request.user, pool_pk)
    pools = inactive_pools.pool_with_inactive_children(pool)
    allotments = list(inactive_pools.allotments_of(pools))
    context = {
        "pool": pool,
        "allotments": allotments,
        "allotted_seats": sum(allotment.seats for allotment in allotments),
        "grants": list(inactive_pools.grants_of(pools)),
        "seat_requests": list(inactive_pools.requests_of(pools)),
    }
    return render(request, "pools/pool_inactive.html", context)


@login_required
@require_POST
def release_allotments(request: HttpRequest, pool_pk: int) -> HttpResponse:
    pool = inactive_pools.get_inactive_pool_or_404(request.user, pool_pk)
    if request.POST.get("confirm") != "1":
        messages.error(request, _("Nothing was released. Tick the box to confirm, then click Release allotments."))
        return redirect("pools:pool", pool_pk=pool.pk)
    try:
        released = inactive_pools.release_allotments(acting_user=request.user, pool=pool)
    except PoolsError as exc:
        logger.info("Releasing the allotments of pool %s by %s rejected: %s", pool.pk, request.user, exc.message)
        messages.error(request, exc.message)
        return redirect("pools:pool", pool_pk=pool.pk)
    if not released:
        messages.info(request, _("%(pool)s has no allotments to release.") % {"pool": pool})
    else:
        seats = sum(item.seats for item in released)
        message = ngettext(
            "Released %(count)s allotment of %(pool)s (%(seats)s seats) to the reserve.",
            "Released %(count)s allotments of %(pool)s (%(seats)s seats) to the reserve.",
            len(released),
        )
        messages.success(request, message % {"count": len(released), "pool": pool, "seats": seats})
    return redirect("pools:pool", pool_pk=pool.pk)
