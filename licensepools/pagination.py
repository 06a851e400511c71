"""Page-number pagination of the REST API's list endpoints, with checked ``page`` and ``page_size`` parameters."""
from __future__ import annotations

from django.core.paginator import InvalidPage, Paginator
from django.utils.translation import gettext as _
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

# Larger pages would hold a database connection and a web worker for long, so clients page through instead.
MAX_PAGE_SIZE = 500


class PortalPageNumberPagination(PageNumberPagination):
    """``?page=`` and ``?page_size=`` from 1 to ``MAX_PAGE_SIZE``, with ``PAGE_SIZE`` from the settings as default.

    DRF's own class falls back to the default size for an invalid ``page_size`` and silently lowers one
    above the maximum, so a client gets another page size than it requested. This class rejects both
    with 400 instead. DRF also returns 404 "Invalid page." for a ``page`` that is not a number, which
    names neither the value nor the fix. Here such a value gets 400 keyed by the parameter, like an
    invalid ``page_size``. A whole number beyond the last page keeps DRF's 404, because that page does
    not exist, and the message names the last page.
    """

    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        value = raw.strip()
        if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= self.max_page_size:
            raise ValidationError({
                self.page_size_query_param: [
                    _('"%(value)s" is not a valid page_size. Send a whole number from 1 to %(max)s.')
                    % {"value": raw, "max": self.max_page_size}
                ]
            })
        return int(value)

    def get_page_number(self, request: Request, paginator: Paginator) -> int:
        raw = request.query_params.get(self.page_query_param)
        if raw is None or raw == "":
            return 1
        value = raw.strip()
        if value in self.last_page_strings:
            return paginator.num_pages
        if not value.isascii() or not value.isdigit() or int(value) < 1:
            raise ValidationError({
                self.page_query_param: [
                    _('"%(value)s" is not a valid page. Send a whole number from 1, or "last" for the last page.')
                    % {"value": raw}
                ]
            })
        return int(value)

    def paginate_queryset(self, queryset, request: Request, view=None) -> list:
        self.request = request
        paginator = self.django_paginator_class(queryset, self.get_page_size(request))
        number = self.get_page_number(request, paginator)
        try:
            self.page = paginator.page(number)
        except InvalidPage:
            raise NotFound(
                _("Page %(page)s does not exist: the last page is %(last)s. Send a page from 1 to %(last)s.")
                % {"page": number, "last": paginator.num_pages}
            ) from None
        if paginator.num_pages > 1 and self.template is not None:
            # The browsable API shows pagination controls.
            self.display_page_controls = True
        return list(self.page)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = _(
                    "Results per page, from 1 to %(max)s (default %(default)s). Other values are rejected with 400."
                ) % {"max": self.max_page_size, "default": self.page_size}
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
            if parameter["name"] == self.page_query_param:
                parameter["description"] = _(
                    'Page number from 1, or "last". Other values are rejected with 400, and a page beyond the last '
                    "with 404."
                )
        return parameters
