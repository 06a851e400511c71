"""Page-number pagination of the REST API's list endpoints, with a checked ``page_size`` parameter."""
from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

# Larger pages would hold a database connection and a web worker for long, so clients page through instead.
MAX_PAGE_SIZE = 500


class PortalPageNumberPagination(PageNumberPagination):
    """``?page=`` and ``?page_size=`` from 1 to ``MAX_PAGE_SIZE``, with ``PAGE_SIZE`` from the settings as default.

    DRF's own class falls back to the default size for an invalid ``page_size`` and silently lowers one
    above the maximum, so a client gets another page size than it requested. This class rejects both
    with 400 instead.
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

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = _(
                    "Results per page, from 1 to %(max)s (default %(default)s). Other values are rejected with 400."
                ) % {"max": self.max_page_size, "default": self.page_size}
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": self.max_page_size}
        return parameters
