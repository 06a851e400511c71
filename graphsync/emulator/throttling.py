"""Graph's directory throttling: resource units per app and tenant over sliding windows.

Limits (Microsoft Graph throttling guidance for identity and access resources):
3,500, 5,000 or 8,000 resource units per 10 seconds for tenants with under 50,
50 to 500, and over 500 users, and 3,000 write requests per 2.5 minutes. The
settings' `throttle_scale` multiplies both limits so that tests reach them with
a handful of requests.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import GraphError
from .faults import FaultSettings, format_retry_after

WINDOW_SECONDS = 10.0
WRITE_WINDOW_SECONDS = 150.0
WRITE_LIMIT = 3000
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
# Share of the limit above which responses carry x-ms-throttle-limit-percentage.
REPORT_THRESHOLD = 0.8


def unit_limit(user_count: int) -> int:
    """Return the resource units per 10 seconds for a tenant of `user_count` users."""
    if user_count < 50:
        return 3500
    if user_count <= 500:
        return 5000
    return 8000


def request_cost(method: str, segments: list[str], has_select: bool) -> int:
    """Return the resource units of one Graph request (segments after /v1.0, lowercased).

    GET /users costs 2 units, or 1 with $select, and GET /subscribedSkus costs 3.
    NOTE: Graph publishes costs for a few requests only; every other request costs 1 unit here.
    """
    if method == "GET" and segments == ["users"]:
        return 1 if has_select else 2
    if method == "GET" and segments and segments[0] == "subscribedskus":
        return 3
    return 1


@dataclass
class _Usage:
    units: deque[tuple[float, int]] = field(default_factory=deque)
    unit_total: int = 0
    writes: deque[float] = field(default_factory=deque)


class Throttler:
    """Counts resource units per (client id, tenant id) and rejects requests over the limit with 429."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        # Seconds on a monotonic scale; tests replace it to move the windows.
        self.clock = clock
        self._lock = threading.Lock()
        self._usage: dict[tuple[str, str], _Usage] = {}

    def reset(self) -> None:
        with self._lock:
            self._usage.clear()

    def charge(
        self, client_id: str, tenant_id: str, user_count: int, cost: int, is_write: bool, settings: FaultSettings
    ) -> dict[str, str]:
        """Record a request and return the headers to add, or raise 429 when a limit is reached.

        NOTE: a rejected request costs nothing here. Graph does not document whether it counts.
        """
        headers = {"x-ms-resource-unit": str(cost)}
        if not settings.throttle_enabled:
            return headers
        limit = max(unit_limit(user_count) * settings.throttle_scale, 1.0)
        write_limit = max(WRITE_LIMIT * settings.throttle_scale, 1.0)
        now = self.clock()
        with self._lock:
            usage = self._usage.setdefault((client_id, tenant_id), _Usage())
            while usage.units and usage.units[0][0] <= now - WINDOW_SECONDS:
                usage.unit_total -= usage.units.popleft()[1]
            while usage.writes and usage.writes[0] <= now - WRITE_WINDOW_SECONDS:
                usage.writes.popleft()

            if usage.unit_total + cost > limit:
                wait = self._unit_wait(usage, cost, limit, now)
                raise self._throttled(wait, settings, cost)
            if is_write and len(usage.writes) + 1 > write_limit:
                wait = usage.writes[0] + WRITE_WINDOW_SECONDS - now
                raise self._throttled(wait, settings, cost)

            usage.units.append((now, cost))
            usage.unit_total += cost
            if is_write:
                usage.writes.append(now)
            share = max(usage.unit_total / limit, len(usage.writes) / write_limit if is_write else 0.0)
        if share > REPORT_THRESHOLD:
            headers["x-ms-throttle-limit-percentage"] = f"{share:.1f}"
        return headers

    @staticmethod
    def _unit_wait(usage: _Usage, cost: int, limit: float, now: float) -> float:
        """Return the seconds until enough units leave the window for a request of `cost` units."""
        total = usage.unit_total
        for stamp, units in usage.units:
            total -= units
            if total + cost <= limit:
                return stamp + WINDOW_SECONDS - now
        return WINDOW_SECONDS

    @staticmethod
    def _throttled(wait: float, settings: FaultSettings, cost: int) -> GraphError:
        wait = max(wait, 0.001)
        headers = {
            "Retry-After": format_retry_after(wait, settings.retry_after_format),
            "x-ms-resource-unit": str(cost),
            "x-ms-throttle-limit-percentage": "1.0",
        }
        return GraphError(429, "TooManyRequests", "Please retry again later.", headers)
