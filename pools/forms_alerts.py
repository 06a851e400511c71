"""Forms of the alerts pages: the alert e-mail preference, the alert list filter and drift actions."""
from django import forms
from django.utils.translation import gettext_lazy as _

from graphsync.models import Sku

from .models import AlertPreference


class AlertPreferenceForm(forms.ModelForm):
    class Meta:
        model = AlertPreference
        fields = ["daily_digest"]
        help_texts = {
            "daily_digest": _(
                "Receive one e-mail a day listing new and still open alerts, instead of one e-mail per alert as it is "
                "raised."
            ),
        }


class AlertFilterForm(forms.Form):
    OPEN = "open"
    RESOLVED = "resolved"
    STATE_CHOICES = [(OPEN, _("Open")), (RESOLVED, _("Resolved"))]

    state = forms.ChoiceField(label=_("Show"), choices=STATE_CHOICES, required=False)


class DriftActionForm(forms.Form):
    """The SKU whose drift in a pool is adopted or referred."""

    sku = forms.ModelChoiceField(queryset=Sku.objects.none(), widget=forms.HiddenInput)

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sku"].queryset = Sku.objects.filter(tenant=tenant)
