"""PATCH /v1.0/users/{id}: writable properties, usageLocation validation and the write log."""

from __future__ import annotations

import pytest

from graphsync.emulator.server import EmulatorServer

from .conftest import CLIENT_ID, CLIENT_SECRET, TENANT_ID, GraphClient, control_request, fetch_token, graph_error, user_id


@pytest.fixture()
def control_graph(controlled_emulator: EmulatorServer) -> GraphClient:
    return GraphClient(controlled_emulator, fetch_token(controlled_emulator, TENANT_ID, CLIENT_ID, CLIENT_SECRET))


def patch(graph: GraphClient, key: str, body: object):
    return graph.session.patch(f"{graph.base}/users/{key}", json=body, timeout=10)


def test_patch_sets_usage_location(control_graph: GraphClient) -> None:
    response = patch(control_graph, user_id(2), {"usageLocation": "DE", "city": "Berlin"})

    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["request-id"]
    user = control_graph.get(f"/users/{user_id(2)}?$select=usageLocation,city").json()
    assert user["usageLocation"] == "DE"
    assert user["city"] == "Berlin"


def test_patch_by_user_principal_name(control_graph: GraphClient) -> None:
    upn = control_graph.get(f"/users/{user_id(3)}").json()["userPrincipalName"]

    assert patch(control_graph, upn, {"usageLocation": "fr"}).status_code == 204
    assert control_graph.get(f"/users/{user_id(3)}?$select=usageLocation").json()["usageLocation"] == "FR"


@pytest.mark.parametrize("value", ["DEU", "D", "1A", "", 49, "Ä1"])
def test_patch_rejects_bad_usage_location(control_graph: GraphClient, value: object) -> None:
    before = control_graph.get(f"/users/{user_id(2)}?$select=usageLocation").json()["usageLocation"]

    response = patch(control_graph, user_id(2), {"usageLocation": value})

    assert graph_error(response) == (
        400, "Request_BadRequest", "Invalid value specified for property 'usageLocation' of resource 'User'."
    )
    assert control_graph.get(f"/users/{user_id(2)}?$select=usageLocation").json()["usageLocation"] == before


def test_patch_rejects_read_only_property(control_graph: GraphClient) -> None:
    response = patch(control_graph, user_id(2), {"assignedLicenses": []})

    assert graph_error(response) == (400, "Request_BadRequest", "Property 'assignedLicenses' is read-only and cannot be set.")


def test_patch_rejects_unknown_property(control_graph: GraphClient) -> None:
    response = patch(control_graph, user_id(2), {"favouriteColour": "green"})

    assert graph_error(response) == (
        400, "Request_BadRequest", "Property 'favouriteColour' does not exist as a declared property or extension property."
    )


def test_patch_unknown_user(control_graph: GraphClient) -> None:
    missing = "00000000-0000-4000-8000-00000000ffff"

    response = patch(control_graph, missing, {"usageLocation": "DE"})

    assert graph_error(response) == (
        404, "Request_ResourceNotFound",
        f"Resource '{missing}' does not exist or one of its queried reference-property objects are not present.",
    )


def test_write_log_lists_successful_writes(controlled_emulator: EmulatorServer, control_graph: GraphClient) -> None:
    assert patch(control_graph, user_id(2), {"usageLocation": "DE"}).status_code == 204
    assert patch(control_graph, user_id(2), {"usageLocation": "DEU"}).status_code == 400

    entries = control_request(controlled_emulator, "GET", "/requests").json()["value"]

    assert [(entry["method"], entry["path"], entry["status"]) for entry in entries] == [
        ("PATCH", f"/v1.0/users/{user_id(2)}", 204)
    ]
    assert entries[0]["requestId"]
