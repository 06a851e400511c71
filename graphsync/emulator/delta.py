"""GET /users/delta: a full round of pages, then only the users changed since the delta token.

Tokens are opaque to clients. A $deltatoken contains the tenant, the change log
sequence number it was issued at and the query options. A $skiptoken of a delta
round contains the range of sequence numbers it serves and the last user id served.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from werkzeug.wrappers import Response

from .errors import GraphError, bad_request
from .graph_schema import USER_COLLECTION_PROPERTIES, USER_DEFAULT_PROPERTIES, USER_PROPERTIES
from .odata import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, parse_select, parse_top, project
from .responses import json_response
from .state import parse_timestamp

if TYPE_CHECKING:
    from .graph_api import GraphRequest

# Delta links for identity resources expire after seven days. Graph then returns
# 400 syncStateNotFound with this message (Microsoft 365 Developer Blog, "Duration of
# change tracking tokens for identity and education resources", July 2020).
DELTA_TOKEN_LIFETIME = dt.timedelta(days=7)
SYNC_STATE_NOT_FOUND = "The sync state generation is not found. The delta token is expired and data must be synchronized again."


def _encode(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode(token: str) -> dict[str, Any] | None:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def _sync_state_not_found() -> GraphError:
    return GraphError(400, "syncStateNotFound", SYNC_STATE_NOT_FOUND)


def users_delta(graph: GraphRequest) -> Response:
    """Serve one page of GET /users/delta."""
    state = graph.state
    args = graph.request.args
    for option in ("$filter", "$search", "$orderby", "$skip"):
        if option in args:
            # NOTE: Graph's users/delta accepts a narrow $filter on id; the emulator accepts none of these options.
            raise bad_request(f"The query option {option} is not supported with delta queries.", code="Request_UnsupportedQuery")

    with state.lock:
        state.purge_expired_deletions()
        if "$skiptoken" in args:
            page = _decode(args["$skiptoken"])
            if page is None or page.get("kind") != "delta" or page.get("tenant") != state.tenant_id:
                raise GraphError(
                    400,
                    "Directory_ExpiredPageToken",
                    "The specified page token value has expired and can no longer be included in your request.",
                )
            if page["since"] is not None and page["since"] < state.delta_floor:
                raise _sync_state_not_found()
        elif "$deltatoken" in args:
            page = _start_from_delta_token(graph, args["$deltatoken"])
            if page is None:
                return _latest_response(graph)
        else:
            select = parse_select(args.get("$select"), USER_PROPERTIES, "microsoft.graph.user")
            top = parse_top(args.get("$top"), MAX_PAGE_SIZE)
            page = {
                "kind": "delta",
                "tenant": state.tenant_id,
                "since": None,
                "until": state.change_sequence,
                "after": None,
                "select": list(select) if select is not None else None,
                "top": top,
            }
        return _serve_page(graph, page)


def _start_from_delta_token(graph: GraphRequest, token: str) -> dict[str, Any] | None:
    """Return the first page of a change round, or None for $deltatoken=latest."""
    state = graph.state
    if token == "latest":
        return None
    payload = _decode(token)
    if payload is None or payload.get("kind") != "deltaToken" or payload.get("tenant") != state.tenant_id:
        raise _sync_state_not_found()
    sequence = payload.get("sequence")
    if not isinstance(sequence, int) or not state.delta_floor <= sequence <= state.change_sequence:
        raise _sync_state_not_found()
    try:
        issued = parse_timestamp(payload["issued"])
    except (KeyError, TypeError, ValueError):
        raise _sync_state_not_found() from None
    if parse_timestamp(state.clock()) - issued > DELTA_TOKEN_LIFETIME:
        raise _sync_state_not_found()
    return {
        "kind": "delta",
        "tenant": state.tenant_id,
        "since": sequence,
        "until": state.change_sequence,
        "after": None,
        "select": payload.get("select"),
        "top": payload.get("top"),
    }


def _latest_response(graph: GraphRequest) -> Response:
    """Serve $deltatoken=latest: no users, and a delta link from the current state."""
    select = parse_select(graph.request.args.get("$select"), USER_PROPERTIES, "microsoft.graph.user")
    top = parse_top(graph.request.args.get("$top"), MAX_PAGE_SIZE)
    body = {
        "@odata.context": _context(graph, list(select) if select is not None else None),
        "@odata.deltaLink": _delta_link(graph, graph.state.change_sequence, list(select) if select else None, top),
        "value": [],
    }
    return json_response(body)


def _serve_page(graph: GraphRequest, page: dict[str, Any]) -> Response:
    state = graph.state
    select = page["select"]
    properties = tuple(select) if select else USER_DEFAULT_PROPERTIES
    page_size = page["top"] or DEFAULT_PAGE_SIZE
    after = page["after"]

    if page["since"] is None:
        candidates = state.user_ids_after(after)
    else:
        candidates = iter([user_id for user_id in state.changed_user_ids(page["since"], page["until"]) if after is None or user_id > after])

    items: list[dict[str, Any]] = []
    last_id: str | None = None
    more = False
    for user_id in candidates:
        item = _delta_item(graph, user_id, properties, initial=page["since"] is None)
        if item is None:
            continue
        if len(items) == page_size:
            more = True
            break
        items.append(item)
        last_id = user_id

    body: dict[str, Any] = {"@odata.context": _context(graph, select)}
    if more and last_id is not None:
        token = _encode({**page, "after": last_id})
        body["@odata.nextLink"] = f"{_delta_url(graph)}?$skiptoken={token}"
    else:
        body["@odata.deltaLink"] = _delta_link(graph, page["until"], select, page["top"])
    body["value"] = items
    return json_response(body)


def _delta_item(graph: GraphRequest, user_id: str, properties: tuple[str, ...], initial: bool) -> dict[str, Any] | None:
    """Return a user's entry in a delta page: its properties, an @removed marker, or None to skip it.

    NOTE: Graph returns at least the changed properties of an updated user; the
    emulator returns every selected property, which clients must accept as well.
    """
    state = graph.state
    if user_id in state.users:
        return project(state.render_user(user_id), properties, USER_COLLECTION_PROPERTIES)
    if initial:
        return None
    if user_id in state.deleted_users:
        return {"id": user_id, "@removed": {"reason": "changed"}}
    if user_id in state.purged_user_ids:
        return {"id": user_id, "@removed": {"reason": "deleted"}}
    return None


def _context(graph: GraphRequest, select: list[str] | None) -> str:
    return graph.context("users" if not select else f"users({','.join(select)})")


def _delta_url(graph: GraphRequest) -> str:
    return f"{graph.base}/users/delta"


def _delta_link(graph: GraphRequest, sequence: int, select: list[str] | None, top: int | None) -> str:
    token = _encode(
        {
            "kind": "deltaToken",
            "tenant": graph.state.tenant_id,
            "sequence": sequence,
            "issued": graph.state.clock(),
            "select": select,
            "top": top,
        }
    )
    return f"{_delta_url(graph)}?$deltatoken={quote(token)}"
