"""API endpoints of tenants: details, SKU stock and syncs."""
from __future__ import annotations

import logging

from django.db import transaction
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from graphsync.models import Tenant
from graphsync.services import request_sync
from licensepools.api_errors import NamedNotFoundMixin
from pools.audit import record_event
from pools.choices import AuditAction
from pools.stock import tenant_stock
from rbac.choices import Action
from rbac.scoping import can_administer_tenant, get_tenant_or_404, tenants_for

from .serializers import SkuStockSerializer, SyncRunSerializer, TenantSerializer

logger = logging.getLogger(__name__)


class TenantViewSet(NamedNotFoundMixin, viewsets.ReadOnlyModelViewSet):
    """Tenants the user may view, or whose chargeback the user may see."""

    serializer_class = TenantSerializer
    queryset = Tenant.objects.none()
    not_found_message = _("Tenant not found.")
    lookup_value_regex = r"[0-9]+"

    def get_queryset(self):
        user = self.request.user
        visible = tenants_for(user, Action.VIEW).values("pk")
        chargeback = tenants_for(user, Action.CHARGEBACK).values("pk")
        return Tenant.objects.filter(pk__in=visible) | Tenant.objects.filter(pk__in=chargeback)

    @extend_schema(responses=SkuStockSerializer(many=True), summary="Tenant stock per SKU")
    @action(detail=True, methods=["get"], pagination_class=None)
    def skus(self, request: Request, pk: str) -> Response:
        tenant = get_tenant_or_404(request.user, Action.VIEW, pk=pk)
        return Response(SkuStockSerializer(tenant_stock(tenant), many=True).data)

    @extend_schema(request=None, responses={202: SyncRunSerializer}, summary="Queue a full sync")
    @action(detail=True, methods=["post"])
    def sync(self, request: Request, pk: str) -> Response:
        # Someone who may see the tenant gets 403 with the reason. Anyone else gets 404, which reveals no
        # tenant outside their scope.
        tenant = self.get_object()
        if not can_administer_tenant(request.user, tenant):
            raise PermissionDenied(
                _("Only tenant administrators start a sync, and you are not one in %(tenant)s. Ask a tenant "
                  "administrator, or wait for the scheduled sync.") % {"tenant": tenant.name}
            )
        with transaction.atomic():
            run = request_sync(tenant, acting_user=request.user)
            record_event(
                acting_user=request.user, action=AuditAction.SYNC_REQUESTED, tenant=tenant, target=str(tenant),
                after={"sync_run": run.pk},
            )
        logger.info("Sync run %s of tenant %s queued through the API by %s", run.pk, tenant.tenant_id, request.user)
        return Response(SyncRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)
