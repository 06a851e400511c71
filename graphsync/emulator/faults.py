"""Injected faults for Graph requests: throttling, server errors and latency, each at a set rate."""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

from .errors import GraphError


@dataclass
class FaultSettings:
    """Fault rates as fractions of Graph requests, from 0 to 1, all zero by default."""

    throttle_rate: float = 0.0
    retry_after_seconds: float = 1.0
    server_error_rate: float = 0.0
    unavailable_rate: float = 0.0
    latency_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        names = {
            "throttle_rate": "throttleRate",
            "retry_after_seconds": "retryAfterSeconds",
            "server_error_rate": "serverErrorRate",
            "unavailable_rate": "unavailableRate",
            "latency_ms": "latencyMs",
        }
        return {names[key]: value for key, value in asdict(self).items()}


RATE_FIELDS = {"throttleRate": "throttle_rate", "serverErrorRate": "server_error_rate", "unavailableRate": "unavailable_rate"}


class FaultInjector:
    """Draws faults for each Graph request from the current settings."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.settings = FaultSettings()

    def update(self, changes: dict[str, Any]) -> FaultSettings:
        """Apply changes given in the control API's camelCase names, raising ValueError on an invalid value."""
        with self._lock:
            settings = FaultSettings(**asdict(self.settings))
            for key, value in changes.items():
                if key in RATE_FIELDS:
                    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                        raise ValueError(f"{key} must be a number from 0 to 1, got {value!r}")
                    setattr(settings, RATE_FIELDS[key], float(value))
                elif key == "retryAfterSeconds":
                    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                        raise ValueError(f"retryAfterSeconds must be a non-negative number, got {value!r}")
                    settings.retry_after_seconds = float(value)
                elif key == "latencyMs":
                    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                        raise ValueError(f"latencyMs must be a non-negative integer, got {value!r}")
                    settings.latency_ms = value
                elif key == "seed":
                    self._random.seed(value)
                else:
                    raise ValueError(f"unknown fault setting {key!r}")
            self.settings = settings
            return settings

    def latency_seconds(self) -> float:
        return self.settings.latency_ms / 1000

    def draw(self) -> GraphError | None:
        """Return the error for this request, or None to serve it normally."""
        with self._lock:
            settings = self.settings
            roll = self._random.random()
        if roll < settings.throttle_rate:
            retry_after = settings.retry_after_seconds
            header = str(int(retry_after)) if retry_after == int(retry_after) else f"{retry_after:g}"
            return GraphError(429, "TooManyRequests", "Please retry again later.", {"Retry-After": header})
        roll -= settings.throttle_rate
        if roll < settings.server_error_rate:
            return GraphError(500, "generalException", "General exception while processing.")
        roll -= settings.server_error_rate
        if roll < settings.unavailable_rate:
            return GraphError(503, "serviceNotAvailable", "Service Unavailable", {"Retry-After": "1"})
        return None
