"""The signed-in user's own account page, where they set the e-mail address that alerts and decisions go to.

Changing the address needs the current password, so that someone using an unattended session cannot
redirect the account's alert e-mails. Every change is written to the audit trail.
"""
from __future__ import annotations

import logging

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import BaseUserManager
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from licensepools.form_errors import NamedErrorsFormMixin
from pools.audit import record_event
from pools.choices import AuditAction

logger = logging.getLogger(__name__)


class EmailForm(NamedErrorsFormMixin, forms.Form):
    email = forms.EmailField(
        label=gettext_lazy("E-mail address"), required=False, max_length=254,
        help_text=gettext_lazy("Alert e-mails and seat request decisions go to this address. Leave it empty to "
                               "receive no e-mail."),
    )
    current_password = forms.CharField(
        label=gettext_lazy("Current password"), strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text=gettext_lazy("Confirms that you, not someone at your unattended session, change the address."),
    )

    def __init__(self, *args, user: AbstractBaseUser, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_email(self) -> str:
        return BaseUserManager.normalize_email(self.cleaned_data["email"].strip())

    def clean_current_password(self) -> str:
        password = self.cleaned_data["current_password"]
        if not self.user.check_password(password):
            raise forms.ValidationError(
                gettext_lazy("The password is not correct. Enter the password you sign in with."),
                code="password_incorrect",
            )
        return password


def set_own_email(*, acting_user: AbstractBaseUser, email: str) -> bool:
    """Set the acting user's e-mail address and audit the change. Return False when it already had that address."""
    with transaction.atomic():
        user = get_user_model().objects.select_for_update().get(pk=acting_user.pk)
        before = user.email
        if before == email:
            return False
        user.email = email
        user.save(update_fields=["email"])
        record_event(
            acting_user=acting_user, action=AuditAction.EMAIL_CHANGED, tenant=None, target=user.get_username(),
            before={"email": before}, after={"email": email},
        )
    acting_user.email = email
    logger.info("User %s changed their e-mail address", acting_user.pk)
    return True


@login_required
@require_http_methods(["GET", "POST"])
def email_page(request: HttpRequest) -> HttpResponse:
    form = EmailForm(request.POST or None, user=request.user, initial={"email": request.user.email})
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        changed = set_own_email(acting_user=request.user, email=email)
        if not changed:
            messages.info(request, _("Your e-mail address is unchanged."))
        elif email:
            messages.success(request, _("Alert e-mails now go to %(email)s.") % {"email": email})
        else:
            messages.success(request, _("Removed your e-mail address. The portal sends you no e-mail."))
        return redirect("account_email")
    status = 400 if request.method == "POST" else 200
    return render(request, "account/email.html", {"form": form}, status=status)
