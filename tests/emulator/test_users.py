"""GET /users and /users/{id}: properties, $select, paging and errors."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from graphsync.emulator.generator import demo_tenant
from graphsync.emulator.graph_schema import USER_DEFAULT_PROPERTIES
from graphsync.emulator.server import EmulatorServer

from .conftest import CLIENT_ID, CLIENT_SECRET, TENANT_ID, GraphClient, fetch_token, graph_error, user_id


def test_users_default_properties(graph: GraphClient) -> None:
    response = graph.get("/users")
    assert response.status_code == 200
    body = response.json()
    assert body["@odata.context"].endswith("/v1.0/$metadata#users")
    assert len(body["value"]) == 7
    for user in body["value"]:
        assert list(user) == list(USER_DEFAULT_PROPERTIES)
    assert "department" not in body["value"][0]


def test_users_paging_keeps_select(generated_graph: GraphClient, generated_tenant: dict[str, Any]) -> None:
    url = "/users?$top=40&$select=id,department,usageLocation"
    seen: list[str] = []
    pages = 0
    while url:
        response = generated_graph.get(url)
        assert response.status_code == 200
        body = response.json()
        pages += 1
        assert body["@odata.context"].endswith("$metadata#users(id,department,usageLocation)")
        assert len(body["value"]) <= 40
        for user in body["value"]:
            assert set(user) == {"id", "department", "usageLocation"}
            seen.append(user["id"])
        url = body.get("@odata.nextLink")
        if url:
            query = parse_qs(urlsplit(url).query)
            assert query["$select"] == ["id,department,usageLocation"]
            assert query["$top"] == ["40"]
            assert "$skiptoken" in query
    assert pages == 7
    assert seen == sorted(user["id"] for user in generated_tenant["users"])


def test_users_default_page_size(generated_graph: GraphClient) -> None:
    body = generated_graph.get("/users").json()
    assert len(body["value"]) == 100
    assert "@odata.nextLink" in body


def test_users_top_above_max(graph: GraphClient) -> None:
    response = graph.get("/users?$top=1000")
    assert graph_error(response) == (
        400,
        "Request_UnsupportedQuery",
        "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive.",
    )


def test_users_skip_rejected(graph: GraphClient) -> None:
    response = graph.get("/users?$skip=5")
    assert graph_error(response) == (400, "Request_BadRequest", "'$skip' is not supported by the service.")


def test_users_unknown_select_property(graph: GraphClient) -> None:
    response = graph.get("/users?$select=id,shoeSize")
    status, code, _ = graph_error(response)
    assert (status, code) == (400, "BadRequest")


def test_users_select_license_properties(graph: GraphClient) -> None:
    body = graph.get("/users?$select=id,assignedLicenses,licenseAssignmentStates,onPremisesExtensionAttributes").json()
    first = body["value"][0]
    assert first["id"] == user_id(1)
    assert len(first["assignedLicenses"]) == 1
    assert first["licenseAssignmentStates"][0]["assignedByGroup"] is None
    assert first["licenseAssignmentStates"][0]["state"] == "Active"


def test_user_by_id_and_upn(graph: GraphClient) -> None:
    by_id = graph.get(f"/users/{user_id(2)}")
    by_name = graph.get("/users/USER2@contoso.test")
    assert by_id.status_code == 200
    assert by_name.status_code == 200
    assert by_id.json()["userPrincipalName"] == "user2@contoso.test"
    assert by_name.json()["id"] == user_id(2)
    assert by_id.json()["@odata.context"].endswith("$metadata#users/$entity")


def test_user_with_select(graph: GraphClient) -> None:
    body = graph.get(f"/users/{user_id(3)}?$select=department,usageLocation").json()
    assert body["@odata.context"].endswith("$metadata#users(department,usageLocation)/$entity")
    assert body["department"] == "Sales"
    assert body["usageLocation"] == "US"
    assert "displayName" not in body


def test_user_not_found(graph: GraphClient) -> None:
    missing = "nobody@contoso.test"
    response = graph.get(f"/users/{missing}")
    assert graph_error(response) == (
        404,
        "Request_ResourceNotFound",
        f"Resource '{missing}' does not exist or one of its queried reference-property objects are not present.",
    )


def test_graph_error_body_shape(graph: GraphClient) -> None:
    response = graph.get("/users/nobody", headers={"client-request-id": "abc-123"})
    inner = response.json()["error"]["innerError"]
    assert set(inner) == {"date", "request-id", "client-request-id"}
    assert inner["client-request-id"] == "abc-123"
    assert response.headers["client-request-id"] == "abc-123"
    assert response.headers["request-id"] == inner["request-id"]


def test_missing_token(emulator: EmulatorServer) -> None:
    client = GraphClient(emulator, "x")
    del client.session.headers["Authorization"]
    response = client.get("/users")
    assert graph_error(response) == (401, "InvalidAuthenticationToken", "Access token is empty.")


def test_unknown_token(emulator: EmulatorServer) -> None:
    response = GraphClient(emulator, "not-a-token").get("/users")
    status, code, _ = graph_error(response)
    assert (status, code) == (401, "InvalidAuthenticationToken")


def test_expired_token(emulator: EmulatorServer) -> None:
    client = GraphClient(emulator, fetch_token(emulator, TENANT_ID, CLIENT_ID, CLIENT_SECRET))
    emulator.app.tokens.expire_all()
    response = client.get("/users")
    assert graph_error(response) == (401, "InvalidAuthenticationToken", "Access token has expired.")


def test_deleted_user_not_listed(emulator: EmulatorServer, graph: GraphClient) -> None:
    emulator.state(TENANT_ID).delete_user(user_id(5))
    ids = [user["id"] for user in graph.get("/users").json()["value"]]
    assert user_id(5) not in ids
    assert graph.get(f"/users/{user_id(5)}").status_code == 404


def test_filter_by_sku(graph: GraphClient) -> None:
    e3 = graph.get("/subscribedSkus").json()["value"][0]["skuId"]
    body = graph.get(f"/users?$filter=assignedLicenses/any(x:x/skuId eq {e3})&$select=id").json()
    assert body["value"] == [{"id": user_id(1)}]


def test_count_needs_consistency_level(graph: GraphClient) -> None:
    response = graph.get("/users/$count")
    assert graph_error(response) == (400, "Request_BadRequest", "$count is not currently supported.")
    counted = graph.get("/users/$count", headers={"ConsistencyLevel": "eventual"})
    assert counted.text == "7"


def test_demo_page_of_999_is_fast(state_dir: Any) -> None:
    snapshot = demo_tenant()
    started = time.perf_counter()
    with EmulatorServer([snapshot], state_dir=state_dir) as server:
        client = snapshot["clients"][0]
        graph = GraphClient(server, fetch_token(server, snapshot["tenantId"], client["clientId"], client["clientSecret"]))
        response = graph.get("/users?$top=999&$select=id,displayName,department,assignedLicenses")
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert len(response.json()["value"]) == 999
    assert elapsed < 1.0
