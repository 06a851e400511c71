"""API endpoints of the purchase ledger and of seat requests, scoped like the web UI."""
from __future__ import annotations

from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from graphsync.currencies import validate_currency_code
from graphsync.models import Sku, Subscription
from licensepools.date_validators import validate_purchase_date
from licensepools.api_errors import NamedNotFoundMixin
from licensepools.api_fields import CalendarDateField, PlainDecimalField
from pools import purchases, seat_requests
from pools.choices import PurchaseTerm, RequestStatus
from pools.exceptions import PoolsError
from pools.models import Purchase, SeatRequest
from rbac.choices import Action
from rbac import scoping
from rbac.scoping import ObjectNotFound, pools_for

from .serializers import ErrorSerializer

MAX_SEATS = 2_147_483_647


class PurchaseSerializer(serializers.ModelSerializer):
    tenant = serializers.PrimaryKeyRelatedField(read_only=True)
    pool = serializers.PrimaryKeyRelatedField(read_only=True)
    poolName = serializers.CharField(source="pool.__str__", read_only=True)
    skuId = serializers.UUIDField(source="sku.sku_id", read_only=True)
    partNumber = serializers.CharField(source="sku.part_number", read_only=True)
    purchasedOn = serializers.DateField(source="purchased_on", read_only=True)
    unitPrice = serializers.DecimalField(source="unit_price", max_digits=12, decimal_places=4, read_only=True)
    orderReference = serializers.CharField(source="order_reference", read_only=True)
    subscriptionId = serializers.CharField(
        source="subscription.subscription_id", read_only=True, allow_null=True, default=None,
        help_text="The linked commerce subscription; null when none or several matched.",
    )
    recordedBy = serializers.CharField(source="recorded_by.get_username", read_only=True, allow_null=True, default=None)
    recordedAt = serializers.DateTimeField(source="recorded_at", read_only=True)
    voidedAt = serializers.DateTimeField(
        source="voided_at", read_only=True, help_text="When the purchase was voided; null while it counts.",
    )
    voidedBy = serializers.CharField(source="voided_by.get_username", read_only=True, allow_null=True, default=None)
    voidReason = serializers.CharField(source="void_reason", read_only=True)

    class Meta:
        model = Purchase
        fields = [
            "id", "tenant", "pool", "poolName", "skuId", "partNumber", "quantity", "purchasedOn", "unitPrice",
            "currency", "term", "orderReference", "subscriptionId", "recordedBy", "recordedAt", "voidedAt",
            "voidedBy", "voidReason",
        ]
        read_only_fields = fields


class PurchaseCreatedSerializer(PurchaseSerializer):
    warnings = serializers.ListField(
        child=serializers.CharField(), read_only=True,
        help_text="Reasons to check the recorded purchase, such as a currency that is not the tenant's.",
    )

    class Meta(PurchaseSerializer.Meta):
        fields = [*PurchaseSerializer.Meta.fields, "warnings"]
        read_only_fields = fields


class PurchaseInputSerializer(serializers.Serializer):
    pool = serializers.IntegerField(help_text="The purchasing pool's portal ID (level 1 or 2).")
    skuId = serializers.UUIDField(help_text="The SKU's GUID, as subscribedSkus reports it.")
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_SEATS)
    purchasedOn = CalendarDateField(
        validators=[validate_purchase_date], help_text="From 2000-01-01 to today; a purchase is recorded once made.",
    )
    unitPrice = PlainDecimalField(
        max_digits=12, decimal_places=4, min_value=0,
        help_text='Per seat and month, as a string such as "33.75"; exponent notation ("1e3") is rejected.',
    )
    currency = serializers.CharField(
        required=False, allow_blank=True, default="", validators=[validate_currency_code],
        help_text="ISO 4217; empty uses the tenant's.",
    )
    term = serializers.ChoiceField(choices=PurchaseTerm.choices, default=PurchaseTerm.ANNUAL)
    orderReference = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    subscriptionId = serializers.CharField(
        max_length=100, required=False, allow_null=True, default=None,
        help_text="A commerce subscription to link; omitted links the one that matches, if exactly one does.",
    )
    confirmDuplicate = serializers.BooleanField(
        default=False,
        help_text="Record the purchase although one with the same SKU, pool, seats, date and price and no order "
                  "reference was recorded within the last day.",
    )


class VoidInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=purchases.MAX_VOID_REASON_LENGTH, help_text="Why the purchase is wrong.")


