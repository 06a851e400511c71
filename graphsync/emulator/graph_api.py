"""Microsoft Graph v1.0 endpoints for users, groups, SKUs, subscriptions and license assignment."""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from werkzeug.wrappers import Request, Response

from . import delta, licensing, reports, user_updates
from .errors import GraphError, bad_request, invalid_json_body, resource_not_found
from .graph_schema import (
    GROUP_COLLECTION_PROPERTIES,
    GROUP_DEFAULT_PROPERTIES,
    GROUP_PROPERTIES,
    USER_COLLECTION_PROPERTIES,
    USER_DEFAULT_PROPERTIES,
    USER_PROPERTIES,
)
from .odata import (
    MAX_PAGE_SIZE,
    CollectionQuery,
    compile_filter,
    compile_search,
    decode_skiptoken,
    encode_skiptoken,
    parse_select,
    parse_top,
    project,
)
from .responses import json_response, read_json_body
from .state import TenantState

if TYPE_CHECKING:
    from .app import EmulatorApp

logger = logging.getLogger(__name__)

# Graph allows at most 500 users per page when signInActivity is selected.
SIGN_IN_ACTIVITY_MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class EntitySet:
    """Listing and rendering settings of one directory collection."""

    name: str
    entity_type: str
    properties: tuple[str, ...]
    default_properties: tuple[str, ...]
    collection_properties: frozenset[str]


USERS = EntitySet("users", "microsoft.graph.user", USER_PROPERTIES, USER_DEFAULT_PROPERTIES, USER_COLLECTION_PROPERTIES)
GROUPS = EntitySet("groups", "microsoft.graph.group", GROUP_PROPERTIES, GROUP_DEFAULT_PROPERTIES, GROUP_COLLECTION_PROPERTIES)


class GraphRequest:
    """One authenticated Graph request with the tenant it addresses."""

    def __init__(self, request: Request, state: TenantState, app: EmulatorApp | None = None) -> None:
        self.request = request
        self.state = state
        self.app = app
        self.base = request.host_url.rstrip("/") + "/v1.0"

    def context(self, fragment: str) -> str:
        return f"{self.base}/$metadata#{fragment}"


def dispatch(graph: GraphRequest, segments: list[str]) -> Response:
    """Route a Graph path (the segments after /v1.0) to its handler."""
    method = graph.request.method
    lowered = [segment.lower() for segment in segments]
    if not segments:
        raise bad_request("Invalid request.", code="BadRequest")
    head = lowered[0]

    if head == "users":
        if len(segments) == 1:
            _require_method(method, "GET")
            return list_users(graph)
        if len(segments) == 2 and lowered[1] == "$count":
            _require_method(method, "GET")
            return count_users(graph)
        if len(segments) == 2 and lowered[1] == "delta":
            _require_method(method, "GET")
            return delta.users_delta(graph)
        key = segments[1]
        if len(segments) == 2:
            if method == "PATCH":
                return user_updates.update_user(graph.state, key, _json_body(graph.request))
            _require_method(method, "GET")
            return get_user(graph, key)
        if len(segments) == 3 and lowered[2] == "licensedetails":
            _require_method(method, "GET")
            return list_license_details(graph, key)
        if len(segments) == 3 and lowered[2] == "assignlicense":
            _require_method(method, "POST")
            user = licensing.assign_user_licenses(graph.state, key, _json_body(graph.request))
            return _entity_response(graph, USERS, user, None)
        if len(segments) == 3 and lowered[2] == "reprocesslicenseassignment":
            _require_method(method, "POST")
            return reprocess_user(graph, key)
    elif head == "groups":
        if len(segments) == 1:
            _require_method(method, "GET")
            return list_groups(graph)
        key = segments[1]
        if len(segments) == 2:
            _require_method(method, "GET")
            return get_group(graph, key)
        if len(segments) == 3 and lowered[2] == "members":
            _require_method(method, "GET")
            return list_group_members(graph, key)
        if len(segments) == 3 and lowered[2] == "assignlicense":
            _require_method(method, "POST")
            group = licensing.assign_group_licenses(graph.state, key, _json_body(graph.request))
            body = {"@odata.context": graph.context("groups/$entity"), **group}
            location = f"{graph.base}/groups/{group['id']}"
            return json_response(body, status=202, headers={"Location": location})
    elif head == "subscribedskus" and len(segments) == 1:
        _require_method(method, "GET")
        return list_subscribed_skus(graph)
    elif head == "subscribedskus" and len(segments) == 2:
        _require_method(method, "GET")
        return get_subscribed_sku(graph, segments[1])
    elif head == "directory" and lowered[1:] == ["subscriptions"]:
        _require_method(method, "GET")
        return list_subscriptions(graph)
    elif head == "reports" and len(segments) == 2:
        _require_method(method, "GET")
        return reports.office365_active_user_detail(graph, segments[1])
    elif head == "organization" and len(segments) == 1:
        _require_method(method, "GET")
        return list_organization(graph)
    unknown = segments[-1] if len(segments) > 1 else segments[0]
    raise GraphError(400, "BadRequest", f"Resource not found for the segment '{unknown}'.")


