"""URL patterns of the pools app for alerts and drift; pools/urls.py adds them under the "pools" namespace."""
from django.urls import path

from . import views_alerts

urlpatterns: list = [
    path("alerts/", views_alerts.alert_list, name="alerts"),
    path("alerts/preferences/", views_alerts.alert_preferences, name="alert_preferences"),
    path("tenants/<int:tenant_pk>/alerts/", views_alerts.tenant_alerts, name="tenant_alerts"),
    path("pools/<int:pool_pk>/drift/adopt/", views_alerts.drift_adopt, name="drift_adopt"),
    path("pools/<int:pool_pk>/drift/refer/", views_alerts.drift_refer, name="drift_refer"),
]
