"""assignLicense for users and groups, seat counting and group-based licensing."""

from __future__ import annotations

from typing import Any

import pytest

from graphsync.emulator.catalog import load_catalog
from graphsync.emulator.server import EmulatorServer

from .conftest import GROUP_ID, TENANT_ID, GraphClient, graph_error, user_id

CATALOG = load_catalog()
E3 = CATALOG.by_part_number("SPE_E3").sku_id
EXCHANGE_PLAN_1 = CATALOG.by_part_number("EXCHANGESTANDARD").sku_id
VISIO = CATALOG.by_part_number("VISIOCLIENT").sku_id
POWER_BI = CATALOG.by_part_number("POWER_BI_PRO").sku_id


def _plan_id(sku_part: str, plan_name: str) -> str:
    sku = CATALOG.by_part_number(sku_part)
    return next(plan.service_plan_id for plan in sku.service_plans if plan.name == plan_name)


def _assign(graph: GraphClient, user: str, add: list[dict[str, Any]] | None = None, remove: list[str] | None = None) -> Any:
    return graph.post(f"/users/{user}/assignLicense", {"addLicenses": add or [], "removeLicenses": remove or []})


def _consumed(graph: GraphClient, sku_id: str) -> int:
    skus = graph.get("/subscribedSkus").json()["value"]
    return next(sku["consumedUnits"] for sku in skus if sku["skuId"] == sku_id)


def test_assign_changes_consumed_units(graph: GraphClient) -> None:
    assert _consumed(graph, E3) == 1
    response = _assign(graph, user_id(2), add=[{"skuId": E3, "disabledPlans": []}])
    assert response.status_code == 200
    body = response.json()
    assert {"skuId": E3, "disabledPlans": []} in body["assignedLicenses"]
    direct = [state for state in body["licenseAssignmentStates"] if state["skuId"] == E3]
    assert direct[0]["assignedByGroup"] is None
    assert _consumed(graph, E3) == 2

    assert _assign(graph, user_id(2), remove=[E3]).status_code == 200
    assert _consumed(graph, E3) == 1


def test_assign_by_user_principal_name(graph: GraphClient) -> None:
    response = _assign(graph, "user3@contoso.test", add=[{"skuId": E3}])
    assert response.status_code == 200
    assert response.json()["id"] == user_id(3)


def test_assign_no_available_licenses(graph: GraphClient) -> None:
    assert _assign(graph, user_id(2), add=[{"skuId": E3}]).status_code == 200
    assert _assign(graph, user_id(3), add=[{"skuId": E3}]).status_code == 200
    response = _assign(graph, user_id(5), add=[{"skuId": E3}])
    assert graph_error(response) == (400, "Request_BadRequest", f"Subscription with SKU {E3} does not have any available licenses.")


def test_assign_suspended_sku_has_no_seats(graph: GraphClient) -> None:
    response = _assign(graph, user_id(5), add=[{"skuId": POWER_BI}])
    assert graph_error(response) == (
        400,
        "Request_BadRequest",
        f"Subscription with SKU {POWER_BI} does not have any available licenses.",
    )


def test_assign_without_usage_location(graph: GraphClient) -> None:
    response = _assign(graph, user_id(7), add=[{"skuId": E3}])
    assert graph_error(response) == (
        400,
        "Request_BadRequest",
        "License assignment cannot be done for user with invalid usage location.",
    )


def test_remove_inherited_license(graph: GraphClient) -> None:
    response = _assign(graph, user_id(2), remove=[VISIO])
    assert graph_error(response) == (
        400,
        "Request_BadRequest",
        "User license is inherited from a group membership and it cannot be removed directly from the user.",
    )


def test_remove_license_user_lacks(graph: GraphClient) -> None:
    response = _assign(graph, user_id(2), remove=[E3])
    assert graph_error(response) == (400, "Request_BadRequest", "User does not have a corresponding license.")


def test_assign_sku_not_in_tenant(graph: GraphClient) -> None:
    foreign = CATALOG.by_part_number("SPE_E5").sku_id
    response = _assign(graph, user_id(2), add=[{"skuId": foreign}])
    assert graph_error(response) == (
        400,
        "Request_BadRequest",
        f"License {foreign} does not correspond to a valid company License.",
    )


