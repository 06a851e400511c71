"""Absolute links to the portal for e-mails, which a mail client opens outside any request.

``PORTAL_BASE_URL`` is the scheme, host and optional path prefix of the portal, such as
``https://licenses.example.com``. Unset, settings fall back to ``fallback_base_url``, and the system
check ``check_portal_base_url`` (registered by the pools app) warns outside the embedded default.
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks

logger = logging.getLogger(__name__)

# Port of ``manage.py runserver`` without arguments, the usual way to serve the embedded default.
RUNSERVER_PORT = 8000


def fallback_base_url(allowed_hosts: list[str], *, embedded: bool) -> str:
    """Build a base URL from the first ALLOWED_HOSTS entry that names a host.

    Production uses https, since a portal reached from mail clients sits behind TLS. The embedded default
    uses http on runserver's port. A wildcard ``*`` names no host and is skipped, and a leading dot
    (``.example.com``, which also allows subdomains) is dropped.
    """
    host = next((entry.lstrip(".") for entry in allowed_hosts if entry.strip() and entry != "*"), "localhost")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # An IPv6 address needs brackets in a URL.
    if embedded:
        return f"http://{host}:{RUNSERVER_PORT}"
    return f"https://{host}"


def portal_url(path: str) -> str:
    """Return the absolute URL of ``path`` (as ``reverse`` returns it) under PORTAL_BASE_URL."""
    return settings.PORTAL_BASE_URL.rstrip("/") + path


def check_portal_base_url(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Report an error for a PORTAL_BASE_URL that is not an http(s) URL, and warn when production guessed it."""
    base_url = settings.PORTAL_BASE_URL
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        return [
            checks.Error(
                f"PORTAL_BASE_URL {base_url!r} is not an http or https URL.",
                hint="Set it to the address users open the portal at, such as https://licenses.example.com.",
                id="licensepools.E001",
            )
        ]
    if not settings.PORTAL_BASE_URL_SET and not settings.EMBEDDED:
        return [
            checks.Warning(
                f"PORTAL_BASE_URL is not set, so links in e-mails use {base_url}, guessed from ALLOWED_HOSTS.",
                hint="Set PORTAL_BASE_URL to the address users open the portal at, such as "
                     "https://licenses.example.com.",
                id="licensepools.W001",
            )
        ]
    return []


def log_portal_base_url_problems() -> None:
    """Log the PORTAL_BASE_URL check's findings, for servers such as gunicorn that run no system checks."""
    for message in check_portal_base_url(None):
        level = logging.ERROR if message.is_serious() else logging.WARNING
        logger.log(level, "%s %s (%s)", message.msg, message.hint, message.id)
