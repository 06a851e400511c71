"""Group-based licensing: membership changes, error states and the groups with errors."""

from __future__ import annotations

import uuid
from typing import Any

from graphsync.emulator.catalog import load_catalog
from graphsync.emulator.server import EmulatorServer

from .conftest import GROUP_ID, TENANT_ID, GraphClient, control_request, graph_error, small_graph, user_id

CATALOG = load_catalog()
E3 = CATALOG.by_part_number("SPE_E3").sku_id
EXCHANGE_PLAN_1 = CATALOG.by_part_number("EXCHANGESTANDARD").sku_id
VISIO = CATALOG.by_part_number("VISIOCLIENT").sku_id
OFFICE_WEB_PLAN = "e95bec33-7c88-4a70-8e19-b10bd9d0c014"  # SHAREPOINTWAC
CALLING_PLAN = "4ed3ff63-69d7-4fb7-b984-5aec7f605ca8"  # MCOPSTN1
ERRORS_FILTER = "/groups?$filter=hasMembersWithLicenseErrors eq true&$select=id"


def _license_state(graph: GraphClient, number: int, sku_id: str) -> tuple[str, str] | None:
    user = graph.get(f"/users/{user_id(number)}?$select=licenseAssignmentStates").json()
    for state in user["licenseAssignmentStates"]:
        if state["skuId"] == sku_id and state["assignedByGroup"] == GROUP_ID:
            return state["state"], state["error"]
    return None


def _consumed(graph: GraphClient, sku_id: str) -> int:
    return next(sku["consumedUnits"] for sku in graph.get("/subscribedSkus").json()["value"] if sku["skuId"] == sku_id)


def _add_custom_sku(server: EmulatorServer, part_number: str, plans: list[tuple[str, str]], seats: int = 10) -> str:
    sku_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, part_number))
    body: dict[str, Any] = {
        "skuId": sku_id,
        "skuPartNumber": part_number,
        "prepaidUnits": {"enabled": seats},
        "servicePlans": [{"servicePlanId": plan_id, "servicePlanName": name} for plan_id, name in plans],
    }
    response = control_request(server, "POST", f"/tenants/{TENANT_ID}/skus", json=body)
    assert response.status_code == 201, response.text
    return sku_id


def test_groups_with_license_errors(controlled_emulator: EmulatorServer) -> None:
    graph = small_graph(controlled_emulator)
    assert graph.get(ERRORS_FILTER).json()["value"] == [{"id": GROUP_ID}]
    removed = control_request(controlled_emulator, "DELETE", f"/tenants/{TENANT_ID}/groups/{GROUP_ID}/members/{user_id(4)}")
    assert removed.status_code == 200
    assert removed.json()["licenseAssignmentStates"] == []
    assert graph.get(ERRORS_FILTER).json()["value"] == []


def test_new_member_inherits_license(controlled_emulator: EmulatorServer) -> None:
    graph = small_graph(controlled_emulator)
    control_request(controlled_emulator, "POST", f"/tenants/{TENANT_ID}/skus/{VISIO}", json={"prepaidUnits": {"enabled": 5}})
    added = control_request(controlled_emulator, "POST", f"/tenants/{TENANT_ID}/groups/{GROUP_ID}/members", json={"id": "user5@contoso.test"})
    assert added.status_code == 200
    assert {"disabledPlans": [], "skuId": VISIO} in added.json()["assignedLicenses"]
    assert _license_state(graph, 5, VISIO) == ("Active", "None")
    members = [user["id"] for user in graph.get(f"/groups/{GROUP_ID}/members?$select=id").json()["value"]]
    assert user_id(5) in members


def test_new_member_without_seat(controlled_emulator: EmulatorServer) -> None:
    graph = small_graph(controlled_emulator)
    control_request(controlled_emulator, "POST", f"/tenants/{TENANT_ID}/groups/{GROUP_ID}/members", json={"id": user_id(6)})
    assert _license_state(graph, 6, VISIO) == ("Error", "CountViolation")
    assert _consumed(graph, VISIO) == 2


