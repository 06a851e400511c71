"""URL patterns of the pools app for recovery; pools/urls.py adds them under the "pools" namespace."""
from django.urls import path

from . import views_recovery as views

urlpatterns: list = [
    path("pools/<int:pool_pk>/recovery/", views.pool_recovery, name="pool_recovery"),
    path("pools/<int:pool_pk>/recovery/summary/", views.recovery_summary, name="recovery_summary"),
    path("pools/<int:pool_pk>/recovery/reclaim/", views.reclaim, name="reclaim"),
    path("pools/<int:pool_pk>/recovery/bulk/", views.bulk_reclaim, name="bulk_reclaim"),
    path("pools/<int:pool_pk>/recovery/exemptions/", views.exemption_add, name="exemption_add"),
    path(
        "pools/<int:pool_pk>/recovery/exemptions/<int:user_pk>/remove/", views.exemption_remove, name="exemption_remove"
    ),
]
