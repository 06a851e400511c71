"""JSON responses with the headers that Microsoft Graph and Entra ID send."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from werkzeug.wrappers import Request, Response

from .errors import GraphError

GRAPH_CONTENT_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None, content_type: str = GRAPH_CONTENT_TYPE) -> Response:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(data, status=status, headers=headers or {}, content_type=content_type)


def graph_error_response(error: GraphError, request_id: str, client_request_id: str) -> Response:
    """Return Graph's error body: {"error": {"code", "message", "innerError": {...}}}."""
    body = {
        "error": {
            "code": error.code,
            "message": error.message,
            "innerError": {
                "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }
    headers = dict(error.headers)
    if error.status == 401:
        headers.setdefault(
            "WWW-Authenticate",
            'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
            'client_id="00000003-0000-0000-c000-000000000000"',
        )
    return json_response(body, status=error.status, headers=headers)


def read_json_body(request: Request) -> Any:
    """Return the parsed JSON body, or raise ValueError when it is not valid JSON."""
    data = request.get_data(cache=True)
    if not data.strip():
        return None
    return json.loads(data)
