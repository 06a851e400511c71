"""Messages for a Graph that cannot be reached: refused, closed after the request, timed out, TLS failure.

The messages name the host, say whether the change can have been made, and keep the transport's own
error text out of what the portal shows.
"""
import socket
import threading

import certifi
import pytest

from graphsync.client import GraphClient
from graphsync.errors import GraphConnectionError
from graphsync.models import UserLicense
from graphsync.testing import clear_throttle_state, set_faults
from pools.choices import AuditAction, Outcome
from pools.exceptions import GraphRejected
from pools.models import AuditEvent
from pools.services import assign_license, set_allotment

# The same tenant administrator, pool split by UPN domain and pool manager as the assignment tests.
from tests.test_assignment import admin, manager, pool  # noqa: F401

# Text of Python and urllib3 exceptions that must never reach a person.
TRANSPORT_WORDS = ("Errno", "RemoteDisconnected", "NewConnectionError", "MaxRetryError", "HTTPSConnectionPool",
                   "ProtocolError", "SSLError", "ReadTimeout")


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch, emulator_snapshot):
    monkeypatch.setattr(GraphClient, "_backoff", staticmethod(lambda attempt: 0.0))
    clear_throttle_state(emulator_snapshot["tenantId"])
    yield
    clear_throttle_state(emulator_snapshot["tenantId"])


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ClosingServer:
    """A TCP server on 127.0.0.1 that reads each request and closes the connection without a response.

    With ``connections`` set, it stops listening after that many, so later attempts are refused.
    """

    def __init__(self, connections: int | None = None) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.remaining = connections
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.remaining is None or self.remaining > 0:
            try:
                connection, _address = self.listener.accept()
            except OSError:
                return
            with connection:
                self.requests.append(connection.recv(65536))
            if self.remaining is not None:
                self.remaining -= 1
        self.listener.close()

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=5)


def point_graph_at(tenant, port: int, scheme: str = "http") -> None:
    """Send Graph requests to 127.0.0.1:port while sign-in still goes to the emulator."""
    tenant.graph_base_url = f"{scheme}://127.0.0.1:{port}/v1.0"
    tenant.save(update_fields=["graph_base_url"])


def assert_no_transport_text(text: str) -> None:
    for word in TRANSPORT_WORDS:
        assert word not in text


# The client's typed error


def test_refused_connection_never_sent(tenant):
    port = closed_port()
    point_graph_at(tenant, port)

    with pytest.raises(GraphConnectionError) as caught:
        GraphClient(tenant).post("users/someone/assignLicense", {"addLicenses": [], "removeLicenses": []})

    error = caught.value
    assert error.host == f"127.0.0.1:{port}"
    assert error.reason == "the connection was refused"
    assert error.request_sent is False
    assert error.message == f"Microsoft Graph could not be reached at 127.0.0.1:{port}: the connection was refused."
    assert "Connection refused" in error.detail


def test_closed_after_request_may_be_sent(tenant):
    server = ClosingServer()
    point_graph_at(tenant, server.port)

    with pytest.raises(GraphConnectionError) as caught:
        GraphClient(tenant).post("users/someone/assignLicense", {"addLicenses": [], "removeLicenses": []})
    server.close()

    error = caught.value
    assert error.reason == "the connection was closed before a response arrived"
    assert error.request_sent is True
    assert server.requests[0].startswith(b"POST /v1.0/users/someone/assignLicense ")
    assert "RemoteDisconnected" in error.detail
    assert_no_transport_text(str(error))


def test_closed_then_refused_may_be_sent(tenant):
    # The first attempt reached the server, so the refused retries that follow cannot undo it. A read is
    # retried after a lost response; a POST such as assignLicense is not.
    server = ClosingServer(connections=1)
    point_graph_at(tenant, server.port)

    with pytest.raises(GraphConnectionError) as caught:
        GraphClient(tenant).get("users/someone")
    server.close()

    assert len(server.requests) == 1
    assert caught.value.reason == "the connection was refused"
    assert caught.value.request_sent is True


def test_read_timeout_may_be_sent(emulator, tenant, settings):
    settings.GRAPH_TIMEOUT_SECONDS = 0.3
    set_faults(emulator, latencyMs=1000)

    with pytest.raises(GraphConnectionError) as caught:
        GraphClient(tenant).get("subscribedSkus")

    assert caught.value.reason == "no response arrived in time"
    assert caught.value.request_sent is True
    assert caught.value.host == emulator.base_url.split("://", 1)[1]


def test_tls_failure_at_sign_in_never_sent(tenant):
    # Public CAs do not trust the emulator's certificate, so the TLS handshake fails at the token endpoint.
    tenant.ca_bundle = certifi.where()
    tenant.save(update_fields=["ca_bundle"])

    with pytest.raises(GraphConnectionError) as caught:
        GraphClient(tenant).get("subscribedSkus")

    error = caught.value
    assert error.reason == "the secure connection (TLS) failed"
    assert error.request_sent is False
    assert error.message == (
        f"The Microsoft sign-in endpoint {error.host} could not be reached: the secure connection (TLS) failed."
    )
    assert "SSL" in error.detail


# Messages shown to a pool manager


@pytest.fixture
def assignment(synced_tenant, admin, pool):
    """A SKU with spare seats in the pool and a member without licenses who can take it."""
    from graphsync.models import Sku

    sku = Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=sku.consumed_units + 5)
    user = (
        pool.members_queryset().exclude(usage_location="").exclude(pk__in=UserLicense.objects.values("user_id"))
        .order_by("user_principal_name").first()
    )
    return user, sku


def test_assign_with_graph_stopped(emulator, synced_tenant, pool, manager, assignment):
    user, sku = assignment
    host = emulator.base_url.split("://", 1)[1]
    emulator.stop()

    with pytest.raises(GraphRejected) as caught:
        assign_license(acting_user=manager, pool=pool, user=user, sku=sku)

    message = caught.value.message
    assert message == (
        f"Microsoft Graph could not be reached at {host}: the connection was refused. Nothing was changed for "
        f"{user.user_principal_name}. Check that this server can connect to {host}, then try again."
    )
    assert_no_transport_text(message)
    assert not UserLicense.objects.filter(user=user, sku=sku).exists(), "the reservation must be released"
    event = AuditEvent.objects.get(action=AuditAction.LICENSE_ASSIGNED, target_user=user)
    assert event.outcome == Outcome.FAILED
    assert event.message == message


def test_assign_with_connection_dropped(emulator, synced_tenant, pool, manager, assignment):
    user, sku = assignment
    host = emulator.base_url.split("://", 1)[1]
    set_faults(emulator, dropRate=1.0)

    with pytest.raises(GraphRejected) as caught:
        assign_license(acting_user=manager, pool=pool, user=user, sku=sku)

    # Every request is dropped, so reading the user's licenses back fails too and the outcome stays unknown.
    message = caught.value.message
    upn = user.user_principal_name
    assert message == (
        f"The connection to Microsoft Graph at {host} failed after the request was sent: the connection was "
        f"closed before a response arrived. Reading {upn}'s licenses back failed too, so whether {upn} now holds "
        f"{sku.name} is unknown. The seat stays reserved as an unconfirmed assignment, and the next sync settles "
        "it from what Microsoft 365 holds. Check the user after that sync instead of assigning again."
    )
    assert_no_transport_text(message)
    assert_no_transport_text(caught.value.graph_message)
