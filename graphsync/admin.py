from django import forms
from django.contrib import admin

from .currencies import validate_currency_code
from .models import SyncRun, Tenant


class TenantAdminForm(forms.ModelForm):
    """The admin's tenant form; ``TenantAdmin`` supplies the model and fields."""

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"].strip()
        validate_currency_code(currency)
        return currency.upper()


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantAdminForm
    list_display = ["name", "tenant_id", "client_id", "authority_host", "last_synced_at"]
    # The client secret is set with `manage.py connect_tenant`; the admin never shows it.
    exclude = ["client_secret_encrypted"]


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = ["tenant", "status", "queued_at", "finished_at", "users_count", "error_message"]
    list_filter = ["status", "tenant"]