def test_removed_member_loses_license(controlled_emulator: EmulatorServer) -> None:
    graph = small_graph(controlled_emulator)
    control_request(controlled_emulator, "DELETE", f"/tenants/{TENANT_ID}/groups/{GROUP_ID}/members/{user_id(2)}")
    assert _license_state(graph, 2, VISIO) is None
    assert _consumed(graph, VISIO) == 1
    reprocessed = graph.post(f"/users/{user_id(4)}/reprocessLicenseAssignment", {})
    assert reprocessed.status_code == 200
    assert _license_state(graph, 4, VISIO) == ("Active", "None")
    assert _consumed(graph, VISIO) == 2


def test_member_changes_validated(controlled_emulator: EmulatorServer) -> None:
    again = control_request(controlled_emulator, "POST", f"/tenants/{TENANT_ID}/groups/{GROUP_ID}/members", json={"id": user_id(2)})
    assert again.status_code == 400
    missing = control_request(controlled_emulator, "DELETE", f"/tenants/{TENANT_ID}/groups/{GROUP_ID}/members/{user_id(6)}")
    assert missing.status_code == 400
    unknown = control_request(controlled_emulator, "POST", f"/tenants/{TENANT_ID}/groups/{uuid.uuid4()}/members", json={"id": user_id(2)})
    assert unknown.status_code == 404


def test_mutually_exclusive_violation(controlled_emulator: EmulatorServer) -> None:
    graph = small_graph(controlled_emulator)
    assert graph.post(f"/users/{user_id(2)}/assignLicense", {"addLicenses": [{"skuId": E3}], "removeLicenses": []}).status_code == 200
    response = graph.post(f"/groups/{GROUP_ID}/assignLicense", {"addLicenses": [{"skuId": EXCHANGE_PLAN_1}], "removeLicenses": []})
    assert response.status_code == 202
    user = graph.get(f"/users/{user_id(2)}?$select=licenseAssignmentStates").json()
    exchange = [state for state in user["licenseAssignmentStates"] if state["skuId"] == EXCHANGE_PLAN_1]
    assert (exchange[0]["state"], exchange[0]["error"]) == ("Error", "MutuallyExclusiveViolation")


def test_dependency_violation(controlled_emulator: EmulatorServer) -> None:
    graph = small_graph(controlled_emulator)
    web_only = _add_custom_sku(controlled_emulator, "CONTOSO_OFFICE_WEB_ONLY", [(OFFICE_WEB_PLAN, "SHAREPOINTWAC")])
    response = graph.post(f"/groups/{GROUP_ID}/assignLicense", {"addLicenses": [{"skuId": web_only}], "removeLicenses": []})
    assert response.status_code == 202
    assert _license_state(graph, 3, web_only) == ("Error", "DependencyViolation")
    assert graph.get(ERRORS_FILTER).json()["value"] == [{"id": GROUP_ID}]


def test_prohibited_usage_location(controlled_emulator: EmulatorServer) -> None:
    graph = small_graph(controlled_emulator)
    calling = _add_custom_sku(controlled_emulator, "CONTOSO_CALLING", [(CALLING_PLAN, "MCOPSTN1")])
    control_request(controlled_emulator, "PATCH", f"/tenants/{TENANT_ID}/users/{user_id(3)}", json={"usageLocation": "BR"})
    graph.post(f"/groups/{GROUP_ID}/assignLicense", {"addLicenses": [{"skuId": calling}], "removeLicenses": []})
    assert _license_state(graph, 2, calling) == ("Active", "None")
    assert _license_state(graph, 3, calling) == ("Error", "ProhibitedInUsageLocationViolation")

    # Moving the user to an offered location re-evaluates the group license.
    control_request(controlled_emulator, "PATCH", f"/tenants/{TENANT_ID}/users/{user_id(3)}", json={"usageLocation": "GB"})
    assert _license_state(graph, 3, calling) == ("Active", "None")


def test_direct_assignment_in_prohibited_location(controlled_emulator: EmulatorServer) -> None:
    graph = small_graph(controlled_emulator)
    calling = _add_custom_sku(controlled_emulator, "CONTOSO_CALLING", [(CALLING_PLAN, "MCOPSTN1")])
    control_request(controlled_emulator, "PATCH", f"/tenants/{TENANT_ID}/users/{user_id(5)}", json={"usageLocation": "BR"})
    response = graph.post(f"/users/{user_id(5)}/assignLicense", {"addLicenses": [{"skuId": calling}], "removeLicenses": []})
    assert graph_error(response) == (
        400,
        "Request_BadRequest",
        f"License assignment failed because service plan {CALLING_PLAN} is not available in usage location BR.",
    )
