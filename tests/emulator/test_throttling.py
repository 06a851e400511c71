"""Resource unit throttling per app and tenant, Retry-After formats and throttling headers."""

from __future__ import annotations

import email.utils
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphsync.emulator.server import EmulatorServer
from graphsync.emulator.throttling import request_cost, unit_limit

from graphsync.emulator.generator import generate_tenant

from .conftest import CONTROL_TOKEN, GraphClient, build_small_tenant, control_request, fetch_token, graph_error, small_graph


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def throttled_emulator(state_dir: Path) -> Iterator[EmulatorServer]:
    """The small tenant with 3.5 resource units per 10 seconds and a clock the test moves."""
    with EmulatorServer([build_small_tenant()], state_dir=state_dir, control_token=CONTROL_TOKEN, faults={"throttleScale": 0.001}) as server:
        server.app.throttler.clock = FakeClock()
        yield server


def test_limits_by_tenant_size() -> None:
    assert unit_limit(49) == 3500
    assert unit_limit(50) == 5000
    assert unit_limit(500) == 5000
    assert unit_limit(501) == 8000


def test_request_costs() -> None:
    assert request_cost("GET", ["users"], has_select=False) == 2
    assert request_cost("GET", ["users"], has_select=True) == 1
    assert request_cost("GET", ["subscribedskus"], has_select=False) == 3
    assert request_cost("GET", ["groups"], has_select=False) == 1
    assert request_cost("POST", ["users", "x", "assignlicense"], has_select=False) == 1


def test_resource_unit_header(graph: GraphClient) -> None:
    assert graph.get("/users").headers["x-ms-resource-unit"] == "2"
    assert graph.get("/users?$select=id").headers["x-ms-resource-unit"] == "1"
    assert graph.get("/subscribedSkus").headers["x-ms-resource-unit"] == "3"
    assert "x-ms-throttle-limit-percentage" not in graph.get("/users").headers


def test_throttled_over_limit(throttled_emulator: EmulatorServer) -> None:
    graph = small_graph(throttled_emulator)
    first = graph.get("/users")
    assert first.status_code == 200
    assert "x-ms-throttle-limit-percentage" not in first.headers
    second = graph.get("/users?$select=id")
    assert second.status_code == 200
    assert second.headers["x-ms-throttle-limit-percentage"] == "0.9"

    throttled = graph.get("/users")
    assert graph_error(throttled) == (429, "TooManyRequests", "Please retry again later.")
    assert throttled.headers["Retry-After"] == "10"

    throttled_emulator.app.throttler.clock.now += 10  # type: ignore[attr-defined]
    assert graph.get("/users").status_code == 200


def test_retry_after_decimal(throttled_emulator: EmulatorServer) -> None:
    assert control_request(throttled_emulator, "POST", "/faults", json={"retryAfterFormat": "decimal"}).status_code == 200
    graph = small_graph(throttled_emulator)
    assert graph.get("/subscribedSkus").status_code == 200
    throttled_emulator.app.throttler.clock.now += 9.751  # type: ignore[attr-defined]
    response = graph.get("/users")
    assert response.status_code == 429
    assert re.fullmatch(r"\d+\.\d{3}", response.headers["Retry-After"])
    assert response.headers["Retry-After"] == "0.249"


def test_retry_after_http_date(throttled_emulator: EmulatorServer) -> None:
    control_request(throttled_emulator, "POST", "/faults", json={"retryAfterFormat": "httpDate"})
    graph = small_graph(throttled_emulator)
    graph.get("/subscribedSkus")
    response = graph.get("/subscribedSkus")
    assert response.status_code == 429
    assert email.utils.parsedate_to_datetime(response.headers["Retry-After"]) is not None
    assert response.headers["Retry-After"].endswith(" GMT")


def test_throttling_per_app_and_tenant(state_dir: Path) -> None:
    other = generate_tenant(20, seed=3)
    with EmulatorServer([build_small_tenant(), other], state_dir=state_dir, faults={"throttleScale": 0.001}) as server:
        graph = small_graph(server)
        graph.get("/subscribedSkus")
        assert graph.get("/subscribedSkus").status_code == 429
        client = other["clients"][0]
        other_graph = GraphClient(server, fetch_token(server, other["tenantId"], client["clientId"], client["clientSecret"]))
        assert other_graph.get("/subscribedSkus").status_code == 200


def test_write_limit(state_dir: Path) -> None:
    # 250 users give 5,000 units and the scale leaves 5 units and 3 writes per window.
    tenant = generate_tenant(250, seed=5)
    with EmulatorServer([tenant], state_dir=state_dir, faults={"throttleScale": 0.001}) as server:
        client = tenant["clients"][0]
        graph = GraphClient(server, fetch_token(server, tenant["tenantId"], client["clientId"], client["clientSecret"]))
        user = tenant["users"][0]["id"]
        statuses = [graph.post(f"/users/{user}/assignLicense", {"addLicenses": [], "removeLicenses": []}).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]


def test_throttling_can_be_disabled(throttled_emulator: EmulatorServer) -> None:
    control_request(throttled_emulator, "POST", "/faults", json={"throttleEnabled": False})
    graph = small_graph(throttled_emulator)
    assert [graph.get("/subscribedSkus").status_code for _ in range(3)] == [200, 200, 200]


def test_throttling_reset(throttled_emulator: EmulatorServer) -> None:
    graph = small_graph(throttled_emulator)
    graph.get("/subscribedSkus")
    assert graph.get("/subscribedSkus").status_code == 429
    assert control_request(throttled_emulator, "POST", "/throttling/reset").status_code == 204
    assert graph.get("/subscribedSkus").status_code == 200


def test_throttle_settings_validated(throttled_emulator: EmulatorServer) -> None:
    response = control_request(throttled_emulator, "POST", "/faults", json={"throttleScale": 0})
    assert graph_error(response)[2] == "throttleScale must be a positive number, got 0"
    response = control_request(throttled_emulator, "POST", "/faults", json={"retryAfterFormat": "minutes"})
    assert graph_error(response)[2] == "retryAfterFormat must be one of seconds, decimal, httpDate, got 'minutes'"
