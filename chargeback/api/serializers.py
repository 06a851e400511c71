from rest_framework import serializers


class ChargebackRowSerializer(serializers.Serializer):
    """One report row (``chargeback.reports.ReportRow``). Cost is null for license-days without a price."""

    pool = serializers.IntegerField(source="pool_id")
    poolName = serializers.CharField(source="pool_name")
    poolActive = serializers.BooleanField(
        source="pool_active", help_text="False for a pool of a replaced scheme or one merged into another."
    )
    poolMergedInto = serializers.IntegerField(
        source="merged_into_id", allow_null=True, help_text="The pool that took over an inactive pool in a merge."
    )
    skuId = serializers.UUIDField(source="sku_guid")
    partNumber = serializers.CharField(source="part_number")
    product = serializers.CharField(source="product_name")
    licenseDays = serializers.IntegerField(source="license_days")
    cost = serializers.DecimalField(max_digits=18, decimal_places=2, allow_null=True, coerce_to_string=True)
    currency = serializers.CharField(allow_blank=True, help_text="ISO 4217 code; empty when the days have no price.")


class ChargebackTotalSerializer(serializers.Serializer):
    currency = serializers.CharField()
    cost = serializers.DecimalField(max_digits=18, decimal_places=2, coerce_to_string=True)


class ChargebackReportSerializer(serializers.Serializer):
    tenant = serializers.IntegerField(source="tenant.pk")
    month = serializers.CharField(source="label", help_text="YYYY-MM")
    daysInMonth = serializers.IntegerField(source="days_in_month")
    chargedThrough = serializers.DateField(
        source="charged_through", allow_null=True, help_text="The last day charged; before the month ends while it runs."
    )
    licenseDays = serializers.IntegerField(source="license_days")
    unpricedLicenseDays = serializers.IntegerField(source="unpriced_license_days")
    totals = ChargebackTotalSerializer(many=True)
    rows = ChargebackRowSerializer(many=True)
