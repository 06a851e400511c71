from django.urls import path

from . import urls_alerts, urls_audit, urls_bulk, urls_purchases, urls_recovery, urls_schemes, views, views_inactive

app_name = "pools"

urlpatterns = [
    path("", views.home, name="home"),
    path("tenants/<int:tenant_pk>/", views.tenant_detail, name="tenant"),
    path("tenants/<int:tenant_pk>/sync/", views.tenant_sync, name="tenant_sync"),
    path("pools/<int:pool_pk>/", views.pool_detail, name="pool"),
    path("pools/<int:pool_pk>/allotments/", views.pool_allot, name="pool_allot"),
    path("pools/<int:pool_pk>/rename/", views.pool_rename, name="pool_rename"),
    path(
        "pools/<int:pool_pk>/release-allotments/", views_inactive.release_allotments, name="pool_release_allotments"
    ),
    path("pools/<int:pool_pk>/assign/", views.license_assign, name="assign"),
    path("pools/<int:pool_pk>/revoke/", views.license_revoke, name="revoke"),
]

# Each feature keeps its routes in its own module.
urlpatterns += (
    urls_schemes.urlpatterns
    + urls_audit.urlpatterns
    + urls_purchases.urlpatterns
    + urls_bulk.urlpatterns
    + urls_alerts.urlpatterns
    + urls_recovery.urlpatterns
)
