"""URL patterns of the audit trail page and its downloads; pools/urls.py adds them under the "pools" namespace."""
from django.urls import path

from . import views_audit as views
from .audit_export import CSV_FORMAT, JSON_LINES_FORMAT

urlpatterns: list = [
    path("tenants/<int:tenant_pk>/audit/", views.audit_log, name="audit"),
    path(
        "tenants/<int:tenant_pk>/audit/export.csv", views.audit_export, {"file_format": CSV_FORMAT},
        name="audit_export_csv",
    ),
    path(
        "tenants/<int:tenant_pk>/audit/export.jsonl", views.audit_export, {"file_format": JSON_LINES_FORMAT},
        name="audit_export_jsonl",
    ),
]
