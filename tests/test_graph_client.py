"""Graph client against the emulator: token reuse, retries, Retry-After forms, typed errors and $batch."""
import email.utils
import time

import pytest

from graphsync import throttle
from graphsync.batch import BatchRequest, split_batches
from graphsync.client import GraphClient, parse_retry_after
from graphsync.emulator import identity
from graphsync.errors import GraphBadRequestError, GraphNotFoundError, GraphThrottledError
from graphsync.testing import GraphTraffic, clear_throttle_state, set_faults


@pytest.fixture(autouse=True)
def clean_throttle_state(emulator_snapshot):
    clear_throttle_state(emulator_snapshot["tenantId"])
    yield
    clear_throttle_state(emulator_snapshot["tenantId"])


@pytest.fixture
def traffic(emulator):
    counter = GraphTraffic(emulator)
    yield counter
    counter.close()


@pytest.fixture
def client(tenant):
    return GraphClient(tenant)


def user_ids(emulator_snapshot) -> list[str]:
    return [user["id"] for user in emulator_snapshot["users"] if not user.get("deletedDateTime")]


# Tokens


def test_token_reused_across_pages(tenant, monkeypatch):
    calls = []
    original = identity.token

    def counting_token(app, request, tenant_key):
        calls.append(tenant_key)
        return original(app, request, tenant_key)

    monkeypatch.setattr(identity, "token", counting_token)
    client = GraphClient(tenant)

    pages = list(client.iter_pages("users", {"$select": "id", "$top": 10}))

    assert len(pages) >= 5
    assert len(calls) == 1


def test_token_cache_shared_by_clients(tenant, monkeypatch):
    calls = []
    original = identity.token
    monkeypatch.setattr(identity, "token", lambda app, request, key: calls.append(key) or original(app, request, key))

    for _ in range(3):
        GraphClient(tenant).get("subscribedSkus")

    assert len(calls) == 1


# Retry-After


def test_retry_after_integer_and_decimal():
    assert parse_retry_after("3", 9.0) == 3.0
    assert parse_retry_after("0.249", 9.0) == pytest.approx(0.249)
    assert parse_retry_after("", 9.0) == 9.0
    assert parse_retry_after("soon", 9.0) == 9.0
    assert parse_retry_after("-4", 9.0) == 0.0


def test_retry_after_http_date():
    in_five = email.utils.formatdate(time.time() + 5, usegmt=True)
    past = email.utils.formatdate(time.time() - 60, usegmt=True)

    assert 3.5 <= parse_retry_after(in_five, 9.0) <= 5.0
    assert parse_retry_after(past, 9.0) == 0.0


@pytest.mark.parametrize("retry_after_format", ["seconds", "decimal", "httpDate"])
def test_throttled_requests_wait_retry_after(emulator, client, traffic, retry_after_format):
    # throttleScale 0.001 leaves 5 resource units per 10 s for this 60-user tenant.
    set_faults(emulator, throttleScale=0.001, retryAfterFormat=retry_after_format)
    started = time.monotonic()

    for _ in range(8):
        client.get("users", params={"$select": "id", "$top": 1})

    elapsed = time.monotonic() - started
    assert traffic.statuses[200] == 8
    assert traffic.statuses[429] >= 1
    # Requests 6 to 8 fit only after the first ones leave the 10-second window.
    assert elapsed >= 9.0
    # Honouring Retry-After means few throttled attempts, not one per backoff step.
    assert traffic.statuses[429] <= 4


def test_throttled_past_retries_raises_typed_error(emulator, client, monkeypatch):
    monkeypatch.setattr("graphsync.client.MAX_THROTTLED_RETRIES", 2)
    set_faults(emulator, throttleRate=1.0, retryAfterSeconds=0.05, retryAfterFormat="decimal")

    with pytest.raises(GraphThrottledError) as caught:
        client.get("subscribedSkus")

    assert caught.value.status == 429
    assert caught.value.code == "TooManyRequests"
    assert caught.value.request_id


@pytest.mark.parametrize(
    "faults",
    [
        {"serverErrorRate": 0.4},
        {"unavailableRate": 0.4},
        {"dropRate": 0.3},
        {"throttleRate": 0.4, "retryAfterSeconds": 0.249, "retryAfterFormat": "decimal"},
    ],
    ids=["500", "503", "dropped-connection", "429-decimal"],
)
def test_transient_faults_are_retried(emulator, client, traffic, emulator_snapshot, faults):
    set_faults(emulator, seed=11, **faults)

    users = [user for page in client.iter_pages("users", {"$select": "id", "$top": 7}) for user in page]

    assert sorted(user["id"] for user in users) == sorted(user_ids(emulator_snapshot))
    if "dropRate" not in faults:
        assert sum(count for status, count in traffic.statuses.items() if status >= 429) >= 1


# Typed errors and request ids