class PurchaseFilter(filters.FilterSet):
    # Plain numbers, so that an unknown object and one outside the user's scope both give an empty list.
    tenant = filters.NumberFilter(field_name="tenant_id", help_text="Only purchases of this tenant (portal ID).")
    pool = filters.NumberFilter(method="filter_pool", help_text="Only purchases for this pool and its level-2 pools.")
    skuId = filters.UUIDFilter(field_name="sku__sku_id", help_text="Only purchases of this SKU.")

    class Meta:
        model = Purchase
        fields = ["tenant", "pool", "skuId"]

    def filter_pool(self, queryset, name, value):
        return queryset.filter(Q(pool_id=value) | Q(pool__parent_id=value))


class PurchaseViewSet(NamedNotFoundMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The purchase ledger: tenants the user audits and pools the user may view; recording needs a tenant
    administrator."""

    queryset = Purchase.objects.none()
    not_found_message = _lazy("Purchase not found.")
    serializer_class = PurchaseSerializer
    lookup_value_regex = r"[0-9]+"
    filter_backends = [filters.DjangoFilterBackend]
    filterset_class = PurchaseFilter

    def get_queryset(self):
        return purchases.visible_purchases(self.request.user).order_by("-purchased_on", "-pk")

    @extend_schema(
        request=PurchaseInputSerializer,
        responses={
            201: PurchaseCreatedSerializer, 400: OpenApiResponse(ErrorSerializer, description="Rejected purchase."),
        },
        summary="Record a purchase and raise the pool's allotment",
    )
    def create(self, request: Request) -> Response:
        body = PurchaseInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        pool = pools_for(request.user, Action.ADMINISTER).select_related("tenant", "parent").filter(pk=data["pool"]).first()
        if pool is None:
            raise ObjectNotFound(_("Pool not found."))
        sku = Sku.objects.filter(tenant=pool.tenant, sku_id=data["skuId"]).first()
        if sku is None:
            message = _("The tenant has no SKU with the ID %(sku_id)s.") % {"sku_id": data["skuId"]}
            raise serializers.ValidationError({"skuId": [message]})
        subscription = None
        if data["subscriptionId"]:
            subscription = Subscription.objects.filter(tenant=pool.tenant, subscription_id=data["subscriptionId"]).first()
            if subscription is None:
                message = _("The tenant has no commerce subscription with the ID %(subscription)s.") % {
                    "subscription": data["subscriptionId"]
                }
                raise serializers.ValidationError({"subscriptionId": [message]})
        try:
            purchase = purchases.record_purchase(
                acting_user=request.user,
                data=purchases.PurchaseInput(
                    sku=sku, pool=pool, quantity=data["quantity"], purchased_on=data["purchasedOn"],
                    unit_price=data["unitPrice"], currency=data["currency"], term=data["term"],
                    order_reference=data["orderReference"],
                ),
                subscription=subscription,
                confirm_duplicate=data["confirmDuplicate"],
            )
        except PoolsError as exc:
            return Response({"detail": exc.message}, status=status.HTTP_400_BAD_REQUEST)
        warning = purchases.currency_warning(purchase)
        body = {**PurchaseSerializer(purchase).data, "warnings": [warning] if warning else []}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=VoidInputSerializer,
        responses={200: PurchaseSerializer, 409: OpenApiResponse(ErrorSerializer, description="Cannot be voided.")},
        summary="Void a wrong purchase and lower the pool's allotment by its seats",
    )
    @action(detail=True, methods=["post"])
    def void(self, request: Request, pk: str) -> Response:
        purchase = self.get_object()
        if not scoping.can_administer_tenant(request.user, purchase.tenant):
            raise ObjectNotFound(self.not_found_message)
        body = VoidInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            purchase = purchases.void_purchase(
                acting_user=request.user, purchase=purchase, reason=body.validated_data["reason"]
            )
        except PoolsError as exc:
            return Response({"detail": exc.message}, status=status.HTTP_409_CONFLICT)
        return Response(PurchaseSerializer(purchase).data)


class SeatRequestSerializer(serializers.ModelSerializer):
    tenant = serializers.PrimaryKeyRelatedField(read_only=True)
    pool = serializers.PrimaryKeyRelatedField(read_only=True)
    poolName = serializers.CharField(source="pool.__str__", read_only=True)
    skuId = serializers.UUIDField(source="sku.sku_id", read_only=True)
    partNumber = serializers.CharField(source="sku.part_number", read_only=True)
    requestedBy = serializers.CharField(source="requested_by.get_username", read_only=True, allow_null=True, default=None)
    requestedAt = serializers.DateTimeField(source="requested_at", read_only=True)
    decidedBy = serializers.CharField(source="decided_by.get_username", read_only=True, allow_null=True, default=None)
    decidedAt = serializers.DateTimeField(source="decided_at", read_only=True)
    decisionReason = serializers.CharField(source="decision_reason", read_only=True)

    class Meta:
        model = SeatRequest
        fields = [
            "id", "tenant", "pool", "poolName", "skuId", "partNumber", "quantity", "reason", "status", "requestedBy",
            "requestedAt", "decidedBy", "decidedAt", "decisionReason",
        ]
        read_only_fields = fields


class SeatRequestInputSerializer(serializers.Serializer):
    pool = serializers.IntegerField(help_text="The pool's portal ID.")
    skuId = serializers.UUIDField()
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_SEATS)
    reason = serializers.CharField(max_length=seat_requests.MAX_REASON_LENGTH)


class DecisionInputSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=seat_requests.MAX_REASON_LENGTH, required=False, allow_blank=True, default="",
        help_text="Required to decline; an optional note on approval.",
    )


class SeatRequestFilter(filters.FilterSet):
    tenant = filters.NumberFilter(field_name="tenant_id")
    pool = filters.NumberFilter(field_name="pool_id")
    status = filters.ChoiceFilter(choices=RequestStatus.choices)

    class Meta:
        model = SeatRequest
        fields = ["tenant", "pool", "status"]


DECISION_RESPONSES = {
    200: SeatRequestSerializer,
    409: OpenApiResponse(ErrorSerializer, description="Already decided, or the central reserve is too small."),
}


class SeatRequestViewSet(NamedNotFoundMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Seat requests of tenants the user administers or audits and of pools the user may view."""

    queryset = SeatRequest.objects.none()
    not_found_message = _lazy("Seat request not found.")
    serializer_class = SeatRequestSerializer
    lookup_value_regex = r"[0-9]+"
    filter_backends = [filters.DjangoFilterBackend]
    filterset_class = SeatRequestFilter

    def get_queryset(self):
        return seat_requests.visible_requests(self.request.user).order_by("-requested_at", "-pk")

    @extend_schema(
        request=SeatRequestInputSerializer,
        responses={201: SeatRequestSerializer, 400: OpenApiResponse(ErrorSerializer, description="Invalid request.")},
        summary="Ask for more seats of a SKU for a pool",
    )
    def create(self, request: Request) -> Response:
        body = SeatRequestInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        pool = seat_requests.requestable_pools(request.user).select_related("tenant", "parent").filter(
            pk=data["pool"]
        ).first()
        if pool is None:
            raise ObjectNotFound(_("Pool not found."))
        sku = Sku.objects.filter(tenant=pool.tenant, sku_id=data["skuId"]).first()
        if sku is None:
            message = _("The tenant has no SKU with the ID %(sku_id)s.") % {"sku_id": data["skuId"]}
            raise serializers.ValidationError({"skuId": [message]})
        try:
            seat_request = seat_requests.create_request(
                acting_user=request.user, pool=pool, sku=sku, quantity=data["quantity"], reason=data["reason"]
            )
        except PoolsError as exc:
            return Response({"detail": exc.message}, status=status.HTTP_400_BAD_REQUEST)
        return Response(SeatRequestSerializer(seat_request).data, status=status.HTTP_201_CREATED)

    def _decide(self, request: Request, operation, **kwargs) -> Response:
        seat_request = self.get_object()
        try:
            seat_request = operation(acting_user=request.user, seat_request=seat_request, **kwargs)
        except PoolsError as exc:
            return Response({"detail": exc.message}, status=status.HTTP_409_CONFLICT)
        return Response(SeatRequestSerializer(seat_request).data)

    @extend_schema(request=DecisionInputSerializer, responses=DECISION_RESPONSES, summary="Approve a seat request")
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        body = DecisionInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._decide(request, seat_requests.approve_request, note=body.validated_data["reason"])

    @extend_schema(request=DecisionInputSerializer, responses=DECISION_RESPONSES, summary="Decline a seat request")
    @action(detail=True, methods=["post"])
    def decline(self, request: Request, pk: str) -> Response:
        body = DecisionInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._decide(request, seat_requests.decline_request, reason=body.validated_data["reason"])

    @extend_schema(request=None, responses=DECISION_RESPONSES, summary="Withdraw your own pending seat request")
    @action(detail=True, methods=["post"])
    def withdraw(self, request: Request, pk: str) -> Response:
        return self._decide(request, seat_requests.withdraw_request)
