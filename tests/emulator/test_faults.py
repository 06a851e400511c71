"""Injected dropped connections, failing listing pages and fault settings given at start."""

from __future__ import annotations

import copy
import http.client
import ssl
from pathlib import Path
from typing import Any

import pytest
import requests

from graphsync.emulator.server import EmulatorServer

from .conftest import CONTROL_TOKEN, GraphClient, build_small_tenant, control_request, fetch_token, graph_error, small_graph

EXPIRED_PAGE = (400, "Directory_ExpiredPageToken", "The specified page token value has expired and can no longer be included in your request.")


def _generated_graph(server: EmulatorServer, tenant: dict[str, Any]) -> GraphClient:
    client = tenant["clients"][0]
    return GraphClient(server, fetch_token(server, tenant["tenantId"], client["clientId"], client["clientSecret"]))


def test_dropped_connection(controlled_emulator: EmulatorServer) -> None:
    graph = small_graph(controlled_emulator)
    control_request(controlled_emulator, "POST", "/faults", json={"dropRate": 1})
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{controlled_emulator.base_url}/v1.0/users", headers=graph.session.headers, verify=controlled_emulator.ca_path, timeout=10)
    # Token and control requests are never dropped.
    fetch_token(controlled_emulator, build_small_tenant()["tenantId"], *_client(build_small_tenant()))
    control_request(controlled_emulator, "POST", "/faults", json={"dropRate": 0})
    assert small_graph(controlled_emulator).get("/users").status_code == 200


def _client(tenant: dict[str, Any]) -> tuple[str, str]:
    return tenant["clients"][0]["clientId"], tenant["clients"][0]["clientSecret"]


def _walk(graph: GraphClient, url: str) -> tuple[list[int], str | None]:
    """Follow next links, returning the statuses and the URL that failed (or None)."""
    statuses = []
    while url:
        response = graph.get(url)
        statuses.append(response.status_code)
        if response.status_code != 200:
            assert graph_error(response) == EXPIRED_PAGE
            return statuses, url
        url = response.json().get("@odata.nextLink")
    return statuses, None


def test_fail_page_once(state_dir: Path, generated_tenant: dict[str, Any]) -> None:
    tenant = copy.deepcopy(generated_tenant)
    with EmulatorServer([tenant], state_dir=state_dir, faults={"failPage": 3}) as server:
        graph = _generated_graph(server, tenant)
        statuses, failed_url = _walk(graph, "/users?$top=50&$select=id")
        assert statuses == [200, 200, 400]
        assert failed_url is not None
        statuses, failed_url = _walk(graph, failed_url)
        assert statuses == [200, 200, 200]
        assert failed_url is None


def test_fail_page_always(state_dir: Path, generated_tenant: dict[str, Any]) -> None:
    tenant = copy.deepcopy(generated_tenant)
    with EmulatorServer([tenant], state_dir=state_dir, control_token=CONTROL_TOKEN) as server:
        settings = control_request(server, "POST", "/faults", json={"failPage": 2, "failPageMode": "always"})
        assert settings.json()["failPage"] == 2
        graph = _generated_graph(server, tenant)
        _, failed_url = _walk(graph, "/users?$top=100")
        assert failed_url is not None
        assert graph_error(graph.get(failed_url)) == EXPIRED_PAGE
        control_request(server, "POST", "/faults", json={"failPage": None})
        assert graph.get(failed_url).status_code == 200


def test_first_page_can_fail(state_dir: Path) -> None:
    with EmulatorServer([build_small_tenant()], state_dir=state_dir, faults={"failPage": 1}) as server:
        graph = small_graph(server)
        assert graph.get("/users").status_code == 400
        assert graph.get("/users").status_code == 200


def test_fault_settings_listed(controlled_emulator: EmulatorServer) -> None:
    settings = control_request(controlled_emulator, "GET", "/faults").json()
    assert settings == {
        "throttleRate": 0.0,
        "retryAfterSeconds": 1.0,
        "serverErrorRate": 0.0,
        "unavailableRate": 0.0,
        "latencyMs": 0,
        "dropRate": 0.0,
        "dropWriteRate": 0.0,
        "dropAfterWriteRate": 0.0,
        "failPage": None,
        "failPageMode": "once",
        "throttleEnabled": True,
        "throttleScale": 1.0,
        "retryAfterFormat": "seconds",
    }


def test_injected_throttle_uses_format(controlled_emulator: EmulatorServer) -> None:
    control_request(controlled_emulator, "POST", "/faults", json={"throttleRate": 1, "retryAfterSeconds": 0.249, "retryAfterFormat": "decimal"})
    response = small_graph(controlled_emulator).get("/users")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "0.249"


def test_constructor_rejects_bad_faults(state_dir: Path) -> None:
    with pytest.raises(ValueError, match="failPageMode must be one of once, always"):
        EmulatorServer([build_small_tenant()], state_dir=state_dir, faults={"failPageMode": "twice"})


def test_keep_alive_connection_reused(emulator: EmulatorServer, graph: GraphClient) -> None:
    context = ssl.create_default_context(cafile=str(emulator.ca_path))
    connection = http.client.HTTPSConnection("localhost", emulator.port, context=context, timeout=10)
    headers = {"Authorization": graph.session.headers["Authorization"]}
    try:
        connection.request("GET", "/v1.0/users?$select=id", headers=headers)
        first = connection.getresponse()
        first.read()
        # http.client drops its socket after a response that closes the connection.
        socket_after_first = connection.sock
        connection.request("GET", "/v1.0/users?$select=id", headers=headers)
        second = connection.getresponse()
        second.read()
        socket_after_second = connection.sock
    finally:
        connection.close()
    assert first.status == 200
    assert first.getheader("Connection") is None
    assert socket_after_first is not None
    assert second.status == 200
    assert socket_after_second is socket_after_first