@pytest.mark.parametrize(
    "body",
    [
        {"addLicenses": [{"skuId": "not-a-guid"}], "removeLicenses": []},
        {"addLicenses": [{"skuId": E3, "disabledPlans": ["nope"]}], "removeLicenses": []},
        {"addLicenses": [], "removeLicenses": ["nope"]},
    ],
)
def test_assign_non_guid(graph: GraphClient, body: dict[str, Any]) -> None:
    response = graph.post(f"/users/{user_id(2)}/assignLicense", body)
    assert graph_error(response) == (
        400,
        "Request_BadRequest",
        "Cannot convert a primitive value to the expected type 'Edm.Guid'. See the inner exception for more details",
    )


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"removeLicenses": []}, "addLicenses"),
        ({"addLicenses": []}, "removeLicenses"),
        ({}, "addLicenses, removeLicenses"),
    ],
)
def test_assign_missing_arrays(graph: GraphClient, body: dict[str, Any], missing: str) -> None:
    response = graph.post(f"/users/{user_id(2)}/assignLicense", body)
    assert graph_error(response) == (
        400,
        "Request_BadRequest",
        "One or more parameters of the operation 'assignLicense' are missing from the request payload. "
        f"The missing parameters are: {missing}.",
    )


def test_assign_unknown_user(graph: GraphClient) -> None:
    response = _assign(graph, "ghost@contoso.test", add=[{"skuId": E3}])
    assert graph_error(response) == (
        404,
        "Request_ResourceNotFound",
        "Resource 'ghost@contoso.test' does not exist or one of its queried reference-property objects are not present.",
    )


def test_assign_mutually_exclusive_plans(graph: GraphClient) -> None:
    response = _assign(graph, user_id(1), add=[{"skuId": EXCHANGE_PLAN_1}])
    plan_1 = _plan_id("EXCHANGESTANDARD", "EXCHANGE_S_STANDARD")
    plan_2 = _plan_id("SPE_E3", "EXCHANGE_S_ENTERPRISE")
    assert graph_error(response) == (
        400,
        "Request_BadRequest",
        f"License assignment failed because service plans {plan_1}, {plan_2} are mutually exclusive.",
    )


def test_assign_plan_dependency(graph: GraphClient) -> None:
    sharepoint = _plan_id("SPE_E3", "SHAREPOINTENTERPRISE")
    office_web = _plan_id("SPE_E3", "SHAREPOINTWAC")
    sharepoint_standard = _plan_id("O365_BUSINESS_PREMIUM", "SHAREPOINTSTANDARD")
    response = _assign(graph, user_id(2), add=[{"skuId": E3, "disabledPlans": [sharepoint]}])
    assert graph_error(response) == (
        400,
        "Request_BadRequest",
        f"License assignment failed because service plan {office_web} depends on the service plan(s) "
        f"{sharepoint}, {sharepoint_standard}",
    )


def test_assign_is_atomic(graph: GraphClient) -> None:
    response = _assign(graph, user_id(2), add=[{"skuId": E3}], remove=[EXCHANGE_PLAN_1])
    assert response.status_code == 400
    assert _consumed(graph, E3) == 1
    user = graph.get(f"/users/{user_id(2)}?$select=assignedLicenses").json()
    assert [license_["skuId"] for license_ in user["assignedLicenses"]] == [VISIO]


def test_disabled_plans_replace_only_that_sku(graph: GraphClient) -> None:
    sway = _plan_id("SPE_E3", "SWAY")
    assert _assign(graph, user_id(2), add=[{"skuId": E3, "disabledPlans": [sway]}]).status_code == 200
    response = _assign(graph, user_id(2), add=[{"skuId": E3, "disabledPlans": []}])
    licenses = {item["skuId"]: item["disabledPlans"] for item in response.json()["assignedLicenses"]}
    assert licenses == {VISIO: [], E3: []}
    assert _consumed(graph, E3) == 2


