"""URL patterns of the pools app for schemes; pools/urls.py adds them under the "pools" namespace."""
from django.urls import path

from . import views_schemes as views

urlpatterns: list = [
    path("tenants/<int:tenant_pk>/scheme/", views.scheme_page, name="scheme"),
    path("tenants/<int:tenant_pk>/scheme/preview/", views.scheme_preview, name="scheme_preview"),
    path("tenants/<int:tenant_pk>/scheme/apply/", views.scheme_apply, name="scheme_apply"),
    path("tenants/<int:tenant_pk>/aliases/add/", views.alias_add, name="alias_add"),
    path("tenants/<int:tenant_pk>/aliases/<int:alias_pk>/remove/", views.alias_remove, name="alias_remove"),
    path("tenants/<int:tenant_pk>/pools/merge/", views.pool_merge, name="pool_merge"),
    path("tenants/<int:tenant_pk>/portal-values/set/", views.portal_value_set, name="portal_value_set"),
    path("tenants/<int:tenant_pk>/portal-values/upload/", views.portal_values_upload, name="portal_values_upload"),
]
