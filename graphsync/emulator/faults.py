"""Injected faults for Graph requests and the per-run throttling settings.

Faults: throttling, server errors, latency, dropped connections and a failing
page of the users listing, each at a set rate or position. A dropped connection
is closed without a response: `dropRate` drops any Graph request before it is
served, `dropWriteRate` drops a write (POST, PATCH, PUT or DELETE, but not $batch)
before it is applied, and `dropAfterWriteRate` applies a write and then drops its response,
as when a connection fails after Graph made the change.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from .errors import GraphError

RETRY_AFTER_FORMATS = ("seconds", "decimal", "httpDate")
FAIL_PAGE_MODES = ("once", "always")

# Graph's error for a $skiptoken it no longer accepts, which is how a failing page of a listing shows up.
EXPIRED_PAGE_TOKEN = ("Directory_ExpiredPageToken", "The specified page token value has expired and can no longer be included in your request.")


@dataclass
class FaultSettings:
    """Fault rates as fractions of Graph requests (0 to 1, all zero by default) and throttling settings.

    `fail_page` is the 1-based page number of the users listing that fails with 400,
    or None. `throttle_scale` multiplies the resource unit limits, so 0.001 turns the
    3,500 units per 10 seconds of a small tenant into 3.5.
    """

    throttle_rate: float = 0.0
    retry_after_seconds: float = 1.0
    server_error_rate: float = 0.0
    unavailable_rate: float = 0.0
    latency_ms: int = 0
    drop_rate: float = 0.0
    drop_write_rate: float = 0.0
    drop_after_write_rate: float = 0.0
    fail_page: int | None = None
    fail_page_mode: str = "once"
    throttle_enabled: bool = True
    throttle_scale: float = 1.0
    retry_after_format: str = "seconds"

    def to_json(self) -> dict[str, Any]:
        return {JSON_NAMES[key]: value for key, value in asdict(self).items()}


JSON_NAMES = {
    "throttle_rate": "throttleRate",
    "retry_after_seconds": "retryAfterSeconds",
    "server_error_rate": "serverErrorRate",
    "unavailable_rate": "unavailableRate",
    "latency_ms": "latencyMs",
    "drop_rate": "dropRate",
    "drop_write_rate": "dropWriteRate",
    "drop_after_write_rate": "dropAfterWriteRate",
    "fail_page": "failPage",
    "fail_page_mode": "failPageMode",
    "throttle_enabled": "throttleEnabled",
    "throttle_scale": "throttleScale",
    "retry_after_format": "retryAfterFormat",
}
RATE_FIELDS = {
    "throttleRate": "throttle_rate", "serverErrorRate": "server_error_rate", "unavailableRate": "unavailable_rate",
    "dropRate": "drop_rate", "dropWriteRate": "drop_write_rate", "dropAfterWriteRate": "drop_after_write_rate",
}


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def format_retry_after(seconds: float, style: str, now: float | None = None) -> str:
    """Format a Retry-After value as whole seconds (rounded up), a decimal such as 0.249, or an HTTP date."""
    if style == "decimal":
        return f"{max(seconds, 0.001):.3f}"
    if style == "httpDate":
        moment = (time.time() if now is None else now) + seconds
        # An HTTP date has whole seconds, so the date is rounded up to keep the client from retrying early.
        return email.utils.formatdate(int(moment) + (0 if moment == int(moment) else 1), usegmt=True)
    whole = int(seconds)
    return str(whole if whole == seconds else whole + 1)


class FaultInjector:
    """Draws faults for each Graph request from the current settings."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.settings = FaultSettings()
        self._failed_pages = 0

    def update(self, changes: dict[str, Any]) -> FaultSettings:
        """Apply changes given in the control API's camelCase names, raising ValueError on an invalid value."""
        with self._lock:
            settings = FaultSettings(**asdict(self.settings))
            for key, value in changes.items():
                if key in RATE_FIELDS:
                    if not _is_number(value) or not 0 <= value <= 1:
                        raise ValueError(f"{key} must be a number from 0 to 1, got {value!r}")
                    setattr(settings, RATE_FIELDS[key], float(value))
                elif key == "retryAfterSeconds":
                    if not _is_number(value) or value < 0:
                        raise ValueError(f"retryAfterSeconds must be a non-negative number, got {value!r}")
                    settings.retry_after_seconds = float(value)
                elif key == "latencyMs":
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise ValueError(f"latencyMs must be a non-negative integer, got {value!r}")
                    settings.latency_ms = value
                elif key == "failPage":
                    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                        raise ValueError(f"failPage must be a page number from 1 up, or null, got {value!r}")
                    settings.fail_page = value
                    self._failed_pages = 0
                elif key == "failPageMode":
                    if value not in FAIL_PAGE_MODES:
                        raise ValueError(f"failPageMode must be one of {', '.join(FAIL_PAGE_MODES)}, got {value!r}")
                    settings.fail_page_mode = value
                elif key == "throttleEnabled":
                    if not isinstance(value, bool):
                        raise ValueError(f"throttleEnabled must be true or false, got {value!r}")
                    settings.throttle_enabled = value
                elif key == "throttleScale":
                    if not _is_number(value) or value <= 0:
                        raise ValueError(f"throttleScale must be a positive number, got {value!r}")
                    settings.throttle_scale = float(value)
                elif key == "retryAfterFormat":
                    if value not in RETRY_AFTER_FORMATS:
                        raise ValueError(f"retryAfterFormat must be one of {', '.join(RETRY_AFTER_FORMATS)}, got {value!r}")
                    settings.retry_after_format = value
                elif key == "seed":
                    self._random.seed(value)
                else:
                    raise ValueError(f"unknown fault setting {key!r}")
            self.settings = settings
            return settings

    def latency_seconds(self) -> float:
        return self.settings.latency_ms / 1000

    def draw_drop(self, is_write: bool = False) -> bool:
        """Return True when this request's connection is to be closed before it is served."""
        with self._lock:
            if self._roll(self.settings.drop_rate):
                return True
            return is_write and self._roll(self.settings.drop_write_rate)

    def draw_drop_after_write(self) -> bool:
        """Return True when this write, already applied, is to get no response."""
        with self._lock:
            return self._roll(self.settings.drop_after_write_rate)

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._random.random() < rate

    def draw(self) -> GraphError | None:
        """Return the error for this request, or None to serve it normally."""
        with self._lock:
            settings = self.settings
            roll = self._random.random()
        if roll < settings.throttle_rate:
            header = format_retry_after(settings.retry_after_seconds, settings.retry_after_format)
            return GraphError(429, "TooManyRequests", "Please retry again later.", {"Retry-After": header})
        roll -= settings.throttle_rate
        if roll < settings.server_error_rate:
            return GraphError(500, "generalException", "General exception while processing.")
        roll -= settings.server_error_rate
        if roll < settings.unavailable_rate:
            return GraphError(503, "serviceNotAvailable", "Service Unavailable", {"Retry-After": "1"})
        return None

    def check_page(self, page_number: int) -> None:
        """Raise the injected 400 when `page_number` of a users listing is set to fail."""
        with self._lock:
            settings = self.settings
            if settings.fail_page is None or page_number != settings.fail_page:
                return
            if settings.fail_page_mode == "once" and self._failed_pages > 0:
                return
            self._failed_pages += 1
        raise GraphError(400, *EXPIRED_PAGE_TOKEN)
