from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from graphsync.models import DirectoryUser, UserLicense
from pools.models import Allotment, Pool


class PoolSerializer(serializers.ModelSerializer):
    tenant = serializers.PrimaryKeyRelatedField(read_only=True)
    parent = serializers.PrimaryKeyRelatedField(read_only=True)
    name = serializers.CharField(read_only=True)
    level = serializers.IntegerField(read_only=True)
    isUnassigned = serializers.BooleanField(source="is_unassigned", read_only=True)

    class Meta:
        model = Pool
        fields = ["id", "tenant", "parent", "level", "name", "attribute", "isUnassigned"]
        read_only_fields = fields


class PoolSkuLineSerializer(serializers.Serializer):
    """Allotment, consumption and spare of one SKU in a pool (``pools.stock.PoolSkuLine``)."""

    skuId = serializers.UUIDField(source="sku.sku_id")
    partNumber = serializers.CharField(source="sku.part_number")
    name = serializers.CharField(source="sku.name")
    allotment = serializers.IntegerField(allow_null=True, help_text="Seats allotted; null when the pool has none.")
    consumption = serializers.IntegerField(help_text="Users of the pool and its level-2 pools holding the SKU.")
    spare = serializers.IntegerField(allow_null=True, help_text="Allotment minus consumption; negative means drift.")
    usableSpare = serializers.IntegerField(
        source="usable_spare", allow_null=True,
        help_text="The spare that assignments can use: the smaller of spare and tenantFreeUnits, at most 0 while the "
        "SKU is not assignable. Null when the pool has no allotment.",
    )
    tenantFreeUnits = serializers.IntegerField(
        source="tenant_free", allow_null=True, help_text="Enabled units of the SKU that nobody in the tenant uses."
    )
    assignable = serializers.SerializerMethodField(
        help_text="False while the SKU is Suspended, LockedOut or Deleted in the tenant, which takes no new assignment."
    )

    def get_assignable(self, line) -> bool:
        return not line.is_blocked


class PoolDetailSerializer(PoolSerializer):
    skus = PoolSkuLineSerializer(many=True, read_only=True, source="lines")

    class Meta(PoolSerializer.Meta):
        fields = [*PoolSerializer.Meta.fields, "skus"]
        read_only_fields = fields


class UserLicenseSerializer(serializers.ModelSerializer):
    skuId = serializers.UUIDField(source="sku.sku_id", read_only=True)
    partNumber = serializers.CharField(source="sku.part_number", read_only=True)
    assignedByGroup = serializers.CharField(
        source="assigned_by_group", read_only=True, help_text="Group ID; empty for a direct assignment."
    )
    disabledPlans = serializers.ListField(source="disabled_plans", child=serializers.CharField(), read_only=True)

    class Meta:
        model = UserLicense
        fields = ["skuId", "partNumber", "assignedByGroup", "state", "disabledPlans"]
        read_only_fields = fields


class AssignedLicenseSerializer(UserLicenseSerializer):
    """The license just assigned, with warnings about it that did not stop the assignment."""

    warnings = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="Warnings about the assignment, ready to show; empty when there are none. A warning is given when "
        "the user's account is disabled in Entra ID (accountEnabled false at the last sync): the license is "
        "assigned, and the seat shows as reclaimable at once.",
    )

    class Meta(UserLicenseSerializer.Meta):
        fields = [*UserLicenseSerializer.Meta.fields, "warnings"]
        read_only_fields = fields


class PoolUserSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="user_id", read_only=True, help_text="The Entra ID object ID.")
    userPrincipalName = serializers.CharField(source="user_principal_name", read_only=True)
    displayName = serializers.CharField(source="display_name", read_only=True)
    accountEnabled = serializers.BooleanField(source="account_enabled", read_only=True)
    usageLocation = serializers.CharField(source="usage_location", read_only=True)
    pool = serializers.PrimaryKeyRelatedField(read_only=True)
    licenses = UserLicenseSerializer(many=True, read_only=True)

    class Meta:
        model = DirectoryUser
        fields = [
            "id", "userPrincipalName", "displayName", "accountEnabled", "department", "usageLocation", "pool",
            "licenses",
        ]
        read_only_fields = fields


class AllotmentInputSerializer(serializers.Serializer):
    # DRF turns an empty form-encoded field into null, so null is rejected like the web form's empty field and
    # DELETE is the one way to remove an allotment. allow_null lets both reach validate_seats for one message.
    seats = serializers.IntegerField(
        allow_null=True, help_text="Seats of the SKU; 0 allots none. DELETE on the same URL removes the allotment."
    )

    def validate_seats(self, value: int | None) -> int:
        if value is None:
            raise serializers.ValidationError(
                _("seats is empty. Send 0 to allot no seats, or send DELETE to this URL to remove the allotment.")
            )
        return value


class AllotmentSerializer(serializers.ModelSerializer):
    pool = serializers.PrimaryKeyRelatedField(read_only=True)
    skuId = serializers.UUIDField(source="sku.sku_id", read_only=True)
    partNumber = serializers.CharField(source="sku.part_number", read_only=True)

    class Meta:
        model = Allotment
        fields = ["pool", "skuId", "partNumber", "seats"]
        read_only_fields = fields


class AllotmentResultSerializer(AllotmentSerializer):
    """The allotment just set, with warnings about it that did not stop the change."""

    warnings = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="Warnings about the allotment, ready to show; empty when there are none. A warning is given when "
        "the pool's members already hold more licenses of the SKU than the new allotment: nothing is revoked, "
        "and the pool cannot assign more until licenses are revoked or the allotment is raised.",
    )

    class Meta(AllotmentSerializer.Meta):
        fields = [*AllotmentSerializer.Meta.fields, "warnings"]
        read_only_fields = fields


class AssignLicenseSerializer(serializers.Serializer):
    skuId = serializers.UUIDField(help_text="The SKU's GUID, as subscribedSkus reports it.")
    disabledPlans = serializers.ListField(
        child=serializers.UUIDField(), required=False, default=list, help_text="Service plan IDs to turn off."
    )


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class RejectedSerializer(serializers.Serializer):
    """A change that the portal or Microsoft Graph rejected. ``detail`` is ready to show."""

    detail = serializers.CharField()
    code = serializers.ChoiceField(choices=["rejected", "graph_rejected"])
    graph_message = serializers.CharField(required=False, help_text="Graph's own error message.")
    graph_request_id = serializers.CharField(required=False, help_text="Graph's request-id, for Microsoft support.")
