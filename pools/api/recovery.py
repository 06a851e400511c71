"""API endpoints of seat recovery: a pool's reclaim candidates and per-user exemptions, scoped like the web UI."""
from __future__ import annotations

import dataclasses
import logging

from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from graphsync.models import DirectoryUser
from licensepools.pagination import MAX_PAGE_SIZE, PortalPageNumberPagination
from pools import recovery
from pools.exceptions import PoolsError
from pools.models import Pool
from rbac.choices import Action
from rbac.scoping import ObjectNotFound, get_pool_or_404

from .serializers import ErrorSerializer

logger = logging.getLogger(__name__)


class GroupSerializer(serializers.Serializer):
    id = serializers.CharField(source="group_id")
    displayName = serializers.CharField(source="name")


class HeldLicenseSerializer(serializers.Serializer):
    skuId = serializers.UUIDField(source="sku.sku_id")
    partNumber = serializers.CharField(source="sku.part_number")
    name = serializers.CharField(source="sku.name")
    direct = serializers.BooleanField(help_text="Assigned to the user directly.")
    groups = GroupSerializer(many=True, help_text="Groups the user also or only gets the SKU from.")
    redundantWith = serializers.UUIDField(
        source="redundant_with.sku_id", allow_null=True, default=None,
        help_text="The SKU whose enabled service plans include all of this one's; null when not redundant.",
    )
    reclaimable = serializers.BooleanField(help_text="Whether the portal can reclaim this license.")
    skipReason = serializers.CharField(source="skip_message", help_text="Why it is not reclaimable; empty when it is.")


class ReasonSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=["disabled", "inactive", "never_signed_in", "redundant"])
    message = serializers.CharField()


class ExemptionSerializer(serializers.Serializer):
    reason = serializers.CharField()
    createdBy = serializers.CharField(source="created_by.get_username", allow_null=True, default=None)
    createdAt = serializers.DateTimeField(source="created_at")


class CandidateSerializer(serializers.Serializer):
    userId = serializers.UUIDField(source="user.user_id")
    userPrincipalName = serializers.CharField(source="user.user_principal_name")
    displayName = serializers.CharField(source="user.display_name")
    pool = serializers.IntegerField(source="user.pool_id")
    accountEnabled = serializers.BooleanField(source="user.account_enabled")
    reasons = ReasonSerializer(many=True)
    lastSignIn = serializers.DateTimeField(
        source="last_sign_in", allow_null=True, help_text="Latest interactive, non-interactive or successful sign-in."
    )
    lastInteractiveSignIn = serializers.DateTimeField(source="user.last_interactive_sign_in_at", allow_null=True)
    lastNonInteractiveSignIn = serializers.DateTimeField(source="user.last_non_interactive_sign_in_at", allow_null=True)
    lastSuccessfulSignIn = serializers.DateTimeField(source="user.last_successful_sign_in_at", allow_null=True)
    daysInactive = serializers.IntegerField(source="days_inactive", allow_null=True)
    noSignInRecordedSince = serializers.DateTimeField(
        source="no_sign_in_since", allow_null=True,
        help_text="Start of Entra ID's sign-in records, for an older account without a recorded sign-in; else null.",
    )
    createdDateTime = serializers.DateTimeField(source="user.created_at_graph", allow_null=True)
    thresholdDays = serializers.IntegerField(source="threshold.days")
    licenses = HeldLicenseSerializer(many=True)
    exemption = ExemptionSerializer(allow_null=True)


class ThresholdSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    source = serializers.ChoiceField(choices=["pool", "parent", "tenant"])


class RecoveryReportSerializer(serializers.Serializer):
    pool = serializers.IntegerField(source="pool.pk")
    signInActivityAvailable = serializers.BooleanField(
        source="sign_in_available", allow_null=True, help_text="Null until a sync tried to read signInActivity."
    )
    statement = serializers.CharField(help_text="Why inactive accounts are not listed; empty when they are.")
    threshold = ThresholdSerializer()
    candidates = CandidateSerializer(many=True)
    exempted = CandidateSerializer(many=True, help_text="Members a reason applies to, hidden by their exemption.")


