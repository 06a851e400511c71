"""Microsoft's Graph SDK for Python (msgraph-sdk, kiota-based) against the emulator.

The SDK gets a static bearer token fetched from the emulator's token endpoint and
an httpx client that trusts the emulator's CA. An event hook fails the test if the
SDK sends a request to any host other than localhost.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpx
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.authentication import AccessTokenProvider, AllowedHostsValidator, BaseBearerTokenAuthenticationProvider
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.assigned_license import AssignedLicense
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph.generated.users.item.assign_license.assign_license_post_request_body import AssignLicensePostRequestBody
from msgraph_core import GraphClientFactory, PageIterator

from graphsync.emulator.catalog import load_catalog
from graphsync.emulator.server import EmulatorServer

from .conftest import TENANT_ID, build_small_tenant, user_id

E3 = load_catalog().by_part_number("SPE_E3").sku_id


class StaticTokenProvider(AccessTokenProvider):
    """Returns one access token for requests to localhost."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def get_authorization_token(self, uri: str, additional_authentication_context: dict[str, Any] | None = None) -> str:
        return self.token

    def get_allowed_hosts_validator(self) -> AllowedHostsValidator:
        return AllowedHostsValidator(["localhost"])


def _sdk_client(server: EmulatorServer, token: str, hosts: list[str]) -> tuple[GraphServiceClient, httpx.AsyncClient]:
    async def record_host(request: httpx.Request) -> None:
        hosts.append(request.url.host)

    context = ssl.create_default_context(cafile=str(server.ca_path))
    http_client = httpx.AsyncClient(verify=context, base_url=f"{server.base_url}/v1.0", event_hooks={"request": [record_host]})
    http_client = GraphClientFactory.create_with_default_middleware(client=http_client)
    adapter = GraphRequestAdapter(BaseBearerTokenAuthenticationProvider(StaticTokenProvider(token)), client=http_client)
    adapter.base_url = f"{server.base_url}/v1.0"
    return GraphServiceClient(request_adapter=adapter), http_client


async def _fetch_token(server: EmulatorServer, tenant: dict[str, Any], hosts: list[str]) -> str:
    client = tenant["clients"][0]
    context = ssl.create_default_context(cafile=str(server.ca_path))
    async with httpx.AsyncClient(verify=context) as http:
        hosts.append("localhost")
        response = await http.post(
            f"{server.base_url}/{tenant['tenantId']}/oauth2/v2.0/token",
            data={
                "client_id": client["clientId"],
                "client_secret": client["clientSecret"],
                "scope": "https://graph.microsoft.com/.default",
                "grant_type": "client_credentials",
            },
        )
        response.raise_for_status()
        return response.json()["access_token"]


async def _exercise_sdk(server: EmulatorServer, tenant: dict[str, Any]) -> dict[str, Any]:
    hosts: list[str] = []
    token = await _fetch_token(server, tenant, hosts)
    graph, http_client = _sdk_client(server, token, hosts)
    results: dict[str, Any] = {"hosts": hosts}
    try:
        query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(select=["id", "displayName", "usageLocation"], top=40)
        config = RequestConfiguration(query_parameters=query)
        first_page = await graph.users.get(request_configuration=config)
        users: list[Any] = []

        def collect(user: Any) -> bool:
            users.append(user)
            return True

        iterator = PageIterator(first_page, graph.request_adapter)
        await iterator.iterate(collect)
        results["user_ids"] = [user.id for user in users]

        skus = await graph.subscribed_skus.get()
        results["skus"] = {sku.sku_id: sku for sku in skus.value}

        licensed = next(user for user in users if user.usage_location)
        body = AssignLicensePostRequestBody(add_licenses=[], remove_licenses=[])
        results["noop_user"] = await graph.users.by_user_id(licensed.id).assign_license.post(body)

        unknown_sku = "00000000-0000-4000-8000-0000000000aa"
        refused = AssignLicensePostRequestBody(add_licenses=[AssignedLicense(sku_id=unknown_sku, disabled_plans=[])], remove_licenses=[])
        try:
            await graph.users.by_user_id(licensed.id).assign_license.post(refused)
        except ODataError as error:
            results["error"] = error
    finally:
        await http_client.aclose()
    return results


def test_sdk_lists_reads_and_assigns(emulator: EmulatorServer, generated_tenant: dict[str, Any]) -> None:
    results = asyncio.run(_exercise_sdk(emulator, generated_tenant))

    expected_ids = sorted(user["id"] for user in generated_tenant["users"] if not user.get("deletedDateTime"))
    assert sorted(results["user_ids"]) == expected_ids
    assert len(results["user_ids"]) > 40
    assert {sku["skuId"] for sku in generated_tenant["subscribedSkus"]} == {str(sku_id) for sku_id in results["skus"]}
    assert results["noop_user"].id is not None

    error = results["error"]
    assert error.response_status_code == 400
    assert error.error.code == "Request_BadRequest"
    assert error.error.message == "License 00000000-0000-4000-8000-0000000000aa does not correspond to a valid company License."
    assert set(results["hosts"]) == {"localhost"}


def test_sdk_assigns_license(emulator: EmulatorServer) -> None:
    async def assign() -> Any:
        hosts: list[str] = []
        token = await _fetch_token(emulator, build_small_tenant(), hosts)
        graph, http_client = _sdk_client(emulator, token, hosts)
        try:
            body = AssignLicensePostRequestBody(add_licenses=[AssignedLicense(sku_id=E3, disabled_plans=[])], remove_licenses=[])
            return await graph.users.by_user_id(user_id(2)).assign_license.post(body)
        finally:
            await http_client.aclose()

    user = asyncio.run(assign())
    assert user.id == user_id(2)
    assert emulator.state(TENANT_ID).consumed_units(E3) == 2
