"""Fixtures that run the Graph emulator in-process over real HTTPS."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from graphsync.emulator.catalog import load_catalog
from graphsync.emulator.generator import generate_tenant
from graphsync.emulator.server import EmulatorServer

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
CONTROL_TOKEN = "test-control-token"

TENANT_ID = "11111111-2222-4333-8444-555555555555"
CLIENT_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
CLIENT_SECRET = "test-secret~0123456789"
GROUP_ID = "99999999-0000-4000-8000-000000000001"


def user_id(number: int) -> str:
    return f"00000000-0000-4000-8000-{number:012d}"


@pytest.fixture(scope="session", autouse=True)
def _local_ca_for_requests() -> Iterator[None]:
    # requests prefers REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE over a session's `verify`,
    # which is how MSAL passes the CA, so they must be unset for the emulator's CA to count.
    saved = {name: os.environ.pop(name) for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE") if name in os.environ}
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emulator-state")


def _sku_entry(part_number: str, status: str, enabled: int, suspended: int = 0) -> dict[str, Any]:
    sku = load_catalog().by_part_number(part_number)
    return {
        "accountId": "f97aeefc-af85-414d-8ae4-b457f90efc40",
        "accountName": "Test",
        "appliesTo": "User",
        "capabilityStatus": status,
        "consumedUnits": 0,
        "id": f"{TENANT_ID}_{sku.sku_id}",
        "prepaidUnits": {"enabled": enabled, "lockedOut": 0, "suspended": suspended, "warning": 0},
        "servicePlans": [
            {"servicePlanId": plan.service_plan_id, "servicePlanName": plan.name, "provisioningStatus": "Success", "appliesTo": "User"}
            for plan in sku.service_plans
        ],
        "skuId": sku.sku_id,
        "skuPartNumber": sku.part_number,
        "subscriptionIds": [],
    }


def build_small_tenant() -> dict[str, Any]:
    """Return a hand-made tenant whose seat counts the license tests can reason about.

    Users 1-6 have usage location US, user 7 has none. User 1 holds E3 directly.
    E3 has 3 seats, Exchange Online Plan 1 has 5, Visio Plan 2 has 2 and Power BI
    Pro is suspended. The group assigns Visio to users 2, 3 and 4, so user 4 gets
    no seat.
    """
    users = []
    for number in range(1, 8):
        users.append(
            {
                "id": user_id(number),
                "displayName": f"User {number}",
                "userPrincipalName": f"user{number}@contoso.test",
                "mail": f"user{number}@contoso.test",
                "businessPhones": [],
                "accountEnabled": True,
                "department": "Sales",
                "usageLocation": None if number == 7 else "US",
                "assignedLicenses": [],
            }
        )
    e3 = load_catalog().by_part_number("SPE_E3").sku_id
    users[0]["assignedLicenses"] = [{"skuId": e3, "disabledPlans": []}]
    visio = load_catalog().by_part_number("VISIOCLIENT").sku_id
    return {
        "tenantId": TENANT_ID,
        "displayName": "Test tenant",
        "premium": False,
        "clients": [{"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}],
        "users": users,
        "groups": [
            {
                "id": GROUP_ID,
                "displayName": "License - Visio",
                "securityEnabled": True,
                "groupTypes": [],
                "assignedLicenses": [{"skuId": visio, "disabledPlans": []}],
                "members": [user_id(2), user_id(3), user_id(4)],
            }
        ],
        "subscribedSkus": [
            _sku_entry("SPE_E3", "Enabled", 3),
            _sku_entry("EXCHANGESTANDARD", "Enabled", 5),
            _sku_entry("VISIOCLIENT", "Enabled", 2),
            _sku_entry("POWER_BI_PRO", "Suspended", 0, suspended=5),
        ],
        "subscriptions": [],
    }


@pytest.fixture(scope="session")
def generated_tenant() -> dict[str, Any]:
    return generate_tenant(250, seed=42)


@pytest.fixture()
def emulator(state_dir: Path, generated_tenant: dict[str, Any]) -> Iterator[EmulatorServer]:
    """An emulator with the hand-made small tenant and a generated tenant, control interface off."""
    with EmulatorServer([build_small_tenant(), copy.deepcopy(generated_tenant)], state_dir=state_dir) as server:
        yield server


@pytest.fixture()
def controlled_emulator(state_dir: Path) -> Iterator[EmulatorServer]:
    with EmulatorServer([build_small_tenant()], state_dir=state_dir, control_token=CONTROL_TOKEN) as server:
        yield server


def fetch_token(server: EmulatorServer, tenant_id: str, client_id: str, secret: str) -> str:
    response = requests.post(
        f"{server.base_url}/{tenant_id}/oauth2/v2.0/token",
        data={"client_id": client_id, "client_secret": secret, "scope": GRAPH_SCOPE, "grant_type": "client_credentials"},
        verify=server.ca_path,
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["access_token"]


class GraphClient:
    """A minimal Graph client for tests: bearer token, emulator CA, Graph base URL."""

    def __init__(self, server: EmulatorServer, token: str) -> None:
        self.base = f"{server.base_url}/v1.0"
        self.session = requests.Session()
        self.session.verify = str(server.ca_path)
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("https://") else self.base + path
        return self.session.get(url, timeout=10, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> requests.Response:
        return self.session.post(self.base + path, json=body, timeout=10, **kwargs)


@pytest.fixture()
def graph(emulator: EmulatorServer) -> GraphClient:
    """A Graph client signed in to the small tenant."""
    return GraphClient(emulator, fetch_token(emulator, TENANT_ID, CLIENT_ID, CLIENT_SECRET))


@pytest.fixture()
def generated_graph(emulator: EmulatorServer, generated_tenant: dict[str, Any]) -> GraphClient:
    client = generated_tenant["clients"][0]
    return GraphClient(emulator, fetch_token(emulator, generated_tenant["tenantId"], client["clientId"], client["clientSecret"]))


def graph_error(response: requests.Response) -> tuple[int, str, str]:
    """Return (status, error code, message) of a Graph error response."""
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"]


def control_request(
    server: EmulatorServer, method: str, path: str, token: str | None = CONTROL_TOKEN, **kwargs: Any
) -> requests.Response:
    """Send a request to the control interface under /_emulator."""
    headers = {"X-Emulator-Control": token} if token is not None else {}
    return requests.request(method, f"{server.base_url}/_emulator{path}", headers=headers, verify=server.ca_path, timeout=10, **kwargs)


def small_graph(server: EmulatorServer) -> GraphClient:
    """A Graph client signed in to the small tenant of `server`."""
    return GraphClient(server, fetch_token(server, TENANT_ID, CLIENT_ID, CLIENT_SECRET))
