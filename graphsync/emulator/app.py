"""The emulator's WSGI application: routing, authentication, request ids and fault injection."""

from __future__ import annotations

import hmac
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from . import batch, control, graph_api, identity, reports
from .errors import GraphError
from .faults import FaultInjector
from .responses import graph_error_response
from .state import TenantState
from .throttling import WRITE_METHODS, Throttler, request_cost
from .tokens import IssuedToken, TokenStore

logger = logging.getLogger(__name__)

CONTROL_HEADER = "X-Emulator-Control"
# Write requests kept for GET /_emulator/requests; the oldest are dropped beyond this many.
WRITE_LOG_SIZE = 20000


class WriteLog:
    """Graph write requests (POST, PATCH, PUT, DELETE) in arrival order, for tests that count calls."""

    def __init__(self) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=WRITE_LOG_SIZE)
        self._lock = threading.Lock()

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)


class EmulatorApp:
    """WSGI app that serves the identity, Graph and control endpoints for a set of tenants."""

    def __init__(
        self,
        tenants: Iterable[TenantState],
        control_token: str | None = None,
        faults: dict[str, Any] | None = None,
    ) -> None:
        """Serve `tenants`. `faults` contains initial fault and throttling settings under the control API's keys."""
        self.tenants: dict[str, TenantState] = {state.tenant_id: state for state in tenants}
        self.tokens = TokenStore()
        self.faults = FaultInjector()
        if faults:
            self.faults.update(faults)
        self.throttler = Throttler()
        self.downloads = reports.DownloadStore()
        self.control_token = control_token
        self.write_log = WriteLog()

    def find_tenant(self, key: str) -> TenantState | None:
        return self.tenants.get(key.lower())

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self.handle(request)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        segments = [segment for segment in request.path.split("/") if segment]
        if segments and segments[0].lower() == "v1.0":
            return self._handle_graph(request, segments[1:])
        if segments and segments[0] == "_emulator":
            return self._handle_control(request, segments[1:])
        if len(segments) == 2 and segments[0] == reports.DOWNLOAD_PREFIX and request.method == "GET":
            return reports.serve_download(self.downloads, segments[1])
        if len(segments) == 4 and [part.lower() for part in segments[1:]] == ["v2.0", ".well-known", "openid-configuration"]:
            if request.method == "GET":
                return identity.openid_configuration(self, request, segments[0])
        if len(segments) == 4 and [part.lower() for part in segments[1:]] == ["oauth2", "v2.0", "token"]:
            if request.method == "POST":
                return identity.token(self, request, segments[0])
        return Response("Not Found", status=404, content_type="text/plain")

    def _handle_graph(self, request: Request, segments: list[str]) -> Response:
        if [segment.lower() for segment in segments] == ["$batch"] and request.method == "POST":
            return self._handle_batch(request)
        return self.serve_graph(request, segments)

    def serve_graph(self, request: Request, segments: list[str]) -> Response:
        """Serve one Graph request (segments after /v1.0): faults, authentication, throttling, dispatch.

        Inner requests of a $batch come through here too, so each gets its own faults and throttling.
        """
        request_id = str(uuid.uuid4())
        client_request_id = request.headers.get("client-request-id") or request_id
        throttle_headers: dict[str, str] = {}
        try:
            fault = self.faults.draw()
            latency = self.faults.latency_seconds()
            if latency:
                time.sleep(latency)
            if fault is not None:
                logger.info("Injected %s %s for %s %s", fault.status, fault.code, request.method, request.path)
                raise fault
            state, issued = self._authenticate(request)
            lowered = [segment.lower() for segment in segments]
            cost = request_cost(request.method, lowered, "$select" in request.args)
            throttle_headers = self.throttler.charge(
                issued.client_id,
                state.tenant_id,
                state.user_count(),
                cost,
                request.method in WRITE_METHODS,
                self.faults.settings,
            )
            response = graph_api.dispatch(graph_api.GraphRequest(request, state, self), segments)
            if request.method in WRITE_METHODS:
                self.write_log.add(
                    {"method": request.method, "path": "/v1.0/" + "/".join(segments), "status": response.status_code,
                     "requestId": request_id}
                )
        except GraphError as error:
            if error.status >= 500:
                logger.warning("Graph request %s %s failed with %s %s", request.method, request.path, error.status, error.code)
            elif error.status == 429:
                logger.info("Throttled %s %s with Retry-After %s", request.method, request.path, error.headers.get("Retry-After"))
            response = graph_error_response(error, request_id, client_request_id)
        except Exception:
            logger.exception("Unhandled error in Graph request %s %s (request-id %s)", request.method, request.path, request_id)
            error = GraphError(500, "generalException", "General exception while processing.")
            response = graph_error_response(error, request_id, client_request_id)
        for name, value in throttle_headers.items():
            response.headers.setdefault(name, value)
        response.headers["request-id"] = request_id
        response.headers["client-request-id"] = client_request_id
        response.headers["OData-Version"] = "4.0"
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    def _handle_batch(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        client_request_id = request.headers.get("client-request-id") or request_id
        try:
            self._authenticate(request)
            response = batch.handle_batch(self, request)
        except GraphError as error:
            response = graph_error_response(error, request_id, client_request_id)
        response.headers["request-id"] = request_id
        response.headers["client-request-id"] = client_request_id
        response.headers["OData-Version"] = "4.0"
        return response

    def _authenticate(self, request: Request) -> tuple[TenantState, IssuedToken]:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        issued = self.tokens.lookup(token)
        if issued is None:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
        if self.tokens.is_expired(issued):
            raise GraphError(401, "InvalidAuthenticationToken", "Access token has expired.")
        state = self.tenants.get(issued.tenant_id)
        if state is None:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
        return state, issued

    def _handle_control(self, request: Request, segments: list[str]) -> Response:
        if self.control_token is None:
            return Response("Not Found", status=404, content_type="text/plain")
        request_id = str(uuid.uuid4())
        presented = request.headers.get(CONTROL_HEADER, "")
        try:
            if not presented:
                raise GraphError(401, "Unauthorized", f"The {CONTROL_HEADER} header is missing.")
            if not hmac.compare_digest(presented.encode("utf-8"), self.control_token.encode("utf-8")):
                logger.warning("Rejected control request %s %s with a wrong token", request.method, request.path)
                raise GraphError(403, "Forbidden", f"The {CONTROL_HEADER} header does not match the control token.")
            response = control.dispatch(self, request, segments)
        except GraphError as error:
            response = graph_error_response(error, request_id, request_id)
        except Exception:
            logger.exception("Unhandled error in control request %s %s", request.method, request.path)
            response = graph_error_response(GraphError(500, "generalException", "General exception while processing."), request_id, request_id)
        response.headers["request-id"] = request_id
        return response
