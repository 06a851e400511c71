from rest_framework import serializers

from graphsync.models import SyncRun, Tenant


class TenantSerializer(serializers.ModelSerializer):
    tenantId = serializers.UUIDField(source="tenant_id", read_only=True)
    lastSyncedAt = serializers.DateTimeField(source="last_synced_at", read_only=True)

    class Meta:
        model = Tenant
        fields = ["id", "name", "tenantId", "currency", "lastSyncedAt"]
        read_only_fields = fields


class SkuStockSerializer(serializers.Serializer):
    """One SKU of a tenant's stock (``pools.stock.TenantSkuStock``)."""

    skuId = serializers.UUIDField(source="sku.sku_id")
    partNumber = serializers.CharField(source="sku.part_number")
    name = serializers.CharField(source="sku.name")
    capabilityStatus = serializers.CharField(source="sku.capability_status")
    appliesTo = serializers.CharField(source="sku.applies_to")
    enabled = serializers.IntegerField(source="sku.enabled_units", help_text="Assignable prepaid units.")
    warning = serializers.IntegerField(source="sku.warning_units", help_text="Units in their grace period.")
    suspended = serializers.IntegerField(source="sku.suspended_units")
    lockedOut = serializers.IntegerField(source="sku.locked_out_units")
    inUse = serializers.IntegerField(source="holders", help_text="Users holding or reserving the SKU.")
    allotted = serializers.IntegerField(help_text="Seats allotted to level-1 pools.")
    reserve = serializers.IntegerField(
        help_text="Central reserve: what can still be allotted without promising seats that do not exist. It is "
        "enabled minus reserveInUse minus allottedUnused minus lapsedTrialUnits; negative when more is promised "
        "than exists, and at most 0 while the SKU is Suspended, LockedOut or Deleted."
    )
    reserveInUse = serializers.IntegerField(
        source="central.in_use",
        help_text="Units in use: inUse, or Graph's consumedUnits when that is larger.",
    )
    allottedUnused = serializers.IntegerField(
        source="central.unused_allotments",
        help_text="Seats allotted to level-1 pools that their members do not use yet.",
    )
    lapsedTrialUnits = serializers.IntegerField(
        source="central.lapsed_trial_units",
        help_text="Enabled units of trial subscriptions whose end date has passed, left out of the reserve.",
    )


class SyncRunSerializer(serializers.ModelSerializer):
    tenant = serializers.PrimaryKeyRelatedField(read_only=True)
    queuedAt = serializers.DateTimeField(source="queued_at", read_only=True)

    class Meta:
        model = SyncRun
        fields = ["id", "tenant", "status", "queuedAt"]
        read_only_fields = fields
