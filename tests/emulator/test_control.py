"""The /_emulator/ control interface and fault injection."""

from __future__ import annotations

import requests

from graphsync.emulator.catalog import load_catalog
from graphsync.emulator.server import EmulatorServer

from .conftest import CLIENT_ID, CLIENT_SECRET, CONTROL_TOKEN, TENANT_ID, GraphClient, fetch_token, graph_error, user_id

E3 = load_catalog().by_part_number("SPE_E3").sku_id


def _control(server: EmulatorServer, method: str, path: str, token: str | None = CONTROL_TOKEN, **kwargs: object) -> requests.Response:
    headers = {"X-Emulator-Control": token} if token is not None else {}
    return requests.request(method, f"{server.base_url}/_emulator{path}", headers=headers, verify=server.ca_path, timeout=10, **kwargs)


def test_control_off_by_default(emulator: EmulatorServer) -> None:
    response = _control(emulator, "GET", f"/tenants/{TENANT_ID}/snapshot")
    assert response.status_code == 404


def test_control_requires_token(controlled_emulator: EmulatorServer) -> None:
    assert _control(controlled_emulator, "GET", f"/tenants/{TENANT_ID}/snapshot", token=None).status_code == 401
    assert _control(controlled_emulator, "GET", f"/tenants/{TENANT_ID}/snapshot", token="wrong").status_code == 403


def test_control_snapshot(controlled_emulator: EmulatorServer) -> None:
    response = _control(controlled_emulator, "GET", f"/tenants/{TENANT_ID}/snapshot")
    assert response.status_code == 200
    snapshot = response.json()
    assert snapshot["tenantId"] == TENANT_ID
    assert len(snapshot["users"]) == 7


def test_control_out_of_band_license(controlled_emulator: EmulatorServer) -> None:
    graph = GraphClient(controlled_emulator, fetch_token(controlled_emulator, TENANT_ID, CLIENT_ID, CLIENT_SECRET))
    response = _control(
        controlled_emulator, "POST", f"/tenants/{TENANT_ID}/users/{user_id(3)}/licenses", json={"addLicenses": [{"skuId": E3}], "removeLicenses": []}
    )
    assert response.status_code == 200
    user = graph.get(f"/users/{user_id(3)}?$select=assignedLicenses").json()
    assert {"disabledPlans": [], "skuId": E3} in user["assignedLicenses"]


def test_control_patch_user(controlled_emulator: EmulatorServer) -> None:
    response = _control(controlled_emulator, "PATCH", f"/tenants/{TENANT_ID}/users/{user_id(2)}", json={"department": "Finance"})
    assert response.status_code == 200
    assert controlled_emulator.state(TENANT_ID).users[user_id(2)]["department"] == "Finance"
    rejected = _control(controlled_emulator, "PATCH", f"/tenants/{TENANT_ID}/users/{user_id(2)}", json={"usageLocation": "USA"})
    assert rejected.status_code == 400


def test_control_set_sku_units(controlled_emulator: EmulatorServer) -> None:
    response = _control(controlled_emulator, "POST", f"/tenants/{TENANT_ID}/skus/{E3}", json={"prepaidUnits": {"enabled": 1}})
    assert response.status_code == 200
    assert response.json()["prepaidUnits"]["enabled"] == 1
    graph = GraphClient(controlled_emulator, fetch_token(controlled_emulator, TENANT_ID, CLIENT_ID, CLIENT_SECRET))
    refused = graph.post(f"/users/{user_id(2)}/assignLicense", {"addLicenses": [{"skuId": E3}], "removeLicenses": []})
    assert graph_error(refused)[2] == f"Subscription with SKU {E3} does not have any available licenses."


def test_control_delete_user(controlled_emulator: EmulatorServer) -> None:
    assert _control(controlled_emulator, "DELETE", f"/tenants/{TENANT_ID}/users/{user_id(1)}").status_code == 204
    assert controlled_emulator.state(TENANT_ID).consumed_units(E3) == 0


