"""Typed Microsoft Graph errors that the rest of the product can act on."""
from __future__ import annotations


class GraphError(Exception):
    """An error response from Microsoft Graph or its token endpoint, or a failure to reach them."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "", request_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        details = ", ".join(
            part for part in (f"HTTP {self.status}" if self.status else "", self.code, self.request_id and f"request-id {self.request_id}") if part
        )
        return f"{self.message} ({details})" if details else self.message


class GraphAuthenticationError(GraphError):
    """The token endpoint rejected the app's credentials or Graph rejected the token."""


class GraphPermissionError(GraphError):
    """HTTP 403: the app registration lacks a permission or admin consent."""


class GraphNotFoundError(GraphError):
    """HTTP 404: the user, group or other resource does not exist."""


class GraphBadRequestError(GraphError):
    """HTTP 400: Graph rejected the request, such as an assignLicense that breaks a licensing rule."""


class GraphThrottledError(GraphError):
    """HTTP 429 after every retry was spent."""


class GraphServiceError(GraphError):
    """HTTP 5xx after every retry was spent."""


class GraphConnectionError(GraphError):
    """The connection to Graph or its sign-in endpoint failed or timed out after every retry was spent.

    ``host`` is the endpoint that could not be reached and ``reason`` a short plain-words cause from
    ``graphsync.client``. ``request_sent`` is False only when no attempt can have reached the endpoint,
    because every one failed before the request went out (refused, TLS handshake, name lookup). When it
    is True, a write may have been applied. ``detail`` keeps the transport's own error text for the logs.
    """

    def __init__(
        self, message: str, *, host: str = "", reason: str = "", request_sent: bool = True, detail: str = "",
        status: int | None = None, request_id: str = "",
    ) -> None:
        super().__init__(message, status=status, request_id=request_id)
        self.host = host
        self.reason = reason
        self.request_sent = request_sent
        self.detail = detail


def error_class_for_status(status: int) -> type[GraphError]:
    if status == 400:
        return GraphBadRequestError
    if status == 401:
        return GraphAuthenticationError
    if status == 403:
        return GraphPermissionError
    if status == 404:
        return GraphNotFoundError
    if status == 429:
        return GraphThrottledError
    if status >= 500:
        return GraphServiceError
    return GraphError
