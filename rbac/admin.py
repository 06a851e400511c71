from django.contrib import admin

from .models import Grant
from .services import grant_role, remove_grant


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    """Grants go through rbac.services so that guardian permissions and the audit trail follow."""

    list_display = ["__str__", "role", "tenant", "pool", "created_at"]
    list_filter = ["role", "tenant"]
    fields = ["user", "group", "role", "tenant", "pool"]

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
