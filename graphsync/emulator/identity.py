"""The Entra ID (Azure AD) endpoints that MSAL uses for the client credentials flow."""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import uuid
from typing import TYPE_CHECKING

from werkzeug.wrappers import Request, Response

from .responses import json_response
from .tokens import TOKEN_LIFETIME_SECONDS

if TYPE_CHECKING:
    from .app import EmulatorApp

logger = logging.getLogger(__name__)

GRAPH_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"
TOKEN_CONTENT_TYPE = "application/json; charset=utf-8"


def openid_configuration(app: EmulatorApp, request: Request, tenant: str) -> Response:
    """Serve {tenant}/v2.0/.well-known/openid-configuration with endpoints on this server."""
    state = app.find_tenant(tenant)
    if state is None:
        return _token_error(request, 400, "invalid_tenant", 90002, _tenant_not_found(tenant))
    base = request.host_url.rstrip("/")
    tenant_id = state.tenant_id
    body = {
        "token_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{base}/{tenant_id}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/{tenant_id}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base}/oidc/userinfo",
        "authorization_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/{tenant_id}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "tid", "ver"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
    }
    return json_response(body, content_type=TOKEN_CONTENT_TYPE)


def token(app: EmulatorApp, request: Request, tenant: str) -> Response:
    """Serve POST {tenant}/oauth2/v2.0/token for grant_type=client_credentials with a client secret."""
    state = app.find_tenant(tenant)
    if state is None:
        return _token_error(request, 400, "invalid_request", 90002, _tenant_not_found(tenant))
    form = request.form
    grant_type = form.get("grant_type", "")
    if grant_type != "client_credentials":
        return _token_error(
            request, 400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
        )
    client_id = form.get("client_id", "").strip()
    if not client_id:
        return _token_error(
            request, 400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."
        )
    expected_secret = state.clients.get(client_id.lower())
    if expected_secret is None:
        logger.info("Token request for unknown client %s in tenant %s", client_id, state.tenant_id)
        return _token_error(
            request,
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{state.display_name}'. "
            "This can happen if the application has not been installed by the administrator of the tenant or "
            "consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
        )
    secret = form.get("client_secret")
    if not secret:
        return _token_error(
            request,
            401,
            "invalid_client",
            7000216,
            "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
        )
    if not hmac.compare_digest(secret.encode("utf-8"), expected_secret.encode("utf-8")):
        logger.info("Token request with a wrong secret for client %s in tenant %s", client_id, state.tenant_id)
        return _token_error(
            request,
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
            f"not the client secret ID, for a secret added to app '{client_id}'.",
        )
    scope = form.get("scope", "")
    if scope.split() != [GRAPH_DEFAULT_SCOPE]:
        return _token_error(
            request,
            400,
            "invalid_scope",
            70011,
            f"The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid.",
        )
    access_token = app.tokens.issue(state.tenant_id, client_id.lower())
    body = {
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECONDS,
        "ext_expires_in": TOKEN_LIFETIME_SECONDS,
        "access_token": access_token,
    }
    headers = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
    return json_response(body, headers=headers, content_type=TOKEN_CONTENT_TYPE)


def _tenant_not_found(tenant: str) -> str:
    return (
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the "
        "correct cloud. Check with your subscription administrator, this may happen if there are no active "
        "subscriptions for the tenant."
    )


def _token_error(request: Request, status: int, error: str, code: int, message: str) -> Response:
    """Return an Entra ID error body; error_description starts with AADSTS{code} and ends with the ids."""
    now = dt.datetime.now(dt.timezone.utc)
    timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    trace_id = str(uuid.uuid4())
    correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
    description = (
        f"AADSTS{code}: {message}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: "
        f"{now.strftime('%Y-%m-%d %H:%M:%S')}Z"
    )
    body = {
        "error": error,
        "error_description": description,
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
    }
    headers = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
    return json_response(body, status=status, headers=headers, content_type=TOKEN_CONTENT_TYPE)