def _require_method(method: str, allowed: str) -> None:
    if method != allowed:
        # NOTE: Graph's code and message for a wrong method vary by resource, so these are the emulator's choice.
        raise GraphError(405, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")


def _json_body(request: Request) -> Any:
    try:
        return read_json_body(request)
    except ValueError:
        raise invalid_json_body() from None


# Users


def list_users(graph: GraphRequest) -> Response:
    page_check = graph.app.faults.check_page if graph.app is not None else None
    return _list_collection(graph, USERS, graph.state.user_ids_after, graph.state.render_user, page_check=page_check)


def count_users(graph: GraphRequest) -> Response:
    """Serve GET /users/$count as text/plain, applying $filter and $search when given."""
    if not _has_eventual_consistency(graph):
        raise bad_request("$count is not currently supported.")
    args = graph.request.args
    predicates = []
    if "$filter" in args:
        predicates.append(compile_filter(args["$filter"], USERS.properties, USERS.name).predicate)
    if "$search" in args:
        predicates.append(compile_search(args["$search"], USERS.properties))
    state = graph.state
    with state.lock:
        if predicates:
            count = sum(1 for user_id in state.user_ids if all(predicate(state.render_user(user_id)) for predicate in predicates))
        else:
            count = len(state.user_ids)
    return Response(str(count), content_type="text/plain; charset=utf-8")


def _has_eventual_consistency(graph: GraphRequest) -> bool:
    return graph.request.headers.get("ConsistencyLevel", "").lower() == "eventual"


def _require_search_header(graph: GraphRequest, searching: bool) -> None:
    if searching and not _has_eventual_consistency(graph):
        raise bad_request(
            "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'",
            code="Request_UnsupportedQuery",
        )


def get_user(graph: GraphRequest, key: str) -> Response:
    state = graph.state
    select = _parse_entity_select(graph, USERS)
    user_id = state.find_user(key)
    if user_id is None:
        raise resource_not_found(key)
    return _entity_response(graph, USERS, state.render_user(user_id), select)


def list_license_details(graph: GraphRequest, key: str) -> Response:
    state = graph.state
    with state.lock:
        user_id = state.find_user(key)
        if user_id is None:
            raise resource_not_found(key)
        details = []
        for license_ in state.assigned_licenses(user_id):
            sku = state.skus[license_["skuId"]]
            disabled = set(license_["disabledPlans"])
            details.append(
                {
                    "id": _license_detail_id(user_id, license_["skuId"]),
                    "skuId": license_["skuId"],
                    "skuPartNumber": sku["skuPartNumber"],
                    "servicePlans": [
                        {
                            "servicePlanId": plan["servicePlanId"],
                            "servicePlanName": plan["servicePlanName"],
                            "provisioningStatus": "Disabled" if plan["servicePlanId"].lower() in disabled else "Success",
                            "appliesTo": plan.get("appliesTo", "User"),
                        }
                        for plan in sku["servicePlans"]
                    ],
                }
            )
    body = {"@odata.context": graph.context(f"users('{user_id}')/licenseDetails"), "value": details}
    return json_response(body)


def _license_detail_id(user_id: str, sku_id: str) -> str:
    # Graph's licenseDetails id is 32 bytes in URL-safe base64. The emulator derives the bytes
    # from the user and SKU ids so that the id is stable.
    raw = uuid.UUID(user_id).bytes_le + uuid.UUID(sku_id).bytes_le
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def reprocess_user(graph: GraphRequest, key: str) -> Response:
    state = graph.state
    with state.lock:
        user_id = state.find_user(key)
        if user_id is None:
            raise resource_not_found(key)
        state.reprocess_user(user_id)
        user = state.render_user(user_id)
    return _entity_response(graph, USERS, user, None)


# Groups


def list_groups(graph: GraphRequest) -> Response:
    return _list_collection(graph, GROUPS, graph.state.group_ids_after, graph.state.render_group)


def get_group(graph: GraphRequest, key: str) -> Response:
    select = _parse_entity_select(graph, GROUPS)
    group_id = graph.state.find_group(key)
    if group_id is None:
        raise resource_not_found(key)
    return _entity_response(graph, GROUPS, graph.state.render_group(group_id), select)


def list_group_members(graph: GraphRequest, key: str) -> Response:
    state = graph.state
    group_id = state.find_group(key)
    if group_id is None:
        raise resource_not_found(key)

    def member_ids_after(cursor: str | None) -> Iterable[str]:
        with state.lock:
            members = sorted(member for member in state.group_members[group_id] if member in state.users)
        return (member for member in members if cursor is None or member > cursor)

    return _list_collection(graph, USERS, member_ids_after, state.render_user, context_name="directoryObjects")


# Licenses and subscriptions


def list_subscribed_skus(graph: GraphRequest) -> Response:
    state = graph.state
    select = _parse_simple_select(graph.request)
    with state.lock:
        skus = [state.render_sku(sku_id) for sku_id in state.skus]
    if select is not None:
        skus = [{name: sku.get(name) for name in select} for sku in skus]
    return json_response({"@odata.context": graph.context("subscribedSkus"), "value": skus})


def get_subscribed_sku(graph: GraphRequest, key: str) -> Response:
    state = graph.state
    sku_id = key.lower().split("_")[-1]
    if sku_id not in state.skus:
        raise resource_not_found(key)
    body = {"@odata.context": graph.context("subscribedSkus/$entity"), **state.render_sku(sku_id)}
    return json_response(body)


def list_subscriptions(graph: GraphRequest) -> Response:
    state = graph.state
    with state.lock:
        subscriptions = [dict(item) for item in state.subscriptions]
    select = _parse_simple_select(graph.request)
    if select is not None:
        subscriptions = [{name: item.get(name) for name in select} for item in subscriptions]
    return json_response({"@odata.context": graph.context("directory/subscriptions"), "value": subscriptions})


def list_organization(graph: GraphRequest) -> Response:
    state = graph.state
    organization = {"id": state.tenant_id, "displayName": state.display_name, "tenantType": "AAD"}
    return json_response({"@odata.context": graph.context("organization"), "value": [organization]})


# Shared helpers


def _parse_simple_select(request: Request) -> list[str] | None:
    raw = request.args.get("$select")
    if raw is None:
        return None
    return [name.strip() for name in raw.split(",") if name.strip()]


def _parse_entity_select(graph: GraphRequest, entity: EntitySet) -> tuple[str, ...] | None:
    select = parse_select(graph.request.args.get("$select"), entity.properties, entity.entity_type)
    if select and "signInActivity" in select:
        _require_premium(graph.state)
    return select


def _require_premium(state: TenantState) -> None:
    if not state.premium:
        raise GraphError(
            403,
            "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
            "Neither tenant is B2C or tenant doesn't have premium license",
        )


def _entity_response(graph: GraphRequest, entity: EntitySet, record: dict[str, Any], select: Sequence[str] | None) -> Response:
    if select is None:
        context = graph.context(f"{entity.name}/$entity")
        body = record if entity is USERS and graph.request.method == "POST" else project(
            record, entity.default_properties, entity.collection_properties
        )
    else:
        context = graph.context(f"{entity.name}({','.join(select)})/$entity")
        body = project(record, select, entity.collection_properties)
    return json_response({"@odata.context": context, **body})


def _collection_query(graph: GraphRequest, entity: EntitySet) -> tuple[CollectionQuery, str | None, int]:
    """Return the query options, cursor and 1-based page number of a list request, taken from $skiptoken when present."""
    args = graph.request.args
    if "$skip" in args:
        raise bad_request("'$skip' is not supported by the service.")
    for option in ("$orderby", "$expand"):
        if option in args:
            # NOTE: Graph supports these options on some collections; the emulator does not yet.
            raise bad_request(f"The query option {option} is not supported by the emulator.", code="Request_UnsupportedQuery")
    _require_search_header(graph, "$search" in args)
    token = args.get("$skiptoken")
    if token is not None:
        return decode_skiptoken(token)
    select = _parse_entity_select(graph, entity)
    max_size = SIGN_IN_ACTIVITY_MAX_PAGE_SIZE if select and "signInActivity" in select else MAX_PAGE_SIZE
    top = parse_top(args.get("$top"), max_size)
    count = args.get("$count", "").lower() == "true"
    query = CollectionQuery(select=select, top=top, filter=args.get("$filter"), count=count, search=args.get("$search"))
    return query, None, 1


def _list_collection(
    graph: GraphRequest,
    entity: EntitySet,
    ids_after: Callable[[str | None], Iterable[str]],
    render: Callable[[str], dict[str, Any]],
    context_name: str | None = None,
    page_check: Callable[[int], None] | None = None,
) -> Response:
    """Serve one page of a collection in id order, with @odata.nextLink when more records follow.

    The $skiptoken contains the last id served, so a page costs O(log n + page size)
    without $filter, and records deleted between pages do not shift later pages.
    """
    query, cursor, page_number = _collection_query(graph, entity)
    if page_check is not None:
        page_check(page_number)
    advanced_request = _has_eventual_consistency(graph) and query.count
    predicates = []
    if query.filter is not None:
        compiled = compile_filter(query.filter, entity.properties, entity.name)
        if compiled.advanced and not advanced_request:
            raise bad_request("Unsupported Query.", code="Request_UnsupportedQuery")
        predicates.append(compiled.predicate)
    if query.search is not None:
        _require_search_header(graph, True)
        predicates.append(compile_search(query.search, entity.properties))
    if query.count and not advanced_request:
        raise bad_request("$count is not currently supported.")
    predicate = _all_of(predicates)

    properties = query.select or entity.default_properties
    page: list[dict[str, Any]] = []
    last_id: str | None = None
    more = False
    with graph.state.lock:
        for record_id in ids_after(cursor):
            record = render(record_id)
            if predicate is not None and not predicate(record):
                continue
            if len(page) == query.page_size:
                more = True
                break
            page.append(project(record, properties, entity.collection_properties))
            last_id = record_id
        total = _count_matches(ids_after, render, predicate) if query.count else None

    name = context_name or entity.name
    context = graph.context(name if query.select is None else f"{name}({','.join(query.select)})")
    body: dict[str, Any] = {"@odata.context": context}
    if total is not None:
        body["@odata.count"] = total
    if more and last_id is not None:
        body["@odata.nextLink"] = _next_link(graph, query, last_id, page_number + 1)
    body["value"] = page
    return json_response(body)


def _all_of(predicates: list[Callable[[dict[str, Any]], bool]]) -> Callable[[dict[str, Any]], bool] | None:
    if not predicates:
        return None
    if len(predicates) == 1:
        return predicates[0]
    return lambda record: all(predicate(record) for predicate in predicates)


def _count_matches(
    ids_after: Callable[[str | None], Iterable[str]],
    render: Callable[[str], dict[str, Any]],
    predicate: Callable[[dict[str, Any]], bool] | None,
) -> int:
    if predicate is None:
        return sum(1 for _ in ids_after(None))
    return sum(1 for record_id in ids_after(None) if predicate(render(record_id)))


def _next_link(graph: GraphRequest, query: CollectionQuery, last_id: str, page_number: int) -> str:
    parts = []
    if query.select is not None:
        parts.append("$select=" + quote(",".join(query.select), safe=","))
    if query.top is not None:
        parts.append(f"$top={query.top}")
    if query.filter is not None:
        parts.append("$filter=" + quote(query.filter, safe=""))
    if query.count:
        parts.append("$count=true")
    if query.search is not None:
        parts.append("$search=" + quote(query.search, safe=""))
    parts.append("$skiptoken=" + encode_skiptoken(query, last_id, page_number))
    path = graph.request.path
    return f"{graph.request.host_url.rstrip('/')}{quote(path)}?{'&'.join(parts)}"
