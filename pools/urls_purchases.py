"""URL patterns of the pools app for stock, purchases and seat requests; pools/urls.py adds them under the
"pools" namespace."""
from django.urls import path

from . import views_purchases as views

urlpatterns: list = [
    path("tenants/<int:tenant_pk>/stock/", views.tenant_stock, name="tenant_stock"),
    path("tenants/<int:tenant_pk>/purchases/", views.tenant_purchases, name="tenant_purchases"),
    path("tenants/<int:tenant_pk>/purchases/new/", views.purchase_new, name="purchase_new"),
    path("tenants/<int:tenant_pk>/purchases/export.csv", views.purchases_export, name="purchases_export"),
    path("purchases/<int:purchase_pk>/link/", views.purchase_link, name="purchase_link"),
    path("purchases/<int:purchase_pk>/void/", views.purchase_void, name="purchase_void"),
    path("pools/<int:pool_pk>/purchases/", views.pool_purchases, name="pool_purchases"),
    path("tenants/<int:tenant_pk>/requests/", views.tenant_requests, name="tenant_requests"),
    path("pools/<int:pool_pk>/requests/", views.pool_requests, name="pool_requests"),
    path("requests/<int:request_pk>/approve/", views.request_approve, name="request_approve"),
    path("requests/<int:request_pk>/decline/", views.request_decline, name="request_decline"),
    path("requests/<int:request_pk>/withdraw/", views.request_withdraw, name="request_withdraw"),
]
