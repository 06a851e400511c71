"""POST /$batch: up to 20 Graph requests in one call, each served on its own.

Every inner request goes through the same path as a direct request, with its own
faults, throttling, status, headers and body. Requests are served in the order
given, so a `dependsOn` target has run before its dependants. The responses come
back in a shuffled order, as Graph's may.
"""

from __future__ import annotations

import json
import logging
import random
import zlib
from typing import TYPE_CHECKING, Any

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from .errors import GraphError, bad_request, invalid_json_body
from .responses import json_response, read_json_body

if TYPE_CHECKING:
    from .app import EmulatorApp

logger = logging.getLogger(__name__)

MAX_BATCH_REQUESTS = 20
BATCH_METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE"})
# Headers that describe the HTTP message rather than the inner response.
_SKIPPED_RESPONSE_HEADERS = frozenset({"content-length", "strict-transport-security"})


def handle_batch(app: EmulatorApp, request: Request) -> Response:
    """Validate the batch body, serve each inner request and return the combined responses."""
    inner_requests = _parse_batch(request)
    statuses: dict[str, int] = {}
    responses = []
    for item in inner_requests:
        failed = [dependency for dependency in item.get("dependsOn") or [] if not 200 <= statuses[dependency] < 300]
        if failed:
            # NOTE: Graph returns 424 for a request whose dependency failed. The code and message are the emulator's.
            entry = {
                "id": item["id"],
                "status": 424,
                "headers": {"Content-Type": "application/json"},
                "body": {"error": {"code": "FailedDependency", "message": f"Dependent request {failed[0]} failed."}},
            }
        else:
            entry = _serve_inner(app, request, item)
        statuses[item["id"]] = entry["status"]
        responses.append(entry)

    _shuffle(responses)
    return json_response({"responses": responses})


def _parse_batch(request: Request) -> list[dict[str, Any]]:
    try:
        body = read_json_body(request)
    except ValueError:
        raise invalid_json_body() from None
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise bad_request("Invalid batch payload format: expected an object with a 'requests' array.", code="BadRequest")
    items = body["requests"]
    if len(items) > MAX_BATCH_REQUESTS:
        raise bad_request("Number of requests inside batch exceeds the limit.", code="BadRequest")
    seen: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            raise bad_request("Invalid batch payload format: every request must be an object.", code="BadRequest")
        request_id = item.get("id")
        if not isinstance(request_id, str) or not request_id:
            raise bad_request("Invalid batch payload format: every request needs a string 'id'.", code="BadRequest")
        if request_id in seen:
            # NOTE: Graph rejects duplicate ids with 400; the wording is the emulator's.
            raise bad_request(f"Batch request contains duplicate request id '{request_id}'.", code="BadRequest")
        method = item.get("method")
        if not isinstance(method, str) or method.upper() not in BATCH_METHODS:
            raise bad_request(f"Invalid method {method!r} in batch request '{request_id}'.", code="BadRequest")
        url = item.get("url")
        if not isinstance(url, str) or not url or url.lower().startswith(("http://", "https://")):
            raise bad_request(f"Batch request '{request_id}' needs a relative 'url', got {url!r}.", code="BadRequest")
        depends_on = item.get("dependsOn")
        if depends_on is not None:
            if not isinstance(depends_on, list) or not all(isinstance(dependency, str) for dependency in depends_on):
                raise bad_request(f"dependsOn of batch request '{request_id}' must be an array of request ids.", code="BadRequest")
            unknown = [dependency for dependency in depends_on if dependency not in seen]
            if unknown:
                raise bad_request(
                    f"Batch request '{request_id}' depends on '{unknown[0]}', which is not an earlier request of the batch.",
                    code="BadRequest",
                )
        headers = item.get("headers")
        if headers is not None and not isinstance(headers, dict):
            raise bad_request(f"headers of batch request '{request_id}' must be an object.", code="BadRequest")
        seen.append(request_id)
    return items


def _serve_inner(app: EmulatorApp, outer: Request, item: dict[str, Any]) -> dict[str, Any]:
    headers = {str(name): str(value) for name, value in (item.get("headers") or {}).items()}
    headers["Authorization"] = outer.headers.get("Authorization", "")
    data = None
    if "body" in item and item["body"] is not None:
        data = json.dumps(item["body"]).encode("utf-8")
        headers.setdefault("Content-Type", "application/json")
    path = "/v1.0/" + item["url"].lstrip("/")
    builder = EnvironBuilder(path=path, base_url=outer.host_url, method=item["method"].upper(), headers=headers, data=data)
    try:
        inner_request = Request(builder.get_environ())
    finally:
        builder.close()
    segments = [segment for segment in inner_request.path.split("/") if segment][1:]
    if [segment.lower() for segment in segments] == ["$batch"]:
        error = GraphError(400, "BadRequest", "A batch request cannot contain another batch request.")
        return {"id": item["id"], "status": 400, "headers": {}, "body": {"error": {"code": error.code, "message": error.message}}}
    response = app.serve_graph(inner_request, segments)
    return {
        "id": item["id"],
        "status": response.status_code,
        "headers": {name: value for name, value in response.headers.items() if name.lower() not in _SKIPPED_RESPONSE_HEADERS},
        "body": _response_body(response),
    }


def _response_body(response: Response) -> Any:
    data = response.get_data()
    if not data:
        return None
    if response.mimetype == "application/json":
        return json.loads(data)
    # NOTE: Graph may base64-encode non-JSON inner bodies; the emulator returns text as a string.
    return data.decode("utf-8", errors="replace")


def _shuffle(responses: list[dict[str, Any]]) -> None:
    """Reorder responses with a seed taken from their ids, so one batch always comes back the same way."""
    if len(responses) < 2:
        return
    original = [entry["id"] for entry in responses]
    random.Random(zlib.crc32("\0".join(original).encode("utf-8"))).shuffle(responses)
    if [entry["id"] for entry in responses] == original:
        responses.append(responses.pop(0))
