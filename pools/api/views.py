"""API endpoints of pools: details with stock, members, allotments, and license assignment."""
from __future__ import annotations

import logging

from django.db.models import Prefetch, Q
from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from graphsync.models import DirectoryUser, Sku, UserLicense
from pools import services
from pools.exceptions import AllotmentError, AssignmentRejected, GraphRejected
from pools.models import Allotment, Pool
from pools.stock import pool_lines
from rbac.choices import Action
from rbac.scoping import ObjectNotFound, can_on_pool, get_pool_or_404, pools_for, users_for

from .filters import PoolFilter
from .serializers import (
    AllotmentInputSerializer,
    AllotmentResultSerializer,
    AssignedLicenseSerializer,
    AssignLicenseSerializer,
    ErrorSerializer,
    PoolDetailSerializer,
    PoolSerializer,
    PoolUserSerializer,
    RejectedSerializer,
)

logger = logging.getLogger(__name__)

GUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
USER_ID_PARAMETER = OpenApiParameter(
    "user_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The user's Entra ID object ID."
)
SKU_ID_PARAMETER = OpenApiParameter("sku_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The SKU's GUID.")
REJECTED_RESPONSE = OpenApiResponse(RejectedSerializer, description="The portal or Microsoft Graph rejected the change.")


def rejected_response(exc: AssignmentRejected | GraphRejected) -> Response:
    if isinstance(exc, GraphRejected):
        body = {
            "detail": exc.message,
            "code": "graph_rejected",
            "graph_message": exc.graph_message,
            "graph_request_id": exc.request_id,
        }
    else:
        body = {"detail": exc.message, "code": "rejected"}
    return Response(body, status=status.HTTP_409_CONFLICT)


