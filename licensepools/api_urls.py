"""REST API under /api/v1/. Every endpoint scopes its objects through ``rbac.scoping``."""
from django.urls import path
from rest_framework.routers import DefaultRouter

from chargeback.api.views import TenantChargebackView
from graphsync.api.views import TenantViewSet
from pools.api.audit import TenantAuditExportView
from pools.api.purchases import PurchaseViewSet, SeatRequestViewSet
from pools.api.recovery import ExemptionView, ReclaimCandidatesView
from pools.api.views import PoolViewSet

router = DefaultRouter()
router.register("tenants", TenantViewSet, basename="tenant")
router.register("pools", PoolViewSet, basename="pool")
router.register("purchases", PurchaseViewSet, basename="purchase")
router.register("seat-requests", SeatRequestViewSet, basename="seat-request")

urlpatterns = [
    path("tenants/<int:tenant_pk>/chargeback/", TenantChargebackView.as_view(), name="tenant-chargeback"),
    path("tenants/<int:tenant_pk>/audit-events/export/", TenantAuditExportView.as_view(), name="tenant-audit-export"),
    path("pools/<int:pool_pk>/reclaim-candidates/", ReclaimCandidatesView.as_view(), name="pool-reclaim-candidates"),
    path("pools/<int:pool_pk>/users/<uuid:user_id>/exemption/", ExemptionView.as_view(), name="pool-user-exemption"),
    *router.urls,
]
