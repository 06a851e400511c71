"""Microsoft Graph client: MSAL client-credentials tokens, paging, retries and typed errors.

The same code talks to Microsoft and to the project's Graph emulator; only the tenant's authority host,
Graph base URL and CA bundle differ.
"""
from __future__ import annotations

import email.utils
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msal
import requests
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError, ProtocolError

from .errors import GraphAuthenticationError, GraphConnectionError, GraphError, error_class_for_status
from .models import MICROSOFT_AUTHORITY_HOST, Tenant
from .throttle import get_throttle_budget, resource_units

logger = logging.getLogger(__name__)

GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]
# Attempts per request for 5xx responses and connection failures.
MAX_ATTEMPTS = 5
# 429s are retried more often, because each one makes every worker wait out Retry-After first.
MAX_THROTTLED_RETRIES = 10
MAX_RETRY_AFTER_SECONDS = 120.0
RETRYABLE_STATUSES = {429, 500, 502, 503, 504}
# Methods whose repetition leaves Graph as one request would: reads, and writes that set a state rather
# than add to it (Graph's PATCH replaces the properties sent). A POST is retried after a failure that may
# have come after Graph received it only when its caller says so, because Graph may have applied it.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})

# Plain-words causes of a failed connection, shown to administrators. The transport's own error text
# goes to the log only.
REASON_REFUSED = gettext_lazy("the connection was refused")
REASON_NAME_NOT_RESOLVED = gettext_lazy("the host name could not be resolved")
REASON_CONNECT_TIMEOUT = gettext_lazy("the connection timed out")
REASON_TLS = gettext_lazy("the secure connection (TLS) failed")
REASON_PROXY = gettext_lazy("the proxy server failed")
REASON_READ_TIMEOUT = gettext_lazy("no response arrived in time")
REASON_CLOSED = gettext_lazy("the connection was closed before a response arrived")
REASON_CUT_OFF = gettext_lazy("the response was cut off")
REASON_UNKNOWN = gettext_lazy("the connection failed")

# Each MSAL application keeps its own token cache. One application per tenant connection reuses a
# token until it expires, so the token endpoint is not called for every request.
_msal_apps: dict[tuple, msal.ConfidentialClientApplication] = {}
_msal_apps_lock = threading.Lock()


@dataclass
class GraphResponse:
    status: int
    body: Any
    request_id: str


def parse_retry_after(value: str | None, default: float) -> float:
    """Return the wait in seconds from a Retry-After header: whole or decimal seconds, or an HTTP date."""
    if not value:
        return default
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER_SECONDS)


# Users in each tenant's mirror, which size its throttling budget, counted at most this often.
USER_COUNT_TTL_SECONDS = 600.0
_user_counts: dict[int, tuple[int, float]] = {}


def mirrored_user_count(tenant: Tenant) -> int:
    """Return the number of users in the tenant's mirror (0 before the first sync), recounted every 10 minutes."""
    if tenant.pk is None:
        return 0
    cached = _user_counts.get(tenant.pk)
    now = time.monotonic()
    if cached is not None and now - cached[1] < USER_COUNT_TTL_SECONDS:
        return cached[0]
    from .models import DirectoryUser

    count = DirectoryUser.objects.filter(tenant_id=tenant.pk, is_deleted=False).count()
    _user_counts[tenant.pk] = (count, now)
    return count


def forget_user_count(tenant_pk: int) -> None:
    """Count the tenant's users again at the next client, as after a sync changed them."""
    _user_counts.pop(tenant_pk, None)


# Clients of one thread share a session per tenant connection, so that consecutive requests reuse an open
# connection instead of paying for a new TCP and TLS handshake each time. A session left unused for
# longer than this is replaced: servers close idle connections, and a request sent on a connection
# the server is closing fails after it may have been received, which leaves a write's outcome unknown.
# Graph's idle limit is not documented, so this stays well under the minutes that load balancers allow.
SESSION_IDLE_SECONDS = 30.0

_thread_sessions = threading.local()


@dataclass
class _PooledSession:
    session: requests.Session
    last_used: float


def shared_session(tenant: Tenant) -> requests.Session:
    """Return this thread's session for the tenant connection, opening a new one after an idle spell."""
    pooled = _thread_sessions.__dict__.setdefault("by_key", {})
    key = (tenant.pk, tenant.ca_bundle or settings.GRAPH_CA_BUNDLE)
    now = time.monotonic()
    entry = pooled.get(key)
    if entry is not None and now - entry.last_used > SESSION_IDLE_SECONDS:
        entry.session.close()
        entry = None
    if entry is None:
        entry = pooled[key] = _PooledSession(build_session(tenant), now)
    entry.last_used = now
    return entry.session


