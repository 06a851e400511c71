"""A threaded HTTPS server that runs the emulator in a background thread."""

from __future__ import annotations

import io
import logging
import socket
import ssl
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import EmulatorApp
from .certs import CertificatePaths, ensure_certificates
from .snapshot import validate_snapshot
from .state import TenantState
from .throttling import WRITE_METHODS

logger = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("var/emulator")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


# Seconds an idle keep-alive connection stays open before its thread closes it.
IDLE_CONNECTION_TIMEOUT = 30


class KeepAliveRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler with HTTP/1.1 keep-alive and injected dropped connections.

    Werkzeug's own handler sends "Connection: close" on every response. This one reads
    the whole request body before calling the app and sends every response with a
    Content-Length, so the connection can carry the next request. Requests with a
    chunked body fall back to werkzeug's handler, which closes the connection.
    """

    protocol_version = "HTTP/1.1"
    timeout = IDLE_CONNECTION_TIMEOUT

    def setup(self) -> None:
        super().setup()
        # The status line and headers go out in one write and the body in another. With Nagle's
        # algorithm on, the body waits for the client to acknowledge the headers, which a client that
        # delays its acknowledgements does only after about 40 ms: every response would take that long.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.open_connections_lock:  # type: ignore[attr-defined]
            self.server.open_connections.add(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        with self.server.open_connections_lock:  # type: ignore[attr-defined]
            self.server.open_connections.discard(self.connection)  # type: ignore[attr-defined]
        super().finish()

    def run_wsgi(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            super().run_wsgi()
            return
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""

        app: EmulatorApp = self.server.app  # type: ignore[assignment]
        is_graph = self.path.startswith("/v1.0/")
        # A $batch is sent as POST but carries its own requests, which these faults leave alone.
        is_write = is_graph and self.command in WRITE_METHODS and not self.path.lower().startswith("/v1.0/$batch")
        if is_graph and app.faults.draw_drop(is_write):
            logger.info("Injected a dropped connection for %s %s", self.command, self.path)
            self.close_connection = True
            return

        environ = self.make_environ()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return lambda data: None

        try:
            chunks = app(environ, start_response)
            try:
                content = b"".join(chunks)
            finally:
                if hasattr(chunks, "close"):
                    chunks.close()
            status, headers = started
        except Exception:
            logger.exception("Unhandled error serving %s %s", self.command, self.path)
            self.close_connection = True
            status, headers, content = "500 Internal Server Error", [("Content-Type", "text/plain")], b"Internal Server Error"
        if is_write and app.faults.draw_drop_after_write():
            logger.info("Injected a dropped connection after serving %s %s with %s", self.command, self.path, status)
            self.close_connection = True
            return
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)
        self.wfile.flush()


class EmulatorServer:
    """The emulator serving `snapshots` over HTTPS with its own CA; port 0 picks a free port.

    The control interface under /_emulator/ is enabled only when `control_token` is given.
    `faults` sets the initial fault and throttling settings with the keys that
    POST /_emulator/faults takes, for example {"throttleScale": 0.01, "dropRate": 0.1}; see
    `faults` for the kinds of dropped connection.
    """

    def __init__(
        self,
        snapshots: list[dict[str, Any]],
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: Path = DEFAULT_STATE_DIR,
        control_token: str | None = None,
        faults: dict[str, Any] | None = None,
    ) -> None:
        if not snapshots:
            raise ValueError("EmulatorServer needs at least one tenant snapshot")
        states = []
        for snapshot in snapshots:
            validate_snapshot(snapshot)
            states.append(TenantState(snapshot))
        tenant_ids = [state.tenant_id for state in states]
        if len(set(tenant_ids)) != len(tenant_ids):
            raise ValueError(f"tenant ids must be unique, got {tenant_ids}")
        self.app = EmulatorApp(states, control_token=control_token, faults=faults)
        self.host = host
        self._requested_port = port
        self.state_dir = Path(state_dir)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._certificates: CertificatePaths | None = None

    def start(self) -> EmulatorServer:
        if self._server is not None:
            raise RuntimeError("the emulator server is already running")
        self._certificates = ensure_certificates(self.state_dir)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self._certificates.server_cert, self._certificates.server_key)

        server = make_server(self.host, self._requested_port, self.app, threaded=True, request_handler=KeepAliveRequestHandler)
        # The socket is wrapped here rather than by werkzeug so that the TLS handshake
        # runs in each request thread. Werkzeug's own wrapping does the handshake in the
        # accept loop, where one slow client would stall every other connection.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        server.ssl_context = context
        # Kept-alive connections, which stop() closes as a stopped process would.
        server.open_connections = set()
        server.open_connections_lock = threading.Lock()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="graph-emulator", daemon=True)
        self._thread.start()
        logger.info("Graph emulator listening on %s with tenants %s", self.base_url, ", ".join(self.app.tenants))
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        # Shutting down only ends the accept loop. Threads serving kept-alive connections would keep
        # serving requests on them, unlike a stopped server, so their sockets are shut down too.
        with self._server.open_connections_lock:
            connections = list(self._server.open_connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # The client closed it meanwhile.
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
        logger.info("Graph emulator stopped")

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator server is not running")
        return self._server.server_port

    @property
    def base_url(self) -> str:
        # The server certificate names localhost and 127.0.0.1 only.
        host = "localhost" if self.host in LOOPBACK_HOSTS else self.host
        return f"https://{host}:{self.port}"

    @property
    def ca_path(self) -> Path:
        if self._certificates is None:
            raise RuntimeError("the emulator server has not been started")
        return self._certificates.ca_cert

    def state(self, tenant_id: str) -> TenantState:
        """Return a tenant's live state for in-process inspection."""
        state = self.app.find_tenant(tenant_id)
        if state is None:
            raise KeyError(f"tenant {tenant_id} is not loaded")
        return state
