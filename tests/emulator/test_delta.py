"""GET /users/delta: full rounds, change rounds, removed users and expired tokens."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from graphsync.emulator.catalog import load_catalog
from graphsync.emulator.server import EmulatorServer

from .conftest import GROUP_ID, TENANT_ID, GraphClient, control_request, graph_error, small_graph, user_id

E3 = load_catalog().by_part_number("SPE_E3").sku_id
EXPIRED_MESSAGE = "The sync state generation is not found. The delta token is expired and data must be synchronized again."


def _full_round(graph: GraphClient, url: str) -> tuple[list[dict[str, Any]], str, int]:
    """Follow next links to the delta link; return the items, the delta link and the page count."""
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        response = graph.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        items.extend(body["value"])
        assert ("@odata.nextLink" in body) != ("@odata.deltaLink" in body)
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"], pages
        url = body["@odata.nextLink"]
        assert "$skiptoken" in parse_qs(urlsplit(url).query)


def test_delta_initial_round_pages(generated_graph: GraphClient, generated_tenant: dict[str, Any]) -> None:
    items, delta_link, pages = _full_round(generated_graph, "/users/delta?$select=id,displayName&$top=100")
    assert pages == 3
    assert sorted(item["id"] for item in items) == sorted(user["id"] for user in generated_tenant["users"] if not user.get("deletedDateTime"))
    assert all(set(item) == {"id", "displayName"} for item in items)
    assert "$deltatoken" in parse_qs(urlsplit(delta_link).query)


def test_delta_nothing_changed(graph: GraphClient) -> None:
    _, delta_link, _ = _full_round(graph, "/users/delta?$select=id")
    body = graph.get(delta_link).json()
    assert body["value"] == []
    assert "@odata.deltaLink" in body
    assert "@odata.nextLink" not in body


def test_delta_returns_changed_users_only(controlled_emulator: EmulatorServer) -> None:
    graph = small_graph(controlled_emulator)
    _, delta_link, _ = _full_round(graph, "/users/delta?$select=id,department")
    patched = control_request(controlled_emulator, "PATCH", f"/tenants/{TENANT_ID}/users/{user_id(2)}", json={"department": "Finance"})
    assert patched.status_code == 200

    body = graph.get(delta_link).json()
    assert body["value"] == [{"id": user_id(2), "department": "Finance"}]
    assert graph.get(body["@odata.deltaLink"]).json()["value"] == []


def test_delta_reports_assigned_license_changes(graph: GraphClient) -> None:
    _, delta_link, _ = _full_round(graph, "/users/delta?$select=id,assignedLicenses")
    assigned = graph.post(f"/users/{user_id(5)}/assignLicense", {"addLicenses": [{"skuId": E3}], "removeLicenses": []})
    assert assigned.status_code == 200
    body = graph.get(delta_link).json()
    assert [item["id"] for item in body["value"]] == [user_id(5)]
    assert body["value"][0]["assignedLicenses"] == [{"disabledPlans": [], "skuId": E3}]


def test_delta_ignores_unchanged_reprocessing(graph: GraphClient) -> None:
    _, delta_link, _ = _full_round(graph, "/users/delta?$select=id")
    assert graph.post(f"/users/{user_id(4)}/reprocessLicenseAssignment", {}).status_code == 200
    assert graph.get(delta_link).json()["value"] == []


def test_delta_removed_users(controlled_emulator: EmulatorServer) -> None:
    graph = small_graph(controlled_emulator)
    _, delta_link, _ = _full_round(graph, "/users/delta?$select=id,displayName")
    assert control_request(controlled_emulator, "DELETE", f"/tenants/{TENANT_ID}/users/{user_id(3)}").status_code == 204
    assert control_request(controlled_emulator, "DELETE", f"/tenants/{TENANT_ID}/users/{user_id(6)}").status_code == 204
    assert control_request(controlled_emulator, "DELETE", f"/tenants/{TENANT_ID}/deletedUsers/{user_id(6)}").status_code == 204

    body = graph.get(delta_link).json()
    assert body["value"] == [
        {"id": user_id(3), "@removed": {"reason": "changed"}},
        {"id": user_id(6), "@removed": {"reason": "deleted"}},
    ]


def test_delta_restored_user_returns(controlled_emulator: EmulatorServer) -> None:
    graph = small_graph(controlled_emulator)
    assert control_request(controlled_emulator, "DELETE", f"/tenants/{TENANT_ID}/users/{user_id(3)}").status_code == 204
    _, delta_link, _ = _full_round(graph, "/users/delta?$select=id")
    assert control_request(controlled_emulator, "POST", f"/tenants/{TENANT_ID}/users/{user_id(3)}/restore").status_code == 200
    assert graph.get(delta_link).json()["value"] == [{"id": user_id(3)}]


def test_delta_change_round_pages(controlled_emulator: EmulatorServer) -> None:
    graph = small_graph(controlled_emulator)
    _, delta_link, _ = _full_round(graph, "/users/delta?$select=id,jobTitle&$top=2")
    for number in (1, 2, 4, 5, 6):
        control_request(controlled_emulator, "PATCH", f"/tenants/{TENANT_ID}/users/{user_id(number)}", json={"jobTitle": "Analyst"})
    items, _, pages = _full_round(graph, delta_link)
    assert pages == 3
    assert [item["id"] for item in items] == [user_id(number) for number in (1, 2, 4, 5, 6)]


def test_delta_latest_token(controlled_emulator: EmulatorServer) -> None:
    graph = small_graph(controlled_emulator)
    body = graph.get("/users/delta?$deltatoken=latest&$select=id,city").json()
    assert body["value"] == []
    assert "@odata.nextLink" not in body
    control_request(controlled_emulator, "PATCH", f"/tenants/{TENANT_ID}/users/{user_id(7)}", json={"city": "Oslo"})
    assert graph.get(body["@odata.deltaLink"]).json()["value"] == [{"id": user_id(7), "city": "Oslo"}]


def test_delta_invalid_token(graph: GraphClient) -> None:
    response = graph.get("/users/delta?$deltatoken=not-a-token")
    assert graph_error(response) == (400, "syncStateNotFound", EXPIRED_MESSAGE)


def test_delta_tokens_expired_by_control(controlled_emulator: EmulatorServer) -> None:
    graph = small_graph(controlled_emulator)
    _, delta_link, _ = _full_round(graph, "/users/delta?$select=id")
    control_request(controlled_emulator, "PATCH", f"/tenants/{TENANT_ID}/users/{user_id(2)}", json={"city": "Rome"})
    assert control_request(controlled_emulator, "POST", f"/tenants/{TENANT_ID}/delta/expire").status_code == 200
    assert graph_error(graph.get(delta_link)) == (400, "syncStateNotFound", EXPIRED_MESSAGE)


def test_delta_token_expires_after_seven_days(emulator: EmulatorServer, graph: GraphClient) -> None:
    _, delta_link, _ = _full_round(graph, "/users/delta?$select=id")
    emulator.state(TENANT_ID).clock = lambda: "2099-01-01T00:00:00Z"
    assert graph_error(graph.get(delta_link))[:2] == (400, "syncStateNotFound")


def test_delta_token_of_other_tenant(emulator: EmulatorServer, graph: GraphClient, generated_graph: GraphClient) -> None:
    _, delta_link, _ = _full_round(graph, "/users/delta?$select=id")
    assert graph_error(generated_graph.get(delta_link))[:2] == (400, "syncStateNotFound")


def test_deleted_user_purged_after_30_days(controlled_emulator: EmulatorServer) -> None:
    graph = small_graph(controlled_emulator)
    state = controlled_emulator.state(TENANT_ID)
    assert control_request(controlled_emulator, "DELETE", f"/tenants/{TENANT_ID}/users/{user_id(1)}").status_code == 204
    assert state.consumed_units(E3) == 0
    _, delta_link, _ = _full_round(graph, "/users/delta?$select=id")

    state.deleted_users[user_id(1)]["deletedDateTime"] = "2020-01-01T00:00:00Z"
    restore = control_request(controlled_emulator, "POST", f"/tenants/{TENANT_ID}/users/{user_id(1)}/restore")
    assert restore.status_code == 404
    assert graph.get(delta_link).json()["value"] == [{"id": user_id(1), "@removed": {"reason": "deleted"}}]
    assert user_id(1) not in {member for members in state.group_members.values() for member in members}


def test_group_member_change_counts_as_license_change(controlled_emulator: EmulatorServer) -> None:
    graph = small_graph(controlled_emulator)
    _, delta_link, _ = _full_round(graph, "/users/delta?$select=id")
    removed = control_request(controlled_emulator, "DELETE", f"/tenants/{TENANT_ID}/groups/{GROUP_ID}/members/{user_id(2)}")
    assert removed.status_code == 200
    assert graph.get(delta_link).json()["value"] == [{"id": user_id(2)}]