def test_group_license_inheritance_and_count_violation(graph: GraphClient) -> None:
    states = {}
    for number in (2, 3, 4):
        user = graph.get(f"/users/{user_id(number)}?$select=assignedLicenses,licenseAssignmentStates").json()
        states[number] = user
    for number in (2, 3):
        state = states[number]["licenseAssignmentStates"][0]
        assert state["assignedByGroup"] == GROUP_ID
        assert (state["state"], state["error"]) == ("Active", "None")
        assert states[number]["assignedLicenses"] == [{"disabledPlans": [], "skuId": VISIO}]
    errored = states[4]["licenseAssignmentStates"][0]
    assert (errored["state"], errored["error"]) == ("Error", "CountViolation")
    assert states[4]["assignedLicenses"] == []
    assert _consumed(graph, VISIO) == 2
    group = graph.get(f"/groups/{GROUP_ID}?$select=id,assignedLicenses,hasMembersWithLicenseErrors").json()
    assert group["hasMembersWithLicenseErrors"] is True
    assert group["assignedLicenses"] == [{"disabledPlans": [], "skuId": VISIO}]


def test_group_assign_license(graph: GraphClient) -> None:
    response = graph.post(f"/groups/{GROUP_ID}/assignLicense", {"addLicenses": [{"skuId": EXCHANGE_PLAN_1}], "removeLicenses": []})
    assert response.status_code == 202
    assert _consumed(graph, EXCHANGE_PLAN_1) == 3
    user = graph.get(f"/users/{user_id(4)}?$select=licenseAssignmentStates").json()
    exchange = [state for state in user["licenseAssignmentStates"] if state["skuId"] == EXCHANGE_PLAN_1]
    assert exchange[0]["assignedByGroup"] == GROUP_ID
    assert exchange[0]["state"] == "Active"

    removed = graph.post(f"/groups/{GROUP_ID}/assignLicense", {"addLicenses": [], "removeLicenses": [EXCHANGE_PLAN_1]})
    assert removed.status_code == 202
    assert _consumed(graph, EXCHANGE_PLAN_1) == 0


def test_group_assign_beyond_capacity(emulator: EmulatorServer, graph: GraphClient) -> None:
    emulator.state(TENANT_ID).set_sku_units(EXCHANGE_PLAN_1, {"enabled": 2})
    response = graph.post(f"/groups/{GROUP_ID}/assignLicense", {"addLicenses": [{"skuId": EXCHANGE_PLAN_1}], "removeLicenses": []})
    assert response.status_code == 202
    user = graph.get(f"/users/{user_id(4)}?$select=licenseAssignmentStates").json()
    exchange = [state for state in user["licenseAssignmentStates"] if state["skuId"] == EXCHANGE_PLAN_1]
    assert (exchange[0]["state"], exchange[0]["error"]) == ("Error", "CountViolation")
    assert _consumed(graph, EXCHANGE_PLAN_1) == 2


def test_reprocess_after_seats_added(emulator: EmulatorServer, graph: GraphClient) -> None:
    emulator.state(TENANT_ID).set_sku_units(VISIO, {"enabled": 3})
    response = graph.post(f"/users/{user_id(4)}/reprocessLicenseAssignment", None)
    assert response.status_code == 200
    assert response.json()["assignedLicenses"] == [{"disabledPlans": [], "skuId": VISIO}]
    assert _consumed(graph, VISIO) == 3


def test_deleted_user_frees_seat(emulator: EmulatorServer, graph: GraphClient) -> None:
    emulator.state(TENANT_ID).delete_user(user_id(1))
    assert _consumed(graph, E3) == 0


def test_license_details(graph: GraphClient) -> None:
    body = graph.get(f"/users/{user_id(1)}/licenseDetails").json()
    assert body["@odata.context"].endswith(f"$metadata#users('{user_id(1)}')/licenseDetails")
    detail = body["value"][0]
    assert detail["skuId"] == E3
    assert detail["skuPartNumber"] == "SPE_E3"
    assert len(detail["servicePlans"]) == len(CATALOG.get(E3).service_plans)


def test_subscriptions_listed(generated_graph: GraphClient) -> None:
    body = generated_graph.get("/directory/subscriptions").json()
    by_sku: dict[str, list[dict[str, Any]]] = {}
    for subscription in body["value"]:
        by_sku.setdefault(subscription["skuPartNumber"], []).append(subscription)
    assert len(by_sku["SPE_E3"]) == 2
    assert sorted(item["isTrial"] for item in by_sku["SPE_E3"]) == [False, True]
