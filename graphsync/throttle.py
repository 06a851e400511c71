"""A Graph throttling budget per tenant, shared by every worker process through Redis.

Graph counts its directory limits per app and tenant, so every process that calls Graph for a tenant
draws from one budget:

* ``graph:throttle:<tenant_id>`` contains the time (milliseconds since the Unix epoch, Redis server
  clock) before which no request to the tenant may start. A 429's Retry-After moves it forward, so one
  throttled worker pauses them all.
* ``graph:throttle-bucket:<tenant_id>`` is a token bucket of resource units, refilled at a steady rate
  and drained by each request, so adding workers adds waiting instead of 429s.

Both are read and written by Lua scripts, which Redis runs atomically. Without Redis (the embedded
default) each process keeps the same budget in memory.
"""
from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

from django.conf import settings

logger = logging.getLogger(__name__)

RESUME_KEY = "graph:throttle:{tenant_id}"
BUCKET_KEY = "graph:throttle-bucket:{tenant_id}"
# A bucket untouched this long is full again, so Redis may drop it.
BUCKET_IDLE_TTL_MS = 600_000
# After Redis fails, log again at most this often.
REDIS_ERROR_LOG_INTERVAL_SECONDS = 60.0

# KEYS: resume key, bucket key. ARGV: units per second, burst units, cost, bucket TTL in ms.
# Returns 0 when the cost was taken from the bucket, else the milliseconds to wait before asking again.
ACQUIRE_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local resume = tonumber(redis.call('GET', KEYS[1]) or '0')
if resume > now then
  return resume - now
end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[2], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now
if now > updated then
  tokens = math.min(burst, tokens + (now - updated) * rate / 1000)
  updated = now
end
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
else
  wait = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[2], 'tokens', tostring(tokens), 'ts', tostring(updated))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]))
return wait
"""

# KEYS: resume key, bucket key. ARGV: pause in ms, bucket TTL in ms. Moves the resume time forward
# (never back) and empties the bucket so that the workers do not all send a burst the moment it passes.
# Returns the resume time.
PAUSE_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local resume = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if resume > current then
  redis.call('SET', KEYS[1], tostring(resume), 'PX', tonumber(ARGV[1]) + 1000)
else
  resume = current
end
redis.call('HSET', KEYS[2], 'tokens', '0', 'ts', tostring(resume))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]))
return resume
"""


class ThrottleBudget:
    """Token bucket of Graph resource units per tenant, plus a shared pause after a 429."""

    def __init__(self, units_per_second: float, burst_units: float) -> None:
        if units_per_second <= 0 or burst_units <= 0:
            raise ValueError(
                f"GRAPH_THROTTLE_UNITS_PER_SECOND and GRAPH_THROTTLE_BURST_UNITS must be positive, "
                f"got {units_per_second} and {burst_units}"
            )
        self.units_per_second = units_per_second
        self.burst_units = burst_units

    def acquire(self, tenant_id: str, cost: float = 1.0) -> float:
        """Block until the tenant's budget allows a request of ``cost`` units; return the seconds waited."""
        cost = min(max(cost, 0.0), self.burst_units)
        waited = 0.0
        while True:
            wait = self._try_acquire(tenant_id, cost)
            if wait <= 0:
                return waited
            time.sleep(wait)
            waited += wait

    def pause(self, tenant_id: str, seconds: float) -> None:
        """Hold every request to the tenant, in every process sharing this budget, for ``seconds``."""
        raise NotImplementedError

    def _try_acquire(self, tenant_id: str, cost: float) -> float:
        """Take ``cost`` units and return 0, or return the seconds to wait before trying again."""
        raise NotImplementedError


class LocalThrottleBudget(ThrottleBudget):
    """The budget kept in this process's memory, for installations without Redis."""

    def __init__(self, units_per_second: float, burst_units: float) -> None:
        super().__init__(units_per_second, burst_units)
        self._lock = threading.Lock()
        self._resume_at: dict[str, float] = {}
        self._buckets: dict[str, tuple[float, float]] = {}

    def pause(self, tenant_id: str, seconds: float) -> None:
        with self._lock:
            resume = max(self._resume_at.get(tenant_id, 0.0), time.monotonic() + seconds)
            self._resume_at[tenant_id] = resume
            self._buckets[tenant_id] = (0.0, resume)

    def _try_acquire(self, tenant_id: str, cost: float) -> float:
        with self._lock:
            now = time.monotonic()
            resume = self._resume_at.get(tenant_id, 0.0)
            if resume > now:
                return resume - now
            tokens, updated = self._buckets.get(tenant_id, (self.burst_units, now))
            if now > updated:
                tokens = min(self.burst_units, tokens + (now - updated) * self.units_per_second)
                updated = now
            if tokens >= cost:
                self._buckets[tenant_id] = (tokens - cost, updated)
                return 0.0
            self._buckets[tenant_id] = (tokens, updated)
            return (cost - tokens) / self.units_per_second


