"""A threaded HTTPS server that runs the emulator in a background thread."""

from __future__ import annotations

import logging
import ssl
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from .app import EmulatorApp
from .certs import CertificatePaths, ensure_certificates
from .snapshot import validate_snapshot
from .state import TenantState

logger = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("var/emulator")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class EmulatorServer:
    """The emulator serving `snapshots` over HTTPS with its own CA; port 0 picks a free port.

    The control interface under /_emulator/ is enabled only when `control_token` is given.
    """

    def __init__(
        self,
        snapshots: list[dict[str, Any]],
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: Path = DEFAULT_STATE_DIR,
        control_token: str | None = None,
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
        self.app = EmulatorApp(states, control_token=control_token)
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

        server = make_server(self.host, self._requested_port, self.app, threaded=True)
        # The socket is wrapped here rather than by werkzeug so that the TLS handshake
        # runs in each request thread. Werkzeug's own wrapping does the handshake in the
        # accept loop, where one slow client would stall every other connection.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        server.ssl_context = context
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
