"""JSON error responses for the REST API, with messages written for the API's users.

Inside DRF views, ``api_exception_handler`` turns a bare ``Http404`` (whose message may name a model, such
as "No DirectoryUser matches the given query.") into "Not found.". Outside them (no URL matched, a server
error), the ``handler*`` views below return JSON for paths under /api/ and Django's HTML pages for every
other path.
"""
from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views import defaults
from rest_framework import exceptions
from rest_framework.views import exception_handler

from rbac.scoping import ObjectNotFound

API_PREFIX = "/api/"


def api_exception_handler(exc: Exception, context: dict) -> HttpResponse | None:
    """Build DRF's error response, keeping a 404 message only when it was written for users."""
    if isinstance(exc, ObjectNotFound):
        exc = exceptions.NotFound(str(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(_("Not found."))
    return exception_handler(exc, context)


class NamedNotFoundMixin:
    """A view set whose ``get_object`` raises ``not_found_message`` for missing and out-of-scope objects alike."""

    not_found_message = ""

    def get_object(self):
        try:
            return super().get_object()
        except Http404:
            raise ObjectNotFound(str(self.not_found_message)) from None


def is_api_request(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        message = _("No API endpoint matches %(path)s. The endpoints are listed at %(schema)s.") % {
            "path": request.path_info, "schema": "/api/schema/",
        }
        return JsonResponse({"detail": message}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_request(request):
        message = _("The server failed to handle the request. Try again; if it fails again, tell the administrator.")
        return JsonResponse({"detail": message}, status=500)
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        message = _("The request is invalid. Check its headers and body against the schema at %(schema)s.") % {
            "schema": "/api/schema/",
        }
        return JsonResponse({"detail": message}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api_request(request):
        return JsonResponse({"detail": _("You do not have permission to perform this action.")}, status=403)
    return defaults.permission_denied(request, exception)