class PoolViewSet(viewsets.ReadOnlyModelViewSet):
    """Active pools the user may view. Each change is scoped by what the user may do in the pool."""

    queryset = Pool.objects.none()
    lookup_value_regex = r"[0-9]+"
    filter_backends = [DjangoFilterBackend]
    filterset_class = PoolFilter

    def get_queryset(self):
        return pools_for(self.request.user, Action.VIEW).select_related("tenant", "parent").order_by("tenant_id", "pk")

    def get_serializer_class(self):
        if self.action == "retrieve":
            return PoolDetailSerializer
        if self.action == "users":
            return PoolUserSerializer
        return PoolSerializer

    def get_object(self) -> Pool:
        pool = get_pool_or_404(self.request.user, Action.VIEW, pk=self.kwargs["pk"])
        self.check_object_permissions(self.request, pool)
        return pool

    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        pool = self.get_object()
        pool.lines = pool_lines(pool)
        return Response(self.get_serializer(pool).data)

    def _pool_user(self, pool: Pool, action: Action, user_id: str) -> DirectoryUser:
        users = users_for(self.request.user, action).filter(tenant=pool.tenant, pool_id__in=pool.subtree_ids())
        member = users.filter(user_id=user_id).first()
        if member is None:
            raise ObjectNotFound(_("User not found."))
        return member

    def _pool_to_administer(self, pk: str) -> Pool:
        """Return the pool for an allotment change, or raise 404 outside the caller's scope and 403 inside it.

        Only someone who may view the pool gets 403, so it reveals no pool outside the caller's scope.
        """
        pool = get_pool_or_404(self.request.user, Action.VIEW, pk=pk)
        if not can_on_pool(self.request.user, Action.ADMINISTER, pool):
            raise PermissionDenied(
                _("Only tenant administrators change allotments, and you are not one in %(tenant)s. Ask a tenant "
                  "administrator to change the allotment of pool %(pool)s, or send a seat request.")
                % {"tenant": pool.tenant.name, "pool": str(pool)}
            )
        return pool

    @staticmethod
    def _tenant_sku(pool: Pool, sku_id: str) -> Sku:
        sku = Sku.objects.filter(tenant=pool.tenant, sku_id=sku_id).first()
        if sku is None:
            raise ObjectNotFound(_("SKU not found."))
        return sku

    @extend_schema(
        parameters=[OpenApiParameter("search", str, description="Part of the user principal name or display name.")],
        responses=PoolUserSerializer(many=True),
        summary="Members of the pool and its level-2 pools",
    )
    @action(detail=True, methods=["get"])
    def users(self, request: Request, pk: str) -> Response:
        pool = get_pool_or_404(request.user, Action.VIEW, pk=pk)
        members = (
            users_for(request.user, Action.VIEW)
            .filter(tenant=pool.tenant, pool_id__in=pool.subtree_ids())
            .prefetch_related(Prefetch("licenses", queryset=UserLicense.objects.select_related("sku")))
            .order_by("user_principal_name", "pk")
        )
        search = request.query_params.get("search", "").strip()
        if search:
            members = members.filter(Q(user_principal_name__icontains=search) | Q(display_name__icontains=search))
        page = self.paginate_queryset(members)
        return self.get_paginated_response(PoolUserSerializer(page, many=True).data)

    @extend_schema(
        request=AllotmentInputSerializer,
        parameters=[SKU_ID_PARAMETER],
        responses={
            200: OpenApiResponse(
                AllotmentResultSerializer,
                description="The allotment was set. `warnings` lists what the caller should know, such as members "
                "already holding more licenses than the new allotment.",
            ),
            400: OpenApiResponse(ErrorSerializer, description="The allotment would break a stock or level-2 limit."),
            403: OpenApiResponse(
                ErrorSerializer, description="The caller may view the pool but is not a tenant administrator."
            ),
        },
        summary="Set the pool's allotment of a SKU",
    )
    @action(detail=True, methods=["put"], url_path=rf"allotments/(?P<sku_id>{GUID_PATTERN})")
    def allotment(self, request: Request, pk: str, sku_id: str) -> Response:
        pool = self._pool_to_administer(pk)
        sku = self._tenant_sku(pool, sku_id)
        body = AllotmentInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            allotment = services.set_allotment(
                acting_user=request.user, pool=pool, sku=sku, seats=body.validated_data["seats"]
            )
        except AllotmentError as exc:
            return Response({"detail": exc.message}, status=status.HTTP_400_BAD_REQUEST)
        warning = services.over_allotment_warning(pool, sku)
        allotment.warnings = [warning] if warning else []
        return Response(AllotmentResultSerializer(allotment).data)

    @extend_schema(
        request=None,
        parameters=[SKU_ID_PARAMETER],
        responses={
            204: OpenApiResponse(description="The allotment was removed."),
            400: OpenApiResponse(
                ErrorSerializer,
                description="The pool is a level-1 pool whose level-2 pools have allotments of the SKU; remove "
                "theirs first.",
            ),
            403: OpenApiResponse(
                ErrorSerializer, description="The caller may view the pool but is not a tenant administrator."
            ),
            404: OpenApiResponse(ErrorSerializer, description="No such pool or SKU, or the pool has no allotment of it."),
        },
        summary="Remove the pool's allotment of a SKU",
    )
    @allotment.mapping.delete
    def remove_allotment(self, request: Request, pk: str, sku_id: str) -> Response:
        pool = self._pool_to_administer(pk)
        sku = self._tenant_sku(pool, sku_id)
        if not Allotment.objects.filter(pool=pool, sku=sku).exists():
            raise ObjectNotFound(_("%(pool)s has no allotment of %(sku)s to remove.") % {"pool": pool, "sku": sku.name})
        try:
            services.set_allotment(acting_user=request.user, pool=pool, sku=sku, seats=None)
        except AllotmentError as exc:
            logger.info(
                "Removing the allotment of %s from pool %s (tenant %s) by %s rejected: %s", sku.part_number, pool.pk,
                pool.tenant_id, request.user, exc.message,
            )
            return Response({"detail": exc.message}, status=status.HTTP_400_BAD_REQUEST)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=AssignLicenseSerializer,
        parameters=[USER_ID_PARAMETER],
        responses={
            201: OpenApiResponse(
                AssignedLicenseSerializer,
                description="The license was assigned. `warnings` lists what the caller should know, such as a "
                "user whose account is disabled in Entra ID.",
            ),
            409: REJECTED_RESPONSE,
        },
        summary="Assign a license to a member of the pool",
    )
    @action(detail=True, methods=["post"], url_path=rf"users/(?P<user_id>{GUID_PATTERN})/licenses")
    def licenses(self, request: Request, pk: str, user_id: str) -> Response:
        pool = get_pool_or_404(request.user, Action.ASSIGN, pk=pk)
        member = self._pool_user(pool, Action.ASSIGN, user_id)
        body = AssignLicenseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        sku = Sku.objects.filter(tenant=pool.tenant, sku_id=body.validated_data["skuId"]).first()
        if sku is None:
            message = _("The tenant has no SKU with the ID %(sku_id)s.") % {"sku_id": body.validated_data["skuId"]}
            raise serializers.ValidationError({"skuId": [message]})
        try:
            license_ = services.assign_license(
                acting_user=request.user, pool=pool, user=member, sku=sku,
                disabled_plans=[str(plan) for plan in body.validated_data["disabledPlans"]],
            )
        except (AssignmentRejected, GraphRejected) as exc:
            return rejected_response(exc)
        warning = services.disabled_account_warning(member)
        license_.warnings = [warning] if warning else []
        return Response(AssignedLicenseSerializer(license_).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        parameters=[USER_ID_PARAMETER, SKU_ID_PARAMETER],
        responses={204: OpenApiResponse(description="The direct assignment was removed."), 409: REJECTED_RESPONSE},
        summary="Revoke a member's direct license",
    )
    @action(
        detail=True, methods=["delete"], url_path=rf"users/(?P<user_id>{GUID_PATTERN})/licenses/(?P<sku_id>{GUID_PATTERN})"
    )
    def license(self, request: Request, pk: str, user_id: str, sku_id: str) -> Response:
        pool = get_pool_or_404(request.user, Action.ASSIGN, pk=pk)
        member = self._pool_user(pool, Action.ASSIGN, user_id)
        sku = self._tenant_sku(pool, sku_id)
        try:
            services.revoke_license(acting_user=request.user, pool=pool, user=member, sku=sku)
        except (AssignmentRejected, GraphRejected) as exc:
            return rejected_response(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)
