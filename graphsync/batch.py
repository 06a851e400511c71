"""JSON batching through ``POST /$batch``: at most 20 requests per batch, each with its own status.

Graph returns one response per request of a batch, possibly out of order. A request can be
throttled (429) or fail (5xx) while the others succeed, so only those are sent again. A request whose
``dependsOn`` request failed gets 424 and is treated as failing with its dependency: it is sent again
when the dependency is, and otherwise reports the dependency's error.
"""
from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import GraphError, error_class_for_status

if TYPE_CHECKING:
    from .client import GraphClient

logger = logging.getLogger(__name__)

MAX_BATCH_SIZE = 20
# $batch calls one ``send_batch`` keeps in flight at once. A $batch call returns only when all of its
# requests are done, so while one call waits for its slowest request, others are under way.
CONCURRENT_BATCHES = 4
MAX_BATCH_ATTEMPTS = 5
RETRYABLE_ITEM_STATUSES = {429, 500, 502, 503, 504}
FAILED_DEPENDENCY = 424


@dataclass
class BatchRequest:
    """One request inside a batch; ``url`` is relative to the Graph version, e.g. ``users/{id}``."""

    id: str
    method: str
    url: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)


@dataclass
class BatchResult:
    """The final response to one batched request, with Graph's request-id for it."""

    id: str
    status: int
    body: Any
    headers: dict[str, str]
    request_id: str
    client_request_id: str
    attempts: int
    error: GraphError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def split_batches(requests: list[BatchRequest]) -> list[list[BatchRequest]]:
    """Split ``requests`` into batches of at most 20, keeping each ``dependsOn`` chain in one batch.

    Raises ValueError for duplicate ids, a ``dependsOn`` id that is not in the list, or a chain of
    more than 20 requests, which no single batch can carry.
    """
    by_id: dict[str, BatchRequest] = {}
    for request in requests:
        if request.id in by_id:
            raise ValueError(f"Batch request id {request.id!r} is used twice; ids must be unique.")
        by_id[request.id] = request
    parent = {request_id: request_id for request_id in by_id}

    def root(request_id: str) -> str:
        while parent[request_id] != request_id:
            parent[request_id] = parent[parent[request_id]]
            request_id = parent[request_id]
        return request_id

    for request in requests:
        for dependency in request.depends_on:
            if dependency not in by_id:
                raise ValueError(f"Batch request {request.id!r} depends on {dependency!r}, which is not in the list.")
            parent[root(request.id)] = root(dependency)

    chains: dict[str, list[BatchRequest]] = {}
    for request in requests:
        chains.setdefault(root(request.id), []).append(request)

    batches: list[list[BatchRequest]] = []
    current: list[BatchRequest] = []
    for chain in chains.values():
        if len(chain) > MAX_BATCH_SIZE:
            raise ValueError(
                f"{len(chain)} batch requests depend on each other through dependsOn; one batch holds at most "
                f"{MAX_BATCH_SIZE}."
            )
        if len(current) + len(chain) > MAX_BATCH_SIZE:
            batches.append(current)
            current = []
        current.extend(chain)
    if current:
        batches.append(current)
    return batches


def send_batch(
    client: GraphClient, requests: list[BatchRequest], *, max_attempts: int = MAX_BATCH_ATTEMPTS
) -> dict[str, BatchResult]:
    """Send ``requests`` in batches of at most 20 and return each one's final result by id.

    Throttled and 5xx requests are sent again, up to ``max_attempts`` times each. A 429 pauses the
    tenant's shared throttling budget for the longest Retry-After in the batch. Per-request failures
    come back as ``BatchResult.error``; a failure of the whole ``$batch`` call raises GraphError.
    """
    batches = split_batches(requests)
    results: dict[str, BatchResult] = {}
    if len(batches) <= 1 or CONCURRENT_BATCHES <= 1:
        for batch in batches:
            results.update(_send_one_batch(client, batch, max_attempts))
        return results
    # The batches are independent, so a few are sent at once. Each still draws on the tenant's shared
    # throttling budget, which keeps their sum within what Graph allows.
    with ThreadPoolExecutor(max_workers=CONCURRENT_BATCHES, thread_name_prefix="graph-batch") as pool:
        for batch_results in pool.map(lambda batch: _send_one_batch(client, batch, max_attempts), batches):
            results.update(batch_results)
    return results


def _send_one_batch(client: GraphClient, batch: list[BatchRequest], max_attempts: int) -> dict[str, BatchResult]:
    client_request_ids = {request.id: str(uuid.uuid4()) for request in batch}
    results: dict[str, BatchResult] = {}
    pending = list(batch)
    for attempt in range(1, max_attempts + 1):
        response = client.request(
            "POST", "$batch", json={"requests": [_request_json(r, pending, client_request_ids) for r in pending]},
            cost=len(pending),
            # A batch of reads can be sent again whatever happened to the last attempt.
            retry_when_sent=all(request.method.upper() == "GET" for request in pending),
        )
        answers = _answers_by_id(response.body, pending)
        attempt_results = {
            request.id: _result(request.id, answers[request.id], response.request_id, client_request_ids[request.id], attempt)
            for request in pending
        }
        retry_ids = {rid for rid, result in attempt_results.items() if result.status in RETRYABLE_ITEM_STATUSES}
        _resolve_failed_dependencies(pending, attempt_results, results, retry_ids)
        for request_id, result in attempt_results.items():
            if request_id not in retry_ids:
                results[request_id] = result
        if not retry_ids:
            return results
        if attempt == max_attempts:
            break

        retried = [attempt_results[rid] for rid in retry_ids]
        delay = _retry_delay(client, retried, attempt)
        logger.warning(
            "Graph $batch for tenant %s: %s of %s requests throttled or failed (%s); retry %s in %.3f s",
            client.tenant.tenant_id, len(retry_ids), len(pending),
            ", ".join(sorted({str(result.status) for result in retried})), attempt, delay,
        )
        if delay:
            time.sleep(delay)
        pending = [request for request in pending if request.id in retry_ids]

    for request_id in retry_ids:
        result = attempt_results[request_id]
        if result.error is None:
            result.error = error_class_for_status(result.status)(
                f"Batch request {request_id} still returned HTTP {result.status} after {max_attempts} attempts.",
                status=result.status, request_id=result.request_id,
            )
        results[request_id] = result
    return results


