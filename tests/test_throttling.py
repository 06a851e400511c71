"""Throttling budget per tenant shared through Redis: pauses after a 429 and token-bucket pacing."""
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import redis

from graphsync import throttle
from graphsync.testing import GraphTraffic, clear_throttle_state, control, set_faults

ROOT = Path(__file__).resolve().parent.parent

# One worker process: it sends ``count`` GET users requests for the tenant once ``start_at`` has passed.
WORKER_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import django

    django.setup()
    from graphsync.client import GraphClient
    from graphsync.models import Tenant

    tenant = Tenant(
        name="throttling test", tenant_id=os.environ["LP_TENANT_ID"], client_id=os.environ["LP_CLIENT_ID"],
        authority_host=os.environ["LP_AUTHORITY_HOST"], graph_base_url=os.environ["LP_GRAPH_BASE_URL"],
        ca_bundle=os.environ["LP_CA_BUNDLE"],
    )
    tenant.set_client_secret(os.environ["LP_CLIENT_SECRET"])
    client = GraphClient(tenant)
    client.acquire_token()
    time.sleep(max(float(sys.argv[2]) - time.time(), 0))
    for _ in range(int(sys.argv[1])):
        client.get("users", params={"$select": "id", "$top": 1})
    """
)


@pytest.fixture
def redis_url(settings):
    url = throttle.throttle_redis_url()
    if not url:
        pytest.skip("These tests need Redis: set CELERY_BROKER_URL=redis://127.0.0.1:6379/14")
    return url


@pytest.fixture
def tenant_key():
    key = str(uuid.uuid4())
    yield key
    clear_throttle_state(key)


def test_pause_holds_other_processes_budget(redis_url, tenant_key):
    first = throttle.RedisThrottleBudget(redis_url, units_per_second=100, burst_units=100)
    second = throttle.RedisThrottleBudget(redis_url, units_per_second=100, burst_units=100)

    first.pause(tenant_key, 1.0)
    started = time.monotonic()
    waited = second.acquire(tenant_key)

    assert time.monotonic() - started >= 0.9
    assert waited >= 0.9
    stored = redis.Redis.from_url(redis_url).get(throttle.RESUME_KEY.format(tenant_id=tenant_key))
    assert stored is not None


def test_pause_never_moves_resume_time_back(redis_url, tenant_key):
    budget = throttle.RedisThrottleBudget(redis_url, units_per_second=100, burst_units=100)
    client = redis.Redis.from_url(redis_url)
    key = throttle.RESUME_KEY.format(tenant_id=tenant_key)

    budget.pause(tenant_key, 2.0)
    later = int(client.get(key))
    budget.pause(tenant_key, 0.1)

    assert int(client.get(key)) == later


def test_bucket_paces_across_budgets(redis_url, tenant_key):
    budgets = [throttle.RedisThrottleBudget(redis_url, units_per_second=10, burst_units=2) for _ in range(2)]
    started = time.monotonic()

    for i in range(12):
        budgets[i % 2].acquire(tenant_key)

    # 2 units of burst, then 10 units per second: the other 10 requests need about 1 s.
    assert time.monotonic() - started >= 0.9


def test_bucket_charges_cost(redis_url, tenant_key):
    budget = throttle.RedisThrottleBudget(redis_url, units_per_second=10, burst_units=5)
    budget.acquire(tenant_key, cost=5)
    started = time.monotonic()

    budget.acquire(tenant_key, cost=5)

    assert time.monotonic() - started >= 0.45


def test_local_budget_without_redis(settings):
    settings.CELERY_BROKER_URL = ""
    settings.GRAPH_THROTTLE_REDIS_URL = ""
    budget = throttle.get_throttle_budget()
    assert isinstance(budget, throttle.LocalThrottleBudget)

    budget.pause("local-tenant", 0.3)
    started = time.monotonic()
    budget.acquire("local-tenant")

    assert time.monotonic() - started >= 0.25


def test_throttle_redis_url_setting_wins(settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/14"
    settings.GRAPH_THROTTLE_REDIS_URL = "redis://127.0.0.1:6379/13"
    assert throttle.throttle_redis_url() == "redis://127.0.0.1:6379/13"

    settings.GRAPH_THROTTLE_REDIS_URL = ""
    assert throttle.throttle_redis_url() == "redis://127.0.0.1:6379/14"

    settings.CELERY_BROKER_URL = "amqp://127.0.0.1//"
    assert throttle.throttle_redis_url() == ""


def test_resource_units_follow_graph_costs():
    base = "https://graph.example/v1.0"
    assert throttle.resource_units("GET", f"{base}/users", None) == 2
    assert throttle.resource_units("GET", f"{base}/users", {"$select": "id"}) == 1
    assert throttle.resource_units("GET", f"{base}/users?$select=id&$skiptoken=x", None) == 1
    assert throttle.resource_units("GET", f"{base}/subscribedSkus", None) == 3
    assert throttle.resource_units("POST", f"{base}/users/1/assignLicense", None) == 1


# Real processes sharing one budget


def run_workers(emulator, tenant, redis_url, *, processes: int, requests_each: int, rate: float, burst: float) -> None:
    client = tenant.client_id
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "licensepools.settings",
            "GRAPH_THROTTLE_REDIS_URL": redis_url,
            "GRAPH_THROTTLE_UNITS_PER_SECOND": str(rate),
            "GRAPH_THROTTLE_BURST_UNITS": str(burst),
            "LP_TENANT_ID": str(tenant.tenant_id),
            "LP_CLIENT_ID": str(client),
            "LP_CLIENT_SECRET": tenant.get_client_secret(),
            "LP_AUTHORITY_HOST": tenant.authority_host,
            "LP_GRAPH_BASE_URL": tenant.graph_base_url,
            "LP_CA_BUNDLE": tenant.ca_bundle,
        }
    )
    start_at = time.time() + 4
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER_SCRIPT, str(requests_each), str(start_at)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for _ in range(processes)
    ]
    for worker in workers:
        output, _ = worker.communicate(timeout=180)
        assert worker.returncode == 0, output


def throttled_count(emulator, tenant, redis_url, traffic, **options) -> int:
    control(emulator, "POST", "throttling/reset")
    clear_throttle_state(str(tenant.tenant_id))
    traffic.reset()
    run_workers(emulator, tenant, redis_url, **options)
    assert traffic.statuses[200] == options["processes"] * options["requests_each"]
    return traffic.statuses[429]


def test_two_workers_no_more_429s_than_one(emulator, tenant, redis_url):
    # throttleScale 0.004 leaves 20 resource units per 10 s for this 60-user tenant. A budget of
    # 1.5 units per second with a burst of 2 admits at most 17 units in any 10 s.
    set_faults(emulator, throttleScale=0.004, retryAfterFormat="decimal")
    traffic = GraphTraffic(emulator)
    try:
        one = throttled_count(emulator, tenant, redis_url, traffic, processes=1, requests_each=24, rate=1.5, burst=2)
        two = throttled_count(emulator, tenant, redis_url, traffic, processes=2, requests_each=12, rate=1.5, burst=2)
        unpaced = throttled_count(emulator, tenant, redis_url, traffic, processes=2, requests_each=12, rate=1000, burst=1000)
    finally:
        traffic.close()
        clear_throttle_state(str(tenant.tenant_id))

    assert two <= one, f"429s: one worker {one}, two workers {two}, two unpaced workers {unpaced}"
    # Without pacing the same two workers exceed the limit, so the comparison above can fail.
    assert unpaced > two, f"429s: two workers {two}, two unpaced workers {unpaced}"


def test_budget_follows_tenant_size(settings):
    settings.GRAPH_THROTTLE_UNITS_PER_SECOND = None
    settings.GRAPH_THROTTLE_BURST_UNITS = None

    # A full bucket plus ten seconds of refill equals Graph's limit per 10 seconds for the tenant size.
    assert throttle.budget_shape(10) == (315.0, 350.0)
    assert throttle.budget_shape(500) == (450.0, 500.0)
    assert throttle.budget_shape(100_000) == (720.0, 800.0)


def test_budget_settings_replace_tenant_size(settings):
    settings.GRAPH_THROTTLE_UNITS_PER_SECOND = 50.0
    settings.GRAPH_THROTTLE_BURST_UNITS = 60.0

    assert throttle.budget_shape(100_000) == (50.0, 60.0)
