"""Forms of the seat recovery pages. Each one feeds a function of ``pools.recovery``, which enforces the rules."""
from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from .recovery import MAX_EXEMPTION_REASON_LENGTH

RETURN_TO_CHOICES = [("recovery", _("Recovery page")), ("pool", _("Pool page"))]


class IntegerListField(forms.Field):
    """A list of integers posted as repeated fields of one name, such as checked checkboxes."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        if not value:
            return []
        try:
            return [int(item) for item in value]
        except (TypeError, ValueError):
            raise ValidationError(_("The selection contains a value that is not a user ID."), code="invalid") from None


class ReclaimForm(forms.Form):
    """One license of one candidate; the view looks both up within the pool."""

    user = forms.IntegerField(widget=forms.HiddenInput)
    sku = forms.IntegerField(widget=forms.HiddenInput)
    return_to = forms.ChoiceField(choices=RETURN_TO_CHOICES, required=False, widget=forms.HiddenInput)


class BulkReclaimForm(forms.Form):
    users = IntegerListField(label=_("Candidates"), required=False)


class ExemptionForm(forms.Form):
    user_principal_name = forms.CharField(
        label=_("User principal name"),
        max_length=300,
        help_text=_("A member of this pool or of its level-2 pools."),
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=MAX_EXEMPTION_REASON_LENGTH,
        help_text=_("Why the user keeps the licenses, such as \"service account\" or \"shared mailbox\"."),
    )
    return_to = forms.ChoiceField(choices=RETURN_TO_CHOICES, required=False, widget=forms.HiddenInput)

    def clean_user_principal_name(self) -> str:
        return self.cleaned_data["user_principal_name"].strip()

    def clean_reason(self) -> str:
        reason = " ".join(self.cleaned_data["reason"].split())
        if not reason:
            raise ValidationError(_("Give a reason for the exemption."), code="required")
        return reason