class RedisThrottleBudget(ThrottleBudget):
    """The budget kept in Redis and shared by every process that uses the same Redis database.

    If Redis cannot be reached, requests go ahead unpaced rather than stopping the sync; Graph's own
    429s and their Retry-After still slow the process down.
    """

    def __init__(self, url: str, units_per_second: float, burst_units: float) -> None:
        import redis

        super().__init__(units_per_second, burst_units)
        self.url = url
        self._redis_errors = (redis.RedisError,)
        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._acquire_script = self._client.register_script(ACQUIRE_SCRIPT)
        self._pause_script = self._client.register_script(PAUSE_SCRIPT)
        self._last_error_logged = 0.0

    def pause(self, tenant_id: str, seconds: float) -> None:
        keys = [RESUME_KEY.format(tenant_id=tenant_id), BUCKET_KEY.format(tenant_id=tenant_id)]
        try:
            self._pause_script(keys=keys, args=[max(int(seconds * 1000), 1), BUCKET_IDLE_TTL_MS])
        except self._redis_errors as exc:
            self._log_redis_error(tenant_id, exc)
            time.sleep(seconds)

    def _try_acquire(self, tenant_id: str, cost: float) -> float:
        keys = [RESUME_KEY.format(tenant_id=tenant_id), BUCKET_KEY.format(tenant_id=tenant_id)]
        try:
            wait_ms = self._acquire_script(
                keys=keys, args=[self.units_per_second, self.burst_units, cost, BUCKET_IDLE_TTL_MS]
            )
        except self._redis_errors as exc:
            self._log_redis_error(tenant_id, exc)
            return 0.0
        return int(wait_ms) / 1000

    def _log_redis_error(self, tenant_id: str, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_error_logged >= REDIS_ERROR_LOG_INTERVAL_SECONDS:
            self._last_error_logged = now
            logger.warning(
                "Graph throttling budget for tenant %s is unavailable at Redis %s (%s); requests are not paced",
                tenant_id, _redacted(self.url), exc,
            )


def _redacted(url: str) -> str:
    """Return ``url`` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()


def throttle_redis_url() -> str:
    """Return the Redis URL of the shared budget, or an empty string to keep the budget in memory."""
    url = getattr(settings, "GRAPH_THROTTLE_REDIS_URL", "") or ""
    if url:
        return url
    broker = getattr(settings, "CELERY_BROKER_URL", "") or ""
    return broker if urlsplit(broker).scheme in {"redis", "rediss"} else ""


_budgets: dict[tuple, ThrottleBudget] = {}
_budgets_lock = threading.Lock()


def directory_unit_limit(user_count: int) -> int:
    """Return Graph's identity and access limit in resource units per 10 seconds, per app and tenant.

    Microsoft documents 3,500 units for tenants under 50 users, 5,000 up to 500 users and 8,000 above.
    """
    if user_count < 50:
        return 3500
    if user_count <= 500:
        return 5000
    return 8000


def budget_shape(user_count: int) -> tuple[float, float]:
    """Return the units per second and burst units that keep any 10 seconds within the tenant's limit.

    A full bucket plus 10 seconds of refill is exactly the limit: a tenth of it as the burst, the rest
    spread over the window. ``GRAPH_THROTTLE_UNITS_PER_SECOND`` and ``GRAPH_THROTTLE_BURST_UNITS``, when
    set, replace both.
    """
    limit = directory_unit_limit(user_count)
    rate = getattr(settings, "GRAPH_THROTTLE_UNITS_PER_SECOND", None) or limit * 0.09
    burst = getattr(settings, "GRAPH_THROTTLE_BURST_UNITS", None) or limit * 0.1
    return float(rate), float(burst)


def get_throttle_budget(user_count: int = 0) -> ThrottleBudget:
    """Return this process's budget for a tenant of ``user_count`` users, creating it on first use."""
    url = throttle_redis_url()
    rate, burst = budget_shape(user_count)
    key = (url, rate, burst)
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None:
            budget = RedisThrottleBudget(url, rate, burst) if url else LocalThrottleBudget(rate, burst)
            _budgets[key] = budget
    return budget


def resource_units(method: str, url: str, params: dict | None) -> float:
    """Estimate the resource units Graph charges for a request.

    Graph documents ``GET users`` as 2 units (1 with ``$select``) and ``subscribedSkus`` as 3; other
    requests are counted as 1 unit here.
    """
    path = urlsplit(url).path.rstrip("/").lower()
    query = urlsplit(url).query.lower()
    if method == "GET" and path.endswith("/subscribedskus"):
        return 3.0
    if method == "GET" and path.endswith("/users"):
        selected = "$select=" in query or "%24select=" in query or bool(params and "$select" in params)
        return 1.0 if selected else 2.0
    return 1.0
