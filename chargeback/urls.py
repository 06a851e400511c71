from django.urls import path, register_converter

from . import views


class MonthConverter:
    """A month as ``YYYY-MM``. The view checks the month number and year range so that it can name a bad value."""

    regex = r"[0-9]{4}-[0-9]{2}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(MonthConverter, "month")

app_name = "chargeback"

urlpatterns = [
    path("tenants/<int:tenant_pk>/chargeback/", views.report, name="report"),
    path("tenants/<int:tenant_pk>/chargeback/<month:month>.csv", views.report_csv, name="report_csv"),
    path("tenants/<int:tenant_pk>/prices/", views.prices, name="prices"),
]