def _request_json(request: BatchRequest, pending: list[BatchRequest], client_request_ids: dict[str, str]) -> dict:
    # A dependency that already succeeded is not sent again, so it is dropped from dependsOn.
    pending_ids = {item.id for item in pending}
    item: dict[str, Any] = {
        "id": request.id,
        "method": request.method,
        "url": "/" + request.url.lstrip("/"),
        "headers": {"client-request-id": client_request_ids[request.id], **request.headers},
    }
    if request.body is not None:
        item["body"] = request.body
        item["headers"].setdefault("Content-Type", "application/json")
    depends_on = [dependency for dependency in request.depends_on if dependency in pending_ids]
    if depends_on:
        item["dependsOn"] = depends_on
    return item


def _answers_by_id(body: Any, pending: list[BatchRequest]) -> dict[str, dict]:
    responses = body.get("responses") if isinstance(body, dict) else None
    if not isinstance(responses, list):
        raise GraphError("POST $batch returned no 'responses' list.")
    answers = {str(answer.get("id")): answer for answer in responses if isinstance(answer, dict)}
    missing = [request.id for request in pending if request.id not in answers]
    if missing:
        raise GraphError(f"POST $batch returned no response for request(s) {', '.join(missing)}.")
    return answers


def _result(request_id: str, answer: dict, batch_request_id: str, client_request_id: str, attempt: int) -> BatchResult:
    status = int(answer.get("status") or 0)
    headers = {str(key): str(value) for key, value in (answer.get("headers") or {}).items()}
    body = answer.get("body")
    error_body = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
    inner = error_body.get("innerError") or {}
    # Graph puts the request-id in the inner response's headers or error body. When it gives neither,
    # the batch's own request-id is the one to quote to Microsoft support.
    lowered = {key.lower(): value for key, value in headers.items()}
    request_id_value = lowered.get("request-id") or inner.get("request-id") or batch_request_id
    result = BatchResult(
        id=request_id, status=status, body=body, headers=headers, request_id=str(request_id_value),
        client_request_id=client_request_id, attempts=attempt,
    )
    if status >= 400:
        result.error = error_class_for_status(status)(
            str(error_body.get("message") or f"Batch request {request_id} returned HTTP {status}."),
            status=status, code=str(error_body.get("code") or ""), request_id=result.request_id,
        )
    return result


def _resolve_failed_dependencies(
    pending: list[BatchRequest],
    attempt_results: dict[str, BatchResult],
    final_results: dict[str, BatchResult],
    retry_ids: set[str],
) -> None:
    """Retry a 424 request with its dependency, or give it the dependency's error."""
    dependencies = {request.id: request.depends_on for request in pending}
    changed = True
    while changed:
        changed = False
        for request_id, result in attempt_results.items():
            if result.status != FAILED_DEPENDENCY or request_id in retry_ids:
                continue
            if any(dependency in retry_ids for dependency in dependencies[request_id]):
                retry_ids.add(request_id)
                changed = True
    for request_id, result in attempt_results.items():
        if result.status != FAILED_DEPENDENCY or request_id in retry_ids:
            continue
        failed = _failed_dependency(request_id, dependencies, attempt_results, final_results)
        if failed is not None and failed.error is not None:
            cause = failed.error
            result.error = type(cause)(
                f"Batch request {request_id} was not run because request {failed.id} it depends on failed: "
                f"{cause.message}",
                status=FAILED_DEPENDENCY, code=cause.code, request_id=cause.request_id,
            )


def _failed_dependency(
    request_id: str,
    dependencies: dict[str, list[str]],
    attempt_results: dict[str, BatchResult],
    final_results: dict[str, BatchResult],
) -> BatchResult | None:
    """Return the first failed request, other than a 424, up the dependsOn chain of ``request_id``."""
    seen: set[str] = set()
    queue = list(dependencies.get(request_id, []))
    while queue:
        dependency = queue.pop(0)
        if dependency in seen:
            continue
        seen.add(dependency)
        result = attempt_results.get(dependency) or final_results.get(dependency)
        if result is None:
            continue
        if result.status == FAILED_DEPENDENCY:
            queue.extend(dependencies.get(dependency, []))
        elif result.error is not None:
            return result
    return None


def _retry_delay(client: GraphClient, retried: Iterable[BatchResult], attempt: int) -> float:
    """Pause the shared budget for a throttled batch, or return a local backoff for 5xx responses."""
    from .client import parse_retry_after

    retried = list(retried)
    backoff = min(0.5 * 2 ** (attempt - 1), 8.0) + random.uniform(0, 0.25)
    waits = []
    for result in retried:
        retry_after = {key.lower(): value for key, value in result.headers.items()}.get("retry-after")
        waits.append(parse_retry_after(retry_after, backoff))
    delay = max(waits, default=backoff)
    if any(result.status == 429 for result in retried):
        # The next client.request waits until the shared resume time has passed.
        client.throttle.pause(client.throttle_key, delay)
        return 0.0
    return delay