def test_not_found_is_typed_with_request_id(client):
    with pytest.raises(GraphNotFoundError) as caught:
        client.get("users/00000000-0000-0000-0000-000000000001")

    assert caught.value.status == 404
    assert caught.value.code == "Request_ResourceNotFound"
    assert len(caught.value.request_id) == 36


def test_write_keeps_request_id(client, emulator_snapshot):
    unlicensed = [
        u for u in emulator_snapshot["users"]
        if not u.get("deletedDateTime") and u.get("usageLocation") and not u.get("assignedLicenses")
    ]
    free_skus = [
        s for s in emulator_snapshot["subscribedSkus"]
        if s.get("appliesTo") == "User" and s["prepaidUnits"]["enabled"] > s["consumedUnits"]
    ]
    assert unlicensed, "the generated tenant should have an unlicensed user with a usage location"
    assert free_skus, "the generated tenant should have a SKU with free seats"

    response = client.assign_license(unlicensed[0]["id"], add=[{"skuId": free_skus[0]["skuId"], "disabledPlans": []}], remove=[])

    assert response.status == 200
    assert len(response.request_id) == 36


def test_bad_request_is_typed(client, emulator_snapshot):
    user = emulator_snapshot["users"][0]

    with pytest.raises(GraphBadRequestError) as caught:
        client.post(f"users/{user['id']}/assignLicense", {"addLicenses": [{"skuId": "not-a-guid"}], "removeLicenses": []})

    assert caught.value.status == 400
    assert caught.value.request_id


# $batch


def test_split_batches_keeps_chains_together():
    requests_ = [BatchRequest(id=str(i), method="GET", url=f"users/{i}") for i in range(45)]
    requests_[21].depends_on = ["19", "20"]

    batches = split_batches(requests_)

    assert [len(batch) for batch in batches] == [19, 20, 6]
    assert {"19", "20", "21"} <= {request.id for request in batches[1]}


def test_split_batches_rejects_bad_input():
    with pytest.raises(ValueError, match="used twice"):
        split_batches([BatchRequest("a", "GET", "users"), BatchRequest("a", "GET", "groups")])
    with pytest.raises(ValueError, match="not in the list"):
        split_batches([BatchRequest("a", "GET", "users", depends_on=["b"])])
    chain = [BatchRequest(str(i), "GET", "users", depends_on=[str(i - 1)] if i else []) for i in range(21)]
    with pytest.raises(ValueError, match="at most 20"):
        split_batches(chain)


def test_batch_sends_twenty_per_call(client, traffic, emulator_snapshot):
    ids = user_ids(emulator_snapshot)[:45]
    requests_ = [BatchRequest(id=user_id, method="GET", url=f"users/{user_id}?$select=id,displayName") for user_id in ids]
    batch_calls = []
    original = client.request
    client.request = lambda method, path, **kwargs: batch_calls.append(len(kwargs["json"]["requests"])) or original(
        method, path, **kwargs
    )

    results = client.batch(requests_)

    # The three calls travel at once, so they may start in any order.
    assert sorted(batch_calls, reverse=True) == [20, 20, 5]
    assert set(results) == set(ids)
    for user_id, result in results.items():
        assert result.ok, result.error
        assert result.body["id"] == user_id
        assert len(result.request_id) == 36
        assert result.attempts == 1
    assert len({result.request_id for result in results.values()}) == 45


def test_batch_retries_only_throttled_items(emulator, client, traffic, emulator_snapshot):
    ids = user_ids(emulator_snapshot)[:20]
    set_faults(emulator, seed=5, throttleRate=0.3, retryAfterSeconds=0.2, retryAfterFormat="decimal")

    results = client.batch([BatchRequest(id=user_id, method="GET", url=f"users/{user_id}?$select=id") for user_id in ids])

    assert all(result.ok for result in results.values()), [r.error for r in results.values() if not r.ok]
    retried = [result for result in results.values() if result.attempts > 1]
    assert retried, "seed 5 should throttle some requests of the batch"
    inner_requests = sum(count for path, count in traffic.paths.items() if path.startswith("users/"))
    # Each request was served once per attempt it made, so successful ones were not sent again.
    assert inner_requests == sum(result.attempts for result in results.values())
    assert traffic.statuses[429] == inner_requests - len(ids)


def test_batch_server_errors_retried(emulator, client, emulator_snapshot):
    ids = user_ids(emulator_snapshot)[:20]
    set_faults(emulator, seed=3, serverErrorRate=0.3)

    results = client.batch([BatchRequest(id=user_id, method="GET", url=f"users/{user_id}?$select=id") for user_id in ids])

    assert all(result.ok for result in results.values())
    assert any(result.attempts > 1 for result in results.values())


