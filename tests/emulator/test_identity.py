"""Discovery and token endpoints, through MSAL and through plain requests."""

from __future__ import annotations

import msal
import requests

from graphsync.emulator.server import EmulatorServer

from .conftest import CLIENT_ID, CLIENT_SECRET, GRAPH_SCOPE, TENANT_ID, GraphClient

UNKNOWN_TENANT = "deadbeef-0000-4000-8000-000000000000"


def _msal_app(server: EmulatorServer, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret,
        authority=f"{server.base_url}/{TENANT_ID}",
        instance_discovery=False,
        verify=str(server.ca_path),
    )


def _post_token(server: EmulatorServer, **overrides: str) -> requests.Response:
    form = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "scope": GRAPH_SCOPE, "grant_type": "client_credentials"}
    form.update(overrides)
    return requests.post(f"{server.base_url}/{TENANT_ID}/oauth2/v2.0/token", data=form, verify=server.ca_path, timeout=10)


def test_openid_configuration_points_at_emulator(emulator: EmulatorServer) -> None:
    response = requests.get(
        f"{emulator.base_url}/{TENANT_ID}/v2.0/.well-known/openid-configuration", verify=emulator.ca_path, timeout=10
    )
    assert response.status_code == 200
    body = response.json()
    assert body["issuer"] == f"{emulator.base_url}/{TENANT_ID}/v2.0"
    assert body["token_endpoint"] == f"{emulator.base_url}/{TENANT_ID}/oauth2/v2.0/token"
    assert body["authorization_endpoint"] == f"{emulator.base_url}/{TENANT_ID}/oauth2/v2.0/authorize"
    for key in ("device_authorization_endpoint", "jwks_uri", "end_session_endpoint"):
        assert body[key].startswith(f"{emulator.base_url}/{TENANT_ID}/")


def test_openid_configuration_unknown_tenant(emulator: EmulatorServer) -> None:
    response = requests.get(
        f"{emulator.base_url}/{UNKNOWN_TENANT}/v2.0/.well-known/openid-configuration", verify=emulator.ca_path, timeout=10
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error_codes"] == [90002]
    assert body["error_description"].startswith(f"AADSTS90002: Tenant '{UNKNOWN_TENANT}' not found.")


def test_msal_token_success(emulator: EmulatorServer) -> None:
    result = _msal_app(emulator).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == 3599
    assert "refresh_token" not in result
    response = GraphClient(emulator, result["access_token"]).get("/users")
    assert response.status_code == 200


def test_token_response_headers_and_body(emulator: EmulatorServer) -> None:
    response = _post_token(emulator, client_info="1")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store, no-cache"
    body = response.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert body["ext_expires_in"] == 3599


def test_msal_wrong_secret(emulator: EmulatorServer) -> None:
    result = _msal_app(emulator, secret="wrong").acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")


def test_token_wrong_secret_status(emulator: EmulatorServer) -> None:
    response = _post_token(emulator, client_secret="wrong")
    assert response.status_code == 401
    body = response.json()
    for key in ("error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id"):
        assert key in body
    assert body["error"] == "invalid_client"


def test_msal_unknown_client(emulator: EmulatorServer) -> None:
    unknown = "12345678-1234-4234-8234-123456789012"
    result = _msal_app(emulator, client_id=unknown).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]
    assert result["error_description"].startswith(f"AADSTS700016: Application with identifier '{unknown}' was not found")


def test_token_unknown_client_status(emulator: EmulatorServer) -> None:
    response = _post_token(emulator, client_id="12345678-1234-4234-8234-123456789012")
    assert response.status_code == 400


def test_msal_invalid_scope(emulator: EmulatorServer) -> None:
    result = _msal_app(emulator).acquire_token_for_client(scopes=["https://graph.microsoft.com/User.Read"])
    assert result["error"] == "invalid_scope"
    assert result["error_codes"] == [70011]


def test_token_invalid_scope_status(emulator: EmulatorServer) -> None:
    response = _post_token(emulator, scope="https://graph.microsoft.com/User.Read")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_token_echoes_correlation_id(emulator: EmulatorServer) -> None:
    correlation = "0f0f0f0f-1111-4222-8333-444444444444"
    response = requests.post(
        f"{emulator.base_url}/{TENANT_ID}/oauth2/v2.0/token",
        data={"client_id": CLIENT_ID, "client_secret": "wrong", "scope": GRAPH_SCOPE, "grant_type": "client_credentials"},
        headers={"client-request-id": correlation},
        verify=emulator.ca_path,
        timeout=10,
    )
    assert response.json()["correlation_id"] == correlation
