"""API export of a tenant's audit trail, as JSON Lines or CSV, with the filters of the audit trail page."""
from __future__ import annotations

import logging

from django.core.exceptions import NON_FIELD_ERRORS
from django.http import HttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotAcceptable, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from pools.audit_export import CSV_FORMAT, JSON_LINES_FORMAT, export_response, start_export
from pools.choices import AuditAction, Outcome
from pools.forms_audit import AuditFilterForm
from pools.models import AuditEvent
from rbac.choices import Action
from rbac.scoping import get_tenant_or_404

from .serializers import ErrorSerializer

logger = logging.getLogger(__name__)


class JSONLinesRenderer(BaseRenderer):
    """Selects the JSON Lines export with ``?format=jsonl`` or ``Accept: application/x-ndjson``."""

    media_type = "application/x-ndjson"
    format = JSON_LINES_FORMAT
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        # The view streams the export itself and renders errors with JSONRenderer, so nothing calls this method.
        raise NotImplementedError


class CSVRenderer(JSONLinesRenderer):
    """Selects the CSV export with ``?format=csv`` or ``Accept: text/csv``."""

    media_type = "text/csv"
    format = CSV_FORMAT


class UnknownExportFormat(NotAcceptable):
    pass


class ExportNegotiation(DefaultContentNegotiation):
    """Content negotiation that rejects an unknown ``format`` with 406 and a message, where DRF returns 404."""

    def filter_renderers(self, renderers, format):
        matching = [renderer for renderer in renderers if renderer.format == format]
        if not matching:
            raise UnknownExportFormat(
                _('"%(format)s" is not an export format. Send format=jsonl for JSON Lines or format=csv for CSV.')
                % {"format": format}
            )
        return matching

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except UnknownExportFormat:
            raise
        except NotAcceptable:
            raise NotAcceptable(
                _("The export comes as JSON Lines (application/x-ndjson) or CSV (text/csv), and the request accepts "
                  "neither. Send format=jsonl or format=csv, or one of these types in the Accept header.")
            ) from None


class AuditExportEventSerializer(serializers.Serializer):
    """One event of the audit trail export, written as one line of JSON Lines."""

    # Only the OpenAPI schema uses this class, because ``pools.audit_export.json_line`` writes the lines.

    id = serializers.IntegerField()
    occurredAt = serializers.DateTimeField(help_text="ISO 8601 in UTC, such as 2025-03-01T09:30:00.000000Z.")
    actor = serializers.CharField(help_text='The user name, or "system" for syncs and tasks.')
    action = serializers.ChoiceField(choices=AuditAction.choices, help_text="The action's code.")
    actionLabel = serializers.CharField(help_text="The action's name in the request's language.")
    outcome = serializers.ChoiceField(choices=Outcome.choices)
    tenantId = serializers.IntegerField(help_text="The tenant's portal ID.")
    tenant = serializers.CharField(help_text="The tenant's name.")
    poolId = serializers.IntegerField(allow_null=True, help_text="Null after the pool was deleted or for no pool.")
    pool = serializers.CharField(help_text="The pool's name when the event was written.")
    targetUserId = serializers.UUIDField(allow_null=True, help_text="The target user's Entra ID object ID.")
    target = serializers.CharField(help_text="What the action changed, such as a user principal name.")
    skuPartNumber = serializers.CharField()
    before = serializers.JSONField(allow_null=True, help_text="The value before the change, as the service stored it.")
    after = serializers.JSONField(allow_null=True, help_text="The value after the change, as the service stored it.")
    message = serializers.CharField()
    graphRequestId = serializers.CharField(help_text="Microsoft Graph's request-id of the call, if one was made.")


EXPORT_DESCRIPTION = (
    "JSON Lines has one JSON object per line, each an event shaped as the schema shows. CSV is UTF-8 with a byte "
    "order mark, has the same fields as columns, and gives before and after as JSON text. A CSV cell that a "
    "spreadsheet would run as a formula starts with an apostrophe."
)
EXPORT_PARAMETERS = [
    OpenApiParameter(
        "format", str, enum=[JSON_LINES_FORMAT, CSV_FORMAT],
        description="jsonl returns JSON Lines, csv returns CSV. Overrides the Accept header. Without either, "
        "the export is JSON Lines.",
    ),
    OpenApiParameter("from", OpenApiTypes.DATE, description="The first day (UTC) of the range, included."),
    OpenApiParameter("to", OpenApiTypes.DATE, description="The last day (UTC) of the range, included."),
    OpenApiParameter("action", str, enum=AuditAction.values, description="Only events of this action."),
    OpenApiParameter("outcome", str, enum=Outcome.values, description="Only events with this outcome."),
    OpenApiParameter(
        "pool", int, description="Only events of this pool (portal ID) and, for a level-1 pool, of its level-2 pools."
    ),
    OpenApiParameter(
        "actor", str, description='Only events of this user name, in any case. "system" selects syncs and tasks.'
    ),
    OpenApiParameter("target", str, description="Only events whose target contains this text, in any case."),
]


def filter_errors(filters: AuditFilterForm) -> dict:
    """Return the form's errors by query parameter, with all of them joined in "detail"."""
    errors = {
        ("non_field_errors" if name == NON_FIELD_ERRORS else name): [str(error) for error in field_errors]
        for name, field_errors in filters.errors.items()
    }
    return {"detail": " ".join(message for messages in errors.values() for message in messages), **errors}


class TenantAuditExportView(APIView):
    """Streams the tenant's audit events, oldest first, and records the export in the audit trail."""

    renderer_classes = [JSONLinesRenderer, CSVRenderer]
    content_negotiation_class = ExportNegotiation

    def handle_exception(self, exc):
        # Errors are JSON objects with a "detail" message, as everywhere in the API, whatever the export format.
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)

    @extend_schema(
        parameters=EXPORT_PARAMETERS,
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(AuditExportEventSerializer, description=EXPORT_DESCRIPTION),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description=EXPORT_DESCRIPTION),
            (400, "application/json"): OpenApiResponse(
                ErrorSerializer, description="A filter is invalid. The key of each invalid filter lists its errors."
            ),
            (404, "application/json"): OpenApiResponse(
                ErrorSerializer, description="No such tenant, or its audit trail is outside your scope."
            ),
            (406, "application/json"): OpenApiResponse(
                ErrorSerializer, description="The request accepts neither JSON Lines nor CSV."
            ),
        },
        summary="Export the tenant's audit trail",
    )
    def get(self, request: Request, tenant_pk: int) -> HttpResponse:
        tenant = get_tenant_or_404(request.user, Action.AUDIT, pk=tenant_pk)
        filters = AuditFilterForm(request.query_params, tenant=tenant)
        if not filters.is_valid():
            raise ValidationError(filter_errors(filters))

        file_format = request.accepted_renderer.format
        export = start_export(
            acting_user=request.user, tenant=tenant,
            events=filters.filter_events(AuditEvent.objects.filter(tenant=tenant)),
            filters=filters.active_filters(), file_format=file_format, channel="api",
        )
        logger.info(
            "Audit trail of tenant %s exported through the API as %s by %s, filters %s", tenant.pk, file_format,
            request.user.get_username(), filters.active_filters(),
        )
        return export_response(export)
