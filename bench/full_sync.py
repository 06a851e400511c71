"""Benchmark a full sync of a generated tenant against the Graph emulator.

Starts the emulator in its own process with a generated tenant, then measures in this process:
1. a bare fetch: MSAL token plus every users page with the sync's $select, JSON-parsed, nothing stored;
2. the product's full sync (fetch, write the PostgreSQL mirror, pools and license history);
3. a second full sync, which finds the mirror current;
4. optionally, listing the same users with Microsoft's msgraph-sdk.
Peak memory is this process's maximum resident set size after each step (it only grows).

Usage (PostgreSQL must run; the database is created if missing and its tables are emptied):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lp_bench DJANGO_SECRET_KEY=bench \
        .venv/bin/python bench/full_sync.py --users 100000 [--sdk]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "licensepools.settings")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def start_emulator(
    users: int, seed: int, state_dir: Path, control_token: str | None = None
) -> tuple[subprocess.Popen, dict]:
    endpoint_file = state_dir / "endpoint.json"
    control = ["--control-token", control_token] if control_token else []
    process = subprocess.Popen(
        [sys.executable, "-m", "graphsync.emulator", "serve", "--generate", str(users), "--seed", str(seed),
         "--port", "0", "--state-dir", str(state_dir), *control],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not endpoint_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("The emulator did not start; run it by hand to see why.")
        time.sleep(0.2)
    time.sleep(0.2)
    return process, json.loads(endpoint_file.read_text())


def bare_fetch(endpoint: dict) -> tuple[float, int]:
    import msal
    import requests

    from graphsync.sync import PAGE_SIZE, SIGN_IN_PAGE_SIZE, SIGN_IN_SELECT, USER_SELECT

    tenant = endpoint["tenants"][0]
    session = requests.Session()
    session.verify = endpoint["ca_path"]
    session.trust_env = False
    started = time.perf_counter()
    app = msal.ConfidentialClientApplication(
        tenant["clientId"], client_credential=tenant["clientSecret"],
        authority=f"{endpoint['base_url']}/{tenant['tenantId']}", http_client=session, instance_discovery=False,
    )
    token = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])["access_token"]
    # The same listing as the sync: with signInActivity (pages of 500) where the tenant returns it.
    url, count = f"{endpoint['base_url']}/v1.0/users", 0
    params = {"$select": f"{USER_SELECT},{SIGN_IN_SELECT}", "$top": min(PAGE_SIZE, SIGN_IN_PAGE_SIZE)}
    probe = session.get(url, params={**params, "$top": 1}, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    if probe.status_code == 403:
        params = {"$select": USER_SELECT, "$top": PAGE_SIZE}
    while url:
        body = session.get(url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=60).json()
        count += len(body["value"])
        url, params = body.get("@odata.nextLink"), None
    return time.perf_counter() - started, count


def product_sync(endpoint: dict) -> tuple[float, int]:
    from django.core.management import call_command

    from graphsync.models import SyncRun, Tenant
    from graphsync.services import connect_tenant
    from graphsync.sync import run_full_sync

    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    tenant_data = endpoint["tenants"][0]
    tenant = connect_tenant(
        acting_user=None, name="bench", tenant_id=tenant_data["tenantId"], client_id=tenant_data["clientId"],
        client_secret=tenant_data["clientSecret"], authority_host=endpoint["base_url"],
        graph_base_url=f"{endpoint['base_url']}/v1.0", ca_bundle=endpoint["ca_path"],
    )
    started = time.perf_counter()
    run = run_full_sync(SyncRun.objects.create(tenant=tenant))
    elapsed = time.perf_counter() - started
    if run.status != "succeeded":
        raise SystemExit(f"Sync failed: {run.error_message}")
    assert Tenant.objects.get(pk=tenant.pk).users.count() == run.users_count
    return elapsed, run.users_count


def product_resync(tenant_id: str) -> tuple[float, int]:
    """Time a second full sync of the tenant, whose mirror the first one filled: it rewrites no row."""
    from graphsync.models import SyncRun, Tenant
    from graphsync.sync import run_full_sync

    started = time.perf_counter()
    run = run_full_sync(SyncRun.objects.create(tenant=Tenant.objects.get(tenant_id=tenant_id)))
    elapsed = time.perf_counter() - started
    if run.status != "succeeded":
        raise SystemExit(f"Sync failed: {run.error_message}")
    return elapsed, run.users_count


def sdk_listing(endpoint: dict) -> tuple[float, int]:
    import httpx
    from kiota_abstractions.authentication import AccessTokenProvider, AllowedHostsValidator, BaseBearerTokenAuthenticationProvider
    from kiota_http.httpx_request_adapter import HttpxRequestAdapter
    from msgraph import GraphServiceClient
    from msgraph.generated.users.users_request_builder import UsersRequestBuilder
    import msal
    import requests

    from graphsync.sync import PAGE_SIZE, USER_SELECT

    tenant = endpoint["tenants"][0]
    session = requests.Session()
    session.verify = endpoint["ca_path"]
    session.trust_env = False
    app = msal.ConfidentialClientApplication(
        tenant["clientId"], client_credential=tenant["clientSecret"],
        authority=f"{endpoint['base_url']}/{tenant['tenantId']}", http_client=session, instance_discovery=False,
    )

    class MsalTokenProvider(AccessTokenProvider):
        async def get_authorization_token(self, uri, additional_authentication_context=None):
            return app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])["access_token"]

        def get_allowed_hosts_validator(self):
            return AllowedHostsValidator(["localhost"])

    async def run() -> int:
        http = httpx.AsyncClient(verify=endpoint["ca_path"], trust_env=False, timeout=60)
        adapter = HttpxRequestAdapter(BaseBearerTokenAuthenticationProvider(MsalTokenProvider()), http_client=http)
        adapter.base_url = f"{endpoint['base_url']}/v1.0"
        client = GraphServiceClient(request_adapter=adapter)
        config = UsersRequestBuilder.UsersRequestBuilderGetRequestConfiguration(
            query_parameters=UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
                select=USER_SELECT.split(","), top=PAGE_SIZE
            )
        )
        page = await client.users.get(request_configuration=config)
        count = 0
        while page is not None:
            count += len(page.value or [])
            if not page.odata_next_link:
                break
            page = await client.users.with_url(page.odata_next_link).get()
        await http.aclose()
        return count

    started = time.perf_counter()
    count = asyncio.run(run())
    return time.perf_counter() - started, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sdk", action="store_true", help="also list the users with msgraph-sdk")
    args = parser.parse_args()

    import django

    django.setup()

    with tempfile.TemporaryDirectory() as state_dir:
        emulator, endpoint = start_emulator(args.users, args.seed, Path(state_dir))
        try:
            fetch_seconds, fetched = bare_fetch(endpoint)
            print(f"bare fetch: {fetched} users in {fetch_seconds:.2f} s ({fetched / fetch_seconds:,.0f} users/s), "
                  f"peak RSS {peak_rss_mib():.0f} MiB")
            sync_seconds, synced = product_sync(endpoint)
            print(f"full sync:  {synced} users in {sync_seconds:.2f} s ({synced / sync_seconds:,.0f} users/s), "
                  f"peak RSS {peak_rss_mib():.0f} MiB, {sync_seconds / fetch_seconds:.2f}x the bare fetch")
            resync_seconds, resynced = product_resync(endpoint["tenants"][0]["tenantId"])
            print(f"full sync again, mirror current: {resynced} users in {resync_seconds:.2f} s "
                  f"({resynced / resync_seconds:,.0f} users/s), {resync_seconds / fetch_seconds:.2f}x the bare fetch")
            if args.sdk:
                sdk_seconds, listed = sdk_listing(endpoint)
                print(f"msgraph-sdk: {listed} users in {sdk_seconds:.2f} s ({listed / sdk_seconds:,.0f} users/s)")
        finally:
            emulator.terminate()
            emulator.wait(timeout=30)


if __name__ == "__main__":
    main()
