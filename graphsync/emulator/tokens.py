"""Opaque access tokens issued by the emulator's token endpoint."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

TOKEN_LIFETIME_SECONDS = 3599
# Expired tokens are remembered this long so that Graph can report them as expired.
EXPIRED_TOKEN_RETENTION_SECONDS = 3600


@dataclass(frozen=True)
class IssuedToken:
    """The tenant and client an access token was issued to, and when it expires (epoch seconds)."""

    tenant_id: str
    client_id: str
    expires_at: float


class TokenStore:
    """Thread-safe map of access tokens to the tenant and client they belong to."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, IssuedToken] = {}

    def issue(self, tenant_id: str, client_id: str) -> str:
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._purge()
            self._tokens[token] = IssuedToken(tenant_id, client_id, self._clock() + TOKEN_LIFETIME_SECONDS)
        return token

    def lookup(self, token: str) -> IssuedToken | None:
        """Return the token's record, expired or not, or None for a token this store never issued."""
        with self._lock:
            return self._tokens.get(token)

    def is_expired(self, issued: IssuedToken) -> bool:
        return issued.expires_at <= self._clock()

    def expire_all(self) -> int:
        """Make every token expired at once and return how many there were."""
        with self._lock:
            now = self._clock()
            for token, issued in self._tokens.items():
                self._tokens[token] = IssuedToken(issued.tenant_id, issued.client_id, min(issued.expires_at, now))
            return len(self._tokens)

    def _purge(self) -> None:
        cutoff = self._clock() - EXPIRED_TOKEN_RETENTION_SECONDS
        stale = [token for token, issued in self._tokens.items() if issued.expires_at < cutoff]
        for token in stale:
            del self._tokens[token]