# Every session built here, so that a forked process can close the connections it inherited.
_built_sessions: weakref.WeakSet[requests.Session] = weakref.WeakSet()


def _close_inherited_connections() -> None:
    """Close, in a forked process, the connections of every session it inherited.

    The parent process still uses these sockets, and two processes reading one TLS stream corrupt it.
    Closing only drops this process's copies of the sockets; each session opens new connections when
    next used, and the MSAL applications keep their cached tokens.
    """
    for session in list(_built_sessions):
        session.close()


def build_session(tenant: Tenant) -> requests.Session:
    session = requests.Session()
    _built_sessions.add(session)
    ca_bundle = tenant.ca_bundle or settings.GRAPH_CA_BUNDLE
    if ca_bundle:
        session.verify = ca_bundle
        # With trust_env on, REQUESTS_CA_BUNDLE from the environment would override this bundle.
        session.trust_env = False
    return session


def classify_transport_error(exc: requests.RequestException) -> tuple[str, bool]:
    """Return a plain-words reason for a failed request and whether the request may have reached the server.

    Only failures while connecting (refused, name lookup, connect timeout, TLS handshake, proxy) prove
    that the request never went out. A read timeout, a closed or reset connection and a cut-off
    response can come after the server received the request, and so can any failure not recognised here.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return str(REASON_CONNECT_TIMEOUT), False
    if isinstance(exc, requests.exceptions.SSLError):
        return str(REASON_TLS), False
    if isinstance(exc, requests.exceptions.ProxyError):
        return str(REASON_PROXY), False
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return str(REASON_READ_TIMEOUT), True
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return str(REASON_CUT_OFF), True
    if isinstance(exc, requests.exceptions.ConnectionError):
        cause = exc.args[0] if exc.args else None
        if isinstance(cause, MaxRetryError):
            cause = cause.reason
        if isinstance(cause, NameResolutionError):
            return str(REASON_NAME_NOT_RESOLVED), False
        if isinstance(cause, NewConnectionError):
            if isinstance(cause.__cause__, ConnectionRefusedError):
                return str(REASON_REFUSED), False
            return str(REASON_UNKNOWN), False
        if isinstance(cause, ProtocolError):
            return str(REASON_CLOSED), True
    return str(REASON_UNKNOWN), True


def _error_code(response: requests.Response) -> str:
    try:
        return str(response.json().get("error", {}).get("code", ""))
    except (ValueError, AttributeError):
        return ""


class GraphClient:
    """A Graph v1.0 client for one tenant connection."""

    def __init__(self, tenant: Tenant, session: requests.Session | None = None) -> None:
        self.tenant = tenant
        self.session = session or shared_session(tenant)
        self.base_url = tenant.graph_base_url.rstrip("/")
        self.timeout = settings.GRAPH_TIMEOUT_SECONDS
        self.throttle = get_throttle_budget(mirrored_user_count(tenant))
        self.throttle_key = str(tenant.tenant_id).lower()

    # Tokens

    def _msal_app(self) -> msal.ConfidentialClientApplication:
        secret = self.tenant.get_client_secret()
        key = (self.tenant.authority, str(self.tenant.client_id), secret, str(self.session.verify))
        with _msal_apps_lock:
            app = _msal_apps.get(key)
            if app is None:
                is_microsoft = self.tenant.authority_host.rstrip("/") == MICROSOFT_AUTHORITY_HOST
                app = msal.ConfidentialClientApplication(
                    str(self.tenant.client_id),
                    client_credential=secret,
                    authority=self.tenant.authority,
                    http_client=self.session,
                    instance_discovery=is_microsoft,
                )
                _msal_apps[key] = app
        return app

    def acquire_token(self) -> str:
        try:
            result = self._msal_app().acquire_token_for_client(scopes=GRAPH_SCOPE)
        except ValueError as exc:
            # MSAL raises ValueError when OpenID discovery fails, e.g. for an unknown tenant.
            raise GraphAuthenticationError(
                f"Sign-in to tenant {self.tenant.tenant_id} failed at {self.tenant.authority}: {exc}"
            ) from exc
        except requests.RequestException as exc:
            reason, _sent = classify_transport_error(exc)
            host = urlsplit(self.tenant.authority).netloc
            logger.warning(
                "The sign-in endpoint %s of tenant %s cannot be reached: %r", self.tenant.authority,
                self.tenant.tenant_id, exc,
            )
            # A token request changes nothing, so the Graph request that needed the token was never sent.
            raise GraphConnectionError(
                _("The Microsoft sign-in endpoint %(host)s could not be reached: %(reason)s.")
                % {"host": host, "reason": reason},
                host=host, reason=reason, request_sent=False, detail=repr(exc),
            ) from exc
        if "access_token" not in result:
            raise GraphAuthenticationError(
                f"Sign-in to tenant {self.tenant.tenant_id} with client ID {self.tenant.client_id} failed: "
                f"{result.get('error')}: {result.get('error_description', '').splitlines()[0] if result.get('error_description') else ''}",
                code=str(result.get("error", "")),
                request_id=str(result.get("correlation_id", "")),
            )
        return result["access_token"]

    # Requests

    def _url(self, path_or_url: str) -> str:
        if urlsplit(path_or_url).scheme:
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: dict | None = None,
        json: Any = None,
        headers: dict | None = None,
        cost: float | None = None,
        retry_when_sent: bool | None = None,
        timeout: float | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> GraphResponse:
        """Send one request within the tenant's throttling budget, retrying 429, 5xx and connection failures.

        ``cost`` is the request's resource units, estimated from the path when not given. A 429's
        Retry-After pauses every worker that shares the tenant's budget. A connection failure or cut-off
        response that may have come after Graph received the request is retried only with
        ``retry_when_sent``, which defaults to True for ``IDEMPOTENT_METHODS``; otherwise it raises
        GraphConnectionError at once, so the caller can read back what Graph holds. ``timeout`` (seconds,
        default ``GRAPH_TIMEOUT_SECONDS``) and ``max_attempts`` apply to each attempt and to 5xx and
        connection failures. Raises a GraphError subclass when Graph rejects the request or the retries
        are spent.
        """
        if retry_when_sent is None:
            retry_when_sent = method.upper() in IDEMPOTENT_METHODS
        url = self._url(path_or_url)
        units = resource_units(method, url, params) if cost is None else cost
        failures = 0
        throttled = 0
        token_refreshed = False
        # Whether an attempt may have reached Graph, so that a write may have been applied.
        maybe_sent = False
        while True:
            self.throttle.acquire(self.throttle_key, units)
            try:
                token = self.acquire_token()
            except GraphConnectionError as exc:
                exc.request_sent = maybe_sent
                raise
            request_headers = {"Authorization": f"Bearer {token}", **(headers or {})}
            try:
                response = self.session.request(
                    method, url, params=params, json=json, headers=request_headers, timeout=timeout or self.timeout
                )
            except requests.RequestException as exc:
                failures += 1
                reason, sent = classify_transport_error(exc)
                maybe_sent = maybe_sent or sent
                if failures >= max_attempts or (sent and not retry_when_sent):
                    logger.warning(
                        "Graph %s %s for tenant %s failed after %s attempts (request may have been sent: %s): %r",
                        method, url, self.tenant.tenant_id, failures, maybe_sent, exc,
                    )
                    host = urlsplit(url).netloc
                    raise GraphConnectionError(
                        _("Microsoft Graph could not be reached at %(host)s: %(reason)s.")
                        % {"host": host, "reason": reason},
                        host=host, reason=reason, request_sent=maybe_sent, detail=repr(exc),
                    ) from exc
                delay = self._backoff(failures)
                logger.warning(
                    "Graph %s %s for tenant %s failed (%s); retry %s in %.1f s",
                    method, url, self.tenant.tenant_id, exc, failures, delay,
                )
                time.sleep(delay)
                continue

            status = response.status_code
            if status == 401 and not token_refreshed and _error_code(response) == "InvalidAuthenticationToken":
                # Graph rejects a cached token that was revoked or expired early; a new token fixes that once.
                token_refreshed = True
                self._msal_app().remove_tokens_for_client()
                logger.info("Graph rejected the cached token of tenant %s; requesting a new one", self.tenant.tenant_id)
                continue
            if status == 429 and throttled < MAX_THROTTLED_RETRIES:
                throttled += 1
                delay = parse_retry_after(response.headers.get("Retry-After"), self._backoff(throttled))
                logger.warning(
                    "Graph %s %s for tenant %s was throttled (429); every worker pauses %.3f s, retry %s",
                    method, url, self.tenant.tenant_id, delay, throttled,
                )
                self.throttle.pause(self.throttle_key, delay)
                continue
            # NOTE: Graph may have applied a write that got 500, 502 or 504, and such a write is retried
            # like any other request. Only failures without a response are left to the caller.
            if status in RETRYABLE_STATUSES and status != 429 and failures + 1 < max_attempts:
                failures += 1
                delay = parse_retry_after(response.headers.get("Retry-After"), self._backoff(failures))
                logger.warning(
                    "Graph %s %s for tenant %s returned %s; retry %s in %.3f s",
                    method, url, self.tenant.tenant_id, status, failures, delay,
                )
                time.sleep(delay)
                continue
            try:
                return self._parse(method, url, response)
            except GraphConnectionError as exc:
                # A success status with a cut-off JSON body means the connection dropped mid-response.
                failures += 1
                maybe_sent = True
                if failures >= max_attempts or not retry_when_sent:
                    logger.warning(
                        "Graph %s %s for tenant %s returned incomplete bodies %s times: %s",
                        method, url, self.tenant.tenant_id, failures, exc.detail,
                    )
                    raise
                delay = self._backoff(failures)
                logger.warning(
                    "Graph %s %s for tenant %s returned an incomplete body (%s); retry %s in %.1f s",
                    method, url, self.tenant.tenant_id, exc.detail, failures, delay,
                )
                time.sleep(delay)

    @staticmethod
    def _backoff(attempt: int) -> float:
        return min(0.5 * 2 ** (attempt - 1), 8.0) + random.uniform(0, 0.25)

    def _parse(self, method: str, url: str, response: requests.Response) -> GraphResponse:
        request_id = response.headers.get("request-id", "")
        if response.status_code < 400:
            content_type = response.headers.get("Content-Type", "")
            try:
                body = response.json() if "json" in content_type and response.content else response.text
            except ValueError as exc:
                host = urlsplit(url).netloc
                raise GraphConnectionError(
                    _("Microsoft Graph could not be reached at %(host)s: %(reason)s.")
                    % {"host": host, "reason": REASON_CUT_OFF},
                    host=host, reason=str(REASON_CUT_OFF), request_sent=True,
                    detail=f"{method} {url} returned HTTP {response.status_code} with a body that is not valid JSON: {exc}",
                    status=response.status_code, request_id=request_id,
                ) from exc
            return GraphResponse(response.status_code, body, request_id)

        code, message = "", response.text[:500]
        try:
            error = response.json().get("error", {})
            code = error.get("code", "")
            message = error.get("message", message)
            request_id = error.get("innerError", {}).get("request-id", request_id)
        except (ValueError, AttributeError):
            pass
        logger.info(
            "Graph %s %s for tenant %s returned %s %s (request-id %s)",
            method, url, self.tenant.tenant_id, response.status_code, code, request_id,
        )
        error_class = error_class_for_status(response.status_code)
        raise error_class(message, status=response.status_code, code=code, request_id=request_id)

    def get(self, path: str, params: dict | None = None, headers: dict | None = None) -> Any:
        return self.request("GET", path, params=params, headers=headers).body

    def post(self, path: str, body: Any) -> GraphResponse:
        return self.request("POST", path, json=body)

    def batch(self, batch_requests: list, **options) -> dict:
        """Send requests through ``$batch``; see ``graphsync.batch.send_batch``."""
        from .batch import send_batch

        return send_batch(self, batch_requests, **options)

    def iter_pages(self, path: str, params: dict | None = None) -> Iterator[list[dict]]:
        """Yield each page's ``value`` list, following ``@odata.nextLink`` until the last page."""
        url: str | None = path
        page_params = params
        while url:
            body = self.get(url, params=page_params)
            if not isinstance(body, dict) or "value" not in body:
                raise GraphError(f"GET {url} returned no 'value' list; is the Graph base URL right?")
            yield body["value"]
            url = body.get("@odata.nextLink")
            page_params = None  # The next link already carries the query.

    # Operations the product uses

    def assign_license(self, user_id: str, *, add: list[dict], remove: list[str]) -> GraphResponse:
        """Send ``POST users/{id}/assignLicense``, without a retry once Graph may have received it.

        Repeating an applied addLicenses leaves the same licenses, but repeating an applied
        removeLicenses fails with 400 "User does not have a corresponding license", and either repeat can
        undo a change made in between by someone else. A GraphConnectionError with ``request_sent`` set
        therefore means the outcome is unknown: read the user's licenses back with ``read_user_licenses``.
        """
        return self.request(
            "POST", f"users/{user_id}/assignLicense", json={"addLicenses": add, "removeLicenses": remove},
            retry_when_sent=False,
        )

    def read_user_licenses(self, user_id: str, *, timeout: float, max_attempts: int = 2) -> list[dict]:
        """Return the user's ``licenseAssignmentStates`` as Graph holds them now.

        ``timeout`` (seconds) limits each attempt, so a person waiting for an assignment is answered
        soon. Raises GraphNotFoundError when the user no longer exists, and other GraphErrors as
        ``request`` does.
        """
        body = self.request(
            "GET", f"users/{user_id}", params={"$select": "id,assignedLicenses,licenseAssignmentStates"},
            timeout=timeout, max_attempts=max_attempts,
        ).body
        if not isinstance(body, dict):
            raise GraphError(f"GET users/{user_id} returned no user object; is the Graph base URL right?")
        return list(body.get("licenseAssignmentStates") or [])


# Celery's prefork pool and the benchmarks fork worker processes.
os.register_at_fork(after_in_child=_close_inherited_connections)
