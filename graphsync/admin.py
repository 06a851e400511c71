from django.contrib import admin

from .models import SyncRun, Tenant


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant_id", "client_id", "authority_host", "last_synced_at"]
    # The client secret is set with `manage.py connect_tenant`; the admin never shows it.
    exclude = ["client_secret_encrypted"]


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = ["tenant", "status", "queued_at", "finished_at", "users_count", "error_message"]
    list_filter = ["status", "tenant"]
