from django import forms
from django.contrib import admin
from django.db.models import Case, F, Value, When
from django.db.models.functions import Coalesce, Lower, NullIf
from django.utils.translation import gettext as _

from pools.models import Pool

from .models import Grant
from .services import grant_role, remove_grant


class GrantPoolChoiceField(forms.ModelChoiceField):
    """Pools of every tenant, labelled with their tenant and marked when inactive, as in "Contoso / Sales"."""

    def label_from_instance(self, obj: Pool) -> str:
        label = f"{obj.tenant} / {obj}"
        if not obj.is_active:
            return _("%(pool)s (inactive)") % {"pool": label}
        return label


def pool_choices():
    """Return every pool with its tenant and parent, ordered by tenant and name, level-2 pools under their parent."""
    own_name = Coalesce(NullIf("name_override", Value("")), "display_name")
    parent_name = Coalesce(NullIf("parent__name_override", Value("")), "parent__display_name")
    return (
        Pool.objects.select_related("tenant", "parent")
        .annotate(
            level1_name=Lower(Case(When(parent__isnull=True, then=own_name), default=parent_name)),
            level1_id=Coalesce("parent_id", "id"),
        )
        .order_by(
            Lower("tenant__name"), "tenant_id", "level1_name", "level1_id", F("parent_id").asc(nulls_first=True),
            Lower(own_name), "id",
        )
    )


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    """Grants go through rbac.services so that guardian permissions and the audit trail follow."""

    list_display = ["__str__", "role", "tenant", "pool", "created_at"]
    list_filter = ["role", "tenant"]
    list_select_related = ["user", "group", "tenant", "pool__parent"]
    fields = ["user", "group", "role", "tenant", "pool"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "pool":
            kwargs["queryset"] = pool_choices()
            kwargs["form_class"] = GrantPoolChoiceField
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        # Changing a grant in place would leave its old permissions behind: remove it and add another.
        return False

    def save_model(self, request, obj, form, change):
        grant = grant_role(
            acting_user=request.user, role=obj.role, tenant=obj.tenant, user=obj.user, group=obj.group, pool=obj.pool
        )
        obj.pk = grant.pk

    def delete_model(self, request, obj):
        remove_grant(acting_user=request.user, grant=obj)

    def delete_queryset(self, request, queryset):
        for grant in queryset:
            remove_grant(acting_user=request.user, grant=grant)
