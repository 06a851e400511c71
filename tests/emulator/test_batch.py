"""POST /$batch: limits, per-request responses, dependsOn and inner throttling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graphsync.emulator.catalog import load_catalog
from graphsync.emulator.server import EmulatorServer

from .conftest import TENANT_ID, GraphClient, build_small_tenant, graph_error, small_graph, user_id

E3 = load_catalog().by_part_number("SPE_E3").sku_id


def _by_id(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["id"]: entry for entry in body["responses"]}


def test_batch_serves_each_request(graph: GraphClient) -> None:
    requests_ = [
        {"id": "1", "method": "GET", "url": f"/users/{user_id(2)}?$select=id,department"},
        {"id": "2", "method": "GET", "url": "/subscribedSkus"},
        {
            "id": "3",
            "method": "POST",
            "url": f"/users/{user_id(5)}/assignLicense",
            "headers": {"Content-Type": "application/json"},
            "body": {"addLicenses": [{"skuId": E3}], "removeLicenses": []},
        },
        {"id": "4", "method": "GET", "url": "users/nobody@contoso.test"},
        {"id": "5", "method": "GET", "url": "/users/$count", "headers": {"ConsistencyLevel": "eventual"}},
    ]
    response = graph.post("/$batch", {"requests": requests_})
    assert response.status_code == 200
    body = response.json()
    assert [entry["id"] for entry in body["responses"]] != ["1", "2", "3", "4", "5"]
    entries = _by_id(body)
    assert set(entries) == {"1", "2", "3", "4", "5"}
    assert entries["1"]["status"] == 200
    assert entries["1"]["body"]["department"] == "Sales"
    assert entries["1"]["headers"]["x-ms-resource-unit"] == "1"
    assert entries["2"]["body"]["value"][0]["skuId"] == E3
    assert entries["3"]["status"] == 200
    assert {"disabledPlans": [], "skuId": E3} in entries["3"]["body"]["assignedLicenses"]
    assert entries["4"]["status"] == 404
    assert entries["4"]["body"]["error"]["code"] == "Request_ResourceNotFound"
    assert entries["5"]["body"] == "7"


def test_batch_order_is_stable(graph: GraphClient) -> None:
    requests_ = [{"id": str(number), "method": "GET", "url": f"/users/{user_id(number)}"} for number in range(1, 8)]
    first = [entry["id"] for entry in graph.post("/$batch", {"requests": requests_}).json()["responses"]]
    second = [entry["id"] for entry in graph.post("/$batch", {"requests": requests_}).json()["responses"]]
    assert first == second
    assert first != [str(number) for number in range(1, 8)]


def test_batch_limit_of_20(graph: GraphClient) -> None:
    requests_ = [{"id": str(number), "method": "GET", "url": "/users"} for number in range(21)]
    response = graph.post("/$batch", {"requests": requests_})
    assert graph_error(response) == (400, "BadRequest", "Number of requests inside batch exceeds the limit.")
    assert graph.post("/$batch", {"requests": requests_[:20]}).status_code == 200


def test_batch_duplicate_ids(graph: GraphClient) -> None:
    requests_ = [{"id": "1", "method": "GET", "url": "/users"}, {"id": "1", "method": "GET", "url": "/groups"}]
    status, code, _ = graph_error(graph.post("/$batch", {"requests": requests_}))
    assert (status, code) == (400, "BadRequest")


def test_batch_depends_on_failed_request(graph: GraphClient) -> None:
    requests_ = [
        {"id": "a", "method": "GET", "url": "/users/missing-user"},
        {"id": "b", "method": "GET", "url": f"/users/{user_id(1)}", "dependsOn": ["a"]},
        {"id": "c", "method": "GET", "url": f"/users/{user_id(2)}", "dependsOn": ["b"]},
        {"id": "d", "method": "GET", "url": f"/users/{user_id(3)}"},
    ]
    entries = _by_id(graph.post("/$batch", {"requests": requests_}).json())
    assert entries["a"]["status"] == 404
    assert entries["b"]["status"] == 424
    assert entries["c"]["status"] == 424
    assert entries["d"]["status"] == 200


def test_batch_depends_on_unknown_id(graph: GraphClient) -> None:
    requests_ = [{"id": "a", "method": "GET", "url": "/users", "dependsOn": ["z"]}]
    assert graph.post("/$batch", {"requests": requests_}).status_code == 400


def test_batch_rejects_absolute_url(graph: GraphClient) -> None:
    requests_ = [{"id": "a", "method": "GET", "url": "https://graph.microsoft.com/v1.0/users"}]
    assert graph.post("/$batch", {"requests": requests_}).status_code == 400


def test_batch_needs_token(emulator: EmulatorServer) -> None:
    client = GraphClient(emulator, "not-a-token")
    response = client.post("/$batch", {"requests": []})
    assert response.status_code == 401


def test_batch_inner_requests_throttled(state_dir: Path) -> None:
    # A scale of 0.001 leaves the small tenant 3.5 resource units per 10 seconds.
    with EmulatorServer([build_small_tenant()], state_dir=state_dir, faults={"throttleScale": 0.001}) as server:
        graph = small_graph(server)
        requests_ = [{"id": str(number), "method": "GET", "url": f"/users/{user_id(number)}"} for number in range(1, 5)]
        response = graph.post("/$batch", {"requests": requests_})
        assert response.status_code == 200
        entries = _by_id(response.json())
        assert [entries[str(number)]["status"] for number in range(1, 5)] == [200, 200, 200, 429]
        throttled = entries["4"]
        assert throttled["body"]["error"]["code"] == "TooManyRequests"
        assert throttled["body"]["error"]["message"] == "Please retry again later."
        assert int(throttled["headers"]["Retry-After"]) >= 1
        assert server.state(TENANT_ID).user_count() == 7