class RecoveryReportPageSerializer(RecoveryReportSerializer):
    """One page of a pool's reclaim candidates; ``exempted`` is listed whole on every page."""

    count = serializers.IntegerField(help_text="Number of candidates on all pages; exempted members are not counted.")
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    candidates = CandidateSerializer(many=True, help_text="The candidates of this page.")


class ExemptionInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=recovery.MAX_EXEMPTION_REASON_LENGTH)


class ExemptionOutputSerializer(ExemptionSerializer):
    userId = serializers.UUIDField(source="user.user_id")
    userPrincipalName = serializers.CharField(source="user.user_principal_name")


def _member_or_404(pool: Pool, user_id) -> DirectoryUser:
    user = pool.members_queryset().filter(user_id=user_id).select_related("pool").first()
    if user is None:
        raise ObjectNotFound(_("User not found."))
    return user


class ReclaimCandidatesView(APIView):
    """GET pools/{id}/reclaim-candidates/: the pool's reclaim candidates with reasons, and the exempted ones."""

    pagination_class = PortalPageNumberPagination

    @extend_schema(
        parameters=[
            OpenApiParameter("page", int, description='Page number from 1, or "last".'),
            OpenApiParameter(
                "page_size", int, description=(
                    f"Candidates per page, from 1 to {MAX_PAGE_SIZE} (default {PortalPageNumberPagination.page_size})."
                ),
            ),
        ],
        responses={
            200: RecoveryReportPageSerializer,
            400: OpenApiResponse(description="The page or page_size parameter is invalid."),
            404: OpenApiResponse(ErrorSerializer, description="No such pool, or a page beyond the last."),
        },
    )
    def get(self, request: Request, pool_pk: int) -> Response:
        pool = get_pool_or_404(request.user, Action.VIEW, pk=pool_pk)
        report = recovery.pool_report(pool)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(report.candidates, request, view=self)
        body = {
            "count": paginator.page.paginator.count,
            "next": paginator.get_next_link(),
            "previous": paginator.get_previous_link(),
            **RecoveryReportSerializer(dataclasses.replace(report, candidates=page)).data,
        }
        return Response(body)


class ExemptionView(APIView):
    """POST or DELETE pools/{id}/users/{user_id}/exemption/: exempt a member from reclaiming, or end that."""

    def _scope(self, request: Request, pool_pk: int, user_id) -> tuple[Pool, DirectoryUser]:
        pool = recovery.recoverable_pools(request.user).select_related("tenant", "parent").filter(pk=pool_pk).first()
        if pool is None:
            raise ObjectNotFound(_("Pool not found."))
        return pool, _member_or_404(pool, user_id)

    @extend_schema(
        request=ExemptionInputSerializer,
        responses={
            201: ExemptionOutputSerializer,
            400: OpenApiResponse(description="The reason is missing or too long."),
            404: ErrorSerializer,
            409: OpenApiResponse(ErrorSerializer, description="The user is exempt already."),
        },
    )
    def post(self, request: Request, pool_pk: int, user_id) -> Response:
        pool, user = self._scope(request, pool_pk, user_id)
        data = ExemptionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            exemption = recovery.add_exemption(
                acting_user=request.user, pool=pool, user=user, reason=data.validated_data["reason"]
            )
        except recovery.ExemptionExists as exc:
            return Response({"detail": exc.message}, status=status.HTTP_409_CONFLICT)
        except PoolsError as exc:
            return Response({"detail": exc.message}, status=status.HTTP_400_BAD_REQUEST)
        return Response(ExemptionOutputSerializer(exemption).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None, 404: ErrorSerializer})
    def delete(self, request: Request, pool_pk: int, user_id) -> Response:
        pool, user = self._scope(request, pool_pk, user_id)
        try:
            recovery.remove_exemption(acting_user=request.user, pool=pool, user=user)
        except Http404:
            raise ObjectNotFound(_("The user has no exemption.")) from None
        return Response(status=status.HTTP_204_NO_CONTENT)
