"""REST API under /api/v1/. Every endpoint scopes its objects through ``rbac.scoping``."""
from django.urls import path
from rest_framework.routers import DefaultRouter

from chargeback.api.views import TenantChargebackView
from graphsync.api.views import TenantViewSet
from pools.api.views import PoolViewSet

router = DefaultRouter()
router.register("tenants", TenantViewSet, basename="tenant")
router.register("pools", PoolViewSet, basename="pool")

urlpatterns = [
    path("tenants/<int:tenant_pk>/chargeback/", TenantChargebackView.as_view(), name="tenant-chargeback"),
    *router.urls,
]
