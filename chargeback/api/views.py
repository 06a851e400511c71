"""API endpoint of chargeback reports, as JSON or as the CSV file the portal offers."""
from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chargeback.exports import csv_response
from chargeback.forms import MonthForm
from chargeback.reports import InvalidMonth, build_report, parse_month
from rbac.choices import Action
from rbac.scoping import chargeback_pools_for, get_tenant_or_404

from .serializers import ChargebackReportSerializer


class CSVRenderer(BaseRenderer):
    """A renderer that lets ``?format=csv`` and ``Accept: text/csv`` select the CSV export, which the view writes itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # Only error responses reach this method, because the view returns the report as a finished HttpResponse.
        detail = data.get("detail", "") if isinstance(data, dict) else ""
        return str(detail).encode("utf-8")


class TenantChargebackView(APIView):
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter("month", str, description="The month as YYYY-MM. Defaults to the current month (UTC)."),
            OpenApiParameter("format", str, enum=["json", "csv"], description="csv returns the CSV export."),
        ],
        responses={
            (200, "application/json"): ChargebackReportSerializer,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="The report as CSV, UTF-8 with BOM."),
        },
        summary="Monthly chargeback report",
    )
    def get(self, request: Request, tenant_pk: int):
        tenant = get_tenant_or_404(request.user, Action.CHARGEBACK, pk=tenant_pk)
        try:
            year, month = parse_month(request.query_params.get("month") or MonthForm.current_month())
        except InvalidMonth as exc:
            return Response({"detail": exc.message, "month": [exc.message]}, status=400)
        pools = chargeback_pools_for(request.user).filter(tenant=tenant)
        report = build_report(tenant=tenant, year=year, month=month, pools=pools)
        if request.accepted_renderer.format == "csv":
            return csv_response(report)
        return Response(ChargebackReportSerializer(report).data)
