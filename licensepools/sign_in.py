"""Sign-in throttling with django-axes: the authentication backend and the page a locked-out sign-in gets."""
from __future__ import annotations

import math

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_cool_off
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import ngettext


class SignInThrottleBackend(AxesStandaloneBackend):
    """Refuse sign-ins of a locked-out user name and address; pass calls without a request to the next backend.

    django-axes raises on ``authenticate()`` without a request, but only code running inside the portal makes
    such calls (Django's test client among them): there is no client address to throttle. Every web sign-in
    (the portal's page, the Django admin's) passes its request.
    """

    def authenticate(self, request: HttpRequest | None, username: str | None = None, password: str | None = None,
                     **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def lockout_message(minutes: int, until: str) -> str:
    return ngettext(
        "Too many failed sign-ins with this user name. Try again in %(minutes)s minute, after %(time)s.",
        "Too many failed sign-ins with this user name. Try again in %(minutes)s minutes, after %(time)s.",
        minutes,
    ) % {"minutes": minutes, "time": until}


def lockout_response(request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None):
    """Render the sign-in page with a message saying when the user can try again, as 429 with Retry-After.

    The lockout ends the cool-off time after the latest failed attempt, which is this request.
    """
    cool_off = get_cool_off(request)
    attempted_at = getattr(request, "axes_attempt_time", None) or timezone.now()
    until = timezone.localtime(attempted_at + cool_off)
    seconds = max(1, math.ceil((until - timezone.now()).total_seconds()))
    minutes = math.ceil(seconds / 60)

    today = timezone.localtime().date()
    until_text = until.strftime("%H:%M %Z" if until.date() == today else "%Y-%m-%d %H:%M %Z")

    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    context = {
        "form": form,
        "lockout_message": lockout_message(minutes, until_text),
        "next": request.POST.get("next") or request.GET.get("next", ""),
    }
    response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return response