def test_fault_injection_throttles(controlled_emulator: EmulatorServer) -> None:
    graph = GraphClient(controlled_emulator, fetch_token(controlled_emulator, TENANT_ID, CLIENT_ID, CLIENT_SECRET))
    settings = _control(controlled_emulator, "POST", "/faults", json={"throttleRate": 1, "retryAfterSeconds": 2})
    assert settings.status_code == 200
    response = graph.get("/users")
    assert graph_error(response) == (429, "TooManyRequests", "Please retry again later.")
    assert response.headers["Retry-After"] == "2"

    _control(controlled_emulator, "POST", "/faults", json={"throttleRate": 0, "unavailableRate": 1})
    assert graph.get("/users").status_code == 503
    _control(controlled_emulator, "POST", "/faults", json={"unavailableRate": 0})
    assert graph.get("/users").status_code == 200


def test_fault_settings_validated(controlled_emulator: EmulatorServer) -> None:
    response = _control(controlled_emulator, "POST", "/faults", json={"throttleRate": 2})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "throttleRate must be a number from 0 to 1, got 2"


def test_control_add_custom_sku(controlled_emulator: EmulatorServer) -> None:
    sku_id = "5b2c1f7e-0000-4000-8000-00000000c0de"
    body = {
        "skuId": sku_id,
        "skuPartNumber": "CONTOSO_NEW_PRODUCT",
        "prepaidUnits": {"enabled": 2, "warning": 1},
        "servicePlans": [{"servicePlanId": "6c4f0b3a-0000-4000-8000-00000000c0de", "servicePlanName": "CONTOSO_PLAN"}],
    }
    response = _control(controlled_emulator, "POST", f"/tenants/{TENANT_ID}/skus", json=body)
    assert response.status_code == 201
    graph = GraphClient(controlled_emulator, fetch_token(controlled_emulator, TENANT_ID, CLIENT_ID, CLIENT_SECRET))
    sku = next(item for item in graph.get("/subscribedSkus").json()["value"] if item["skuId"] == sku_id)
    assert sku["skuPartNumber"] == "CONTOSO_NEW_PRODUCT"
    assert sku["prepaidUnits"] == {"enabled": 2, "suspended": 0, "warning": 1, "lockedOut": 0}
    assert sku["consumedUnits"] == 0
    assert sku["id"] == f"{TENANT_ID}_{sku_id}"
    subscriptions = graph.get("/directory/subscriptions").json()["value"]
    assert [item["totalLicenses"] for item in subscriptions if item["skuId"] == sku_id] == [3]

    assigned = graph.post(f"/users/{user_id(2)}/assignLicense", {"addLicenses": [{"skuId": sku_id}], "removeLicenses": []})
    assert assigned.status_code == 200
    assert _control(controlled_emulator, "POST", f"/tenants/{TENANT_ID}/skus", json=body).status_code == 400


def test_control_add_sku_validated(controlled_emulator: EmulatorServer) -> None:
    response = _control(controlled_emulator, "POST", f"/tenants/{TENANT_ID}/skus", json={"skuId": "not-a-guid", "skuPartNumber": "X", "servicePlans": []})
    assert response.status_code == 400
    assert "skuId" in response.json()["error"]["message"]


def test_control_purge_deleted_user(controlled_emulator: EmulatorServer) -> None:
    assert _control(controlled_emulator, "DELETE", f"/tenants/{TENANT_ID}/deletedUsers/{user_id(2)}").status_code == 404
    assert _control(controlled_emulator, "DELETE", f"/tenants/{TENANT_ID}/users/{user_id(2)}").status_code == 204
    assert _control(controlled_emulator, "DELETE", f"/tenants/{TENANT_ID}/deletedUsers/{user_id(2)}").status_code == 204
    assert _control(controlled_emulator, "POST", f"/tenants/{TENANT_ID}/users/{user_id(2)}/restore").status_code == 404
    snapshot = _control(controlled_emulator, "GET", f"/tenants/{TENANT_ID}/snapshot").json()
    assert user_id(2) not in [user["id"] for user in snapshot["users"]]


def test_control_restore_within_30_days(controlled_emulator: EmulatorServer) -> None:
    assert _control(controlled_emulator, "DELETE", f"/tenants/{TENANT_ID}/users/{user_id(1)}").status_code == 204
    assert controlled_emulator.state(TENANT_ID).consumed_units(E3) == 0
    restored = _control(controlled_emulator, "POST", f"/tenants/{TENANT_ID}/users/{user_id(1)}/restore")
    assert restored.status_code == 200
    assert controlled_emulator.state(TENANT_ID).consumed_units(E3) == 1
