import django_filters

from pools.models import Pool


class PoolFilter(django_filters.FilterSet):
    # A plain number, not a choice of tenants, so that an unknown tenant and one outside the user's
    # scope both give an empty list rather than different errors.
    tenant = django_filters.NumberFilter(field_name="tenant_id", help_text="Only pools of this tenant (portal ID).")
    level = django_filters.ChoiceFilter(
        choices=[(1, "1"), (2, "2")], method="filter_level", help_text="Only level-1 or level-2 pools."
    )

    class Meta:
        model = Pool
        fields = ["tenant", "parent", "level"]

    def filter_level(self, queryset, name, value):
        return queryset.filter(parent__isnull=value == "1")
