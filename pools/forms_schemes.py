"""Forms of the scheme page. Each feeds a function of ``pools.schemes``, which enforces the rules."""
from django import forms
from django.utils.translation import gettext_lazy as _

from graphsync.models import Tenant

from .choices import PoolAttribute
from .forms import SchemeForm
from .models import Pool

# Portal-value files above this size are rejected before parsing. At about 50 bytes a line, 10 MB is about 200,000 lines.
PORTAL_VALUES_MAX_BYTES = 10 * 1024 * 1024

__all__ = ["AliasForm", "MergeForm", "PortalValueForm", "PortalValuesUploadForm", "SchemeConfirmForm", "SchemeForm"]


class SchemeConfirmForm(forms.Form):
    """The previewed attributes and the preview's token, posted to apply exactly what was shown."""

    level1_attribute = forms.ChoiceField(choices=PoolAttribute.choices, widget=forms.HiddenInput)
    level2_attribute = forms.ChoiceField(
        choices=[("", "")] + PoolAttribute.choices, required=False, widget=forms.HiddenInput
    )
    token = forms.CharField(max_length=64, widget=forms.HiddenInput)


def _scheme_pools(tenant: Tenant):
    return (
        Pool.objects.filter(tenant=tenant, is_active=True, is_unassigned=False)
        .select_related("parent")
        .order_by("parent__display_name", "display_name")
    )


class AliasForm(forms.Form):
    pool = forms.ModelChoiceField(queryset=Pool.objects.none(), label=_("Pool"), empty_label=_("Choose a pool"))
    value = forms.CharField(
        label=_("Value to merge into the pool"),
        max_length=300,
        help_text=_("Users with this value (in any case or spacing) join the pool, for example Vertrieb into Sales."),
    )

    def __init__(self, *args, tenant: Tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pool"].queryset = _scheme_pools(tenant)


class MergeForm(forms.Form):
    source = forms.ModelChoiceField(
        queryset=Pool.objects.none(), label=_("Merge this pool"), empty_label=_("Choose a pool")
    )
    target = forms.ModelChoiceField(queryset=Pool.objects.none(), label=_("into this pool"), empty_label=_("Choose a pool"))

    def __init__(self, *args, tenant: Tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["source"].queryset = _scheme_pools(tenant)
        self.fields["target"].queryset = _scheme_pools(tenant)


class PortalValueForm(forms.Form):
    user_principal_name = forms.CharField(label=_("User principal name"), max_length=300)
    value = forms.CharField(
        label=_("Value"), max_length=300, required=False, help_text=_("Leave empty to clear the user's value.")
    )


class PortalValuesUploadForm(forms.Form):
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_(
            "Columns userPrincipalName,value with that header line, UTF-8 with or without a byte order mark. "
            "A blank value clears the user's value."
        ),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > PORTAL_VALUES_MAX_BYTES:
            raise forms.ValidationError(
                _("The file is %(size)s bytes; at most %(max)s bytes are accepted. Split it into smaller files."),
                params={"size": upload.size, "max": PORTAL_VALUES_MAX_BYTES},
            )
        return upload