def test_batch_failed_dependency_reports_cause(client, emulator_snapshot):
    existing = user_ids(emulator_snapshot)[0]
    missing = "00000000-0000-0000-0000-0000000000aa"
    requests_ = [
        BatchRequest(id="missing", method="GET", url=f"users/{missing}"),
        BatchRequest(id="after-missing", method="GET", url=f"users/{existing}", depends_on=["missing"]),
        BatchRequest(id="independent", method="GET", url=f"users/{existing}?$select=id"),
    ]

    results = client.batch(requests_)

    assert results["independent"].ok
    assert isinstance(results["missing"].error, GraphNotFoundError)
    dependent = results["after-missing"]
    assert dependent.status == 424
    assert isinstance(dependent.error, GraphNotFoundError)
    assert "missing" in dependent.error.message
    assert dependent.error.code == results["missing"].error.code
    assert dependent.attempts == 1


def test_batch_dependency_retried_with_throttled_cause(emulator, client, emulator_snapshot, monkeypatch):
    existing = user_ids(emulator_snapshot)[:2]
    throttled_once = {"done": False}
    original = emulator.app.serve_graph

    def throttle_first_call(request, segments):
        if not throttled_once["done"] and segments == ["users", existing[0]]:
            throttled_once["done"] = True
            set_faults(emulator, throttleRate=1.0, retryAfterSeconds=0.1, retryAfterFormat="decimal")
            try:
                return original(request, segments)
            finally:
                set_faults(emulator, throttleRate=0.0)
        return original(request, segments)

    monkeypatch.setattr(emulator.app, "serve_graph", throttle_first_call)
    requests_ = [
        BatchRequest(id="first", method="GET", url=f"users/{existing[0]}"),
        BatchRequest(id="second", method="GET", url=f"users/{existing[1]}", depends_on=["first"]),
    ]

    results = client.batch(requests_)

    assert results["first"].ok
    assert results["second"].ok
    assert results["first"].attempts == 2
    assert results["second"].attempts == 2


# Throttling budget of the client


def test_client_429_sets_shared_resume_time(emulator, client, monkeypatch):
    import redis

    original = emulator.app.serve_graph
    calls = []

    def throttle_first_call(request, segments):
        calls.append(segments)
        if len(calls) == 1:
            set_faults(emulator, throttleRate=1.0, retryAfterSeconds=1.5)
            try:
                return original(request, segments)
            finally:
                set_faults(emulator, throttleRate=0.0)
        return original(request, segments)

    monkeypatch.setattr(emulator.app, "serve_graph", throttle_first_call)
    url = throttle.throttle_redis_url()
    assert url, "this test needs CELERY_BROKER_URL or GRAPH_THROTTLE_REDIS_URL pointing at Redis"
    started = time.time()

    client.get("subscribedSkus")

    assert len(calls) == 2
    assert time.time() - started >= 1.4
    resume_ms = redis.Redis.from_url(url).get(throttle.RESUME_KEY.format(tenant_id=client.throttle_key))
    assert resume_ms is not None
    assert int(resume_ms) / 1000 >= started + 1.4


def test_revoked_token_is_replaced_once(synced_tenant, emulator):
    client = GraphClient(synced_tenant)
    client.get("subscribedSkus")
    emulator.app.tokens.expire_all()

    body = client.get("subscribedSkus")

    assert body["value"]


# Connections


def open_connections(session) -> int:
    """Count the connections a session's pools keep open for reuse."""
    pools = session.get_adapter("https://").poolmanager.pools
    return sum(pools[key].pool.qsize() - pools[key].pool.queue.count(None) for key in pools.keys())


def test_clients_of_one_thread_share_connection(tenant):
    first, second = GraphClient(tenant), GraphClient(tenant)

    first.get("subscribedSkus")
    second.get("subscribedSkus")

    assert first.session is second.session
    assert open_connections(first.session) == 1


def test_idle_session_replaced(tenant, monkeypatch):
    from graphsync import client as graph_client

    first = GraphClient(tenant)
    first.get("subscribedSkus")
    monkeypatch.setattr(graph_client, "SESSION_IDLE_SECONDS", 0.0)
    time.sleep(0.01)

    second = GraphClient(tenant)

    assert second.session is not first.session
    assert open_connections(first.session) == 0


def test_other_thread_gets_own_session(tenant):
    import threading

    sessions = []
    thread = threading.Thread(target=lambda: sessions.append(GraphClient(tenant).session))
    thread.start()
    thread.join()

    assert sessions[0] is not GraphClient(tenant).session


def test_forked_process_closes_inherited_connections(tenant):
    import multiprocessing

    client = GraphClient(tenant)
    client.get("subscribedSkus")
    assert open_connections(client.session) == 1
    context = multiprocessing.get_context("fork")
    reader, writer = context.Pipe(duplex=False)

    def child() -> None:
        writer.send(open_connections(client.session))

    process = context.Process(target=child)
    process.start()
    inherited = reader.recv()
    process.join(timeout=30)

    assert inherited == 0
    assert open_connections(client.session) == 1
    assert client.get("subscribedSkus")
