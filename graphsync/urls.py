from django.urls import path

from . import views

app_name = "graphsync"

urlpatterns = [
    path("sync-runs/<int:run_pk>/status/", views.sync_progress, name="sync_progress"),
    path("tenants/<int:tenant_pk>/sku-names/", views.sku_names, name="sku_names"),
]
