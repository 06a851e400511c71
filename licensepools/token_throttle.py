"""API token authentication that throttles a client address after repeated invalid tokens.

After API_TOKEN_FAILURE_LIMIT requests from one address carry an invalid token within
API_TOKEN_FAILURE_WINDOW_MINUTES of the first of them, every further invalid token from that address
gets 429 with Retry-After, in place of 401, until that window ends. A valid token still works during
the lockout, so one client's invalid tokens cannot shut out another client at the same address, such
as scripts behind one NAT gateway. The different status codes tell a guesser nothing useful, because a
token is 40 random hexadecimal digits (160 bits). A valid token neither counts nor resets the count,
because otherwise a client could reset it with its own token between guesses. Requests without a
token, such as the web UI's session requests, are never throttled here.

The counts live in Django's cache, which is Redis when the settings name one, so that every web process
shares them. NOTE: the address is REMOTE_ADDR, as for sign-in throttling. Behind a reverse proxy every
client shares the proxy's address, so one client's invalid tokens then throttle every client's.
"""
from __future__ import annotations

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from django.utils.translation import ngettext
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header

logger = logging.getLogger(__name__)

KEY_PREFIX = "api-token-failures"


class TokenLockout(exceptions.Throttled):
    """A token request from a locked-out address, which DRF returns as 429 with Retry-After."""

    def __init__(self, address: str, wait: int) -> None:
        message = ngettext(
            "Too many requests with an invalid API token came from %(address)s. Use a valid token, or try again "
            "in %(seconds)s second.",
            "Too many requests with an invalid API token came from %(address)s. Use a valid token, or try again "
            "in %(seconds)s seconds.",
            wait,
        ) % {"address": address, "seconds": wait}
        super().__init__(detail=message)
        self.wait = wait


def _keys(address: str) -> tuple[str, str]:
    """Return the cache keys of the address's failure count and of the time its window started."""
    return f"{KEY_PREFIX}:{address}:count", f"{KEY_PREFIX}:{address}:since"


def clear_failures(address: str) -> None:
    """Forget the invalid tokens counted for ``address``, which ends its lockout."""
    cache.delete_many(_keys(address))


class ThrottledTokenAuthentication(TokenAuthentication):
    """DRF token authentication that returns 429 for invalid tokens from an address that has sent too many."""

    def authenticate(self, request):
        limit = settings.API_TOKEN_FAILURE_LIMIT
        if limit <= 0 or not self._sends_token(request):
            return super().authenticate(request)

        address = request.META.get("REMOTE_ADDR", "")
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            _check_lockout(address, limit)
            _count_failure(address, limit)
            raise

    def _sends_token(self, request) -> bool:
        parts = get_authorization_header(request).split()
        return bool(parts) and parts[0].lower() == self.keyword.lower().encode()


def _window_seconds() -> int:
    return max(1, math.ceil(settings.API_TOKEN_FAILURE_WINDOW_MINUTES * 60))


def _check_lockout(address: str, limit: int) -> None:
    count_key, since_key = _keys(address)
    values = cache.get_many([count_key, since_key])
    if values.get(count_key, 0) < limit:
        return
    window = _window_seconds()
    since = values.get(since_key)
    remaining = window - (time.time() - since) if since is not None else window
    raise TokenLockout(address, max(1, math.ceil(remaining)))


def _count_failure(address: str, limit: int) -> None:
    count_key, since_key = _keys(address)
    window = _window_seconds()
    if cache.add(count_key, 1, timeout=window):
        cache.set(since_key, time.time(), timeout=window)
        count = 1
    else:
        try:
            count = cache.incr(count_key)
        except ValueError:
            # The window ended between add() and incr(); this failure starts the next one.
            cache.set(count_key, 1, timeout=window)
            cache.set(since_key, time.time(), timeout=window)
            count = 1

    logger.info("API request from %s with an invalid token (%s of %s allowed in %s s)", address, count, limit, window)
    if count == limit:
        logger.warning(
            "API token requests from %s locked out for %s s after %s invalid tokens", address, window, count
        )
