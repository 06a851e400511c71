"""Links in e-mails are absolute, from PORTAL_BASE_URL or a base URL guessed from ALLOWED_HOSTS."""
from __future__ import annotations

import logging
from unittest import mock

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import override_settings

from graphsync.models import Sku
from licensepools import links
from licensepools.links import check_portal_base_url, fallback_base_url, log_portal_base_url_problems
from pools.choices import AlertKind, PoolAttribute
from pools.models import Alert, Pool
from pools.notifications import alert_url
from pools.seat_requests import create_request
from pools.services import set_scheme

BASE_URL = "https://licenses.example.com"


@pytest.mark.parametrize(
    ("hosts", "embedded", "expected"),
    [
        (["licenses.example.com", "localhost"], False, "https://licenses.example.com"),
        (["*", ".example.com"], False, "https://example.com"),
        (["*"], False, "https://localhost"),
        ([], False, "https://localhost"),
        (["::1"], False, "https://[::1]"),
        (["127.0.0.1", "localhost"], True, "http://127.0.0.1:8000"),
    ],
)
def test_fallback_base_url(hosts, embedded, expected):
    assert fallback_base_url(hosts, embedded=embedded) == expected


@override_settings(PORTAL_BASE_URL="https://licenses.example.com", PORTAL_BASE_URL_SET=False, EMBEDDED=False)
def test_check_warns_about_guessed_url():
    messages = check_portal_base_url(None)

    assert [message.id for message in messages] == ["licensepools.W001"]
    assert "https://licenses.example.com" in messages[0].msg
    assert "PORTAL_BASE_URL" in messages[0].hint


@override_settings(PORTAL_BASE_URL="http://127.0.0.1:8000", PORTAL_BASE_URL_SET=False, EMBEDDED=True)
def test_check_silent_on_embedded_default():
    assert check_portal_base_url(None) == []


@override_settings(PORTAL_BASE_URL=BASE_URL, PORTAL_BASE_URL_SET=True, EMBEDDED=False)
def test_check_silent_when_set():
    assert check_portal_base_url(None) == []


@pytest.mark.parametrize("value", ["licenses.example.com", "ftp://licenses.example.com", "https://", "https://x/?a=1"])
def test_check_rejects_invalid_url(value):
    with override_settings(PORTAL_BASE_URL=value, PORTAL_BASE_URL_SET=True):
        messages = check_portal_base_url(None)

    assert [message.id for message in messages] == ["licensepools.E001"]
    assert repr(value) in messages[0].msg


def test_check_command_lists_warning(capsys):
    with override_settings(PORTAL_BASE_URL="https://licenses.example.com", PORTAL_BASE_URL_SET=False, EMBEDDED=False):
        call_command("check")

    assert "licensepools.W001" in capsys.readouterr().err


@override_settings(PORTAL_BASE_URL=BASE_URL)
def test_alert_urls_absolute():
    pool_alert = Alert(kind=AlertKind.POOL_SPARE_LOW, tenant_id=3, pool_id=7)
    tenant_alert = Alert(kind=AlertKind.TENANT_STOCK_LOW, tenant_id=3)

    assert alert_url(pool_alert) == f"{BASE_URL}/pools/7/"
    assert alert_url(tenant_alert) == f"{BASE_URL}/tenants/3/alerts/"


@override_settings(PORTAL_BASE_URL=f"{BASE_URL}/portal")
def test_alert_url_keeps_path_prefix():
    alert = Alert(kind=AlertKind.TENANT_STOCK_LOW, tenant_id=3)

    assert alert_url(alert) == f"{BASE_URL}/portal/tenants/3/alerts/"


@override_settings(PORTAL_BASE_URL=BASE_URL)
def test_seat_request_mail_link_absolute(
    synced_tenant, make_portal_user, require_postgresql, django_capture_on_commit_callbacks
):
    admin = make_portal_user("admin", role="tenant_admin", tenant=synced_tenant)
    admin.email = "admin@example.com"
    admin.save(update_fields=["email"])
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.COUNTRY)
    pool = Pool.objects.get(tenant=synced_tenant, parent=None, key="us")
    manager = make_portal_user("manager", role="pool_manager", pool=pool)
    sku = Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")

    with django_capture_on_commit_callbacks(execute=True):
        create_request(acting_user=manager, pool=pool, sku=sku, quantity=2, reason="New hires")

    assert len(mail.outbox) == 1
    assert f"{BASE_URL}/tenants/{synced_tenant.pk}/requests/" in mail.outbox[0].body


def test_startup_logs_guessed_url():
    with (
        override_settings(PORTAL_BASE_URL="https://licenses.example.com", PORTAL_BASE_URL_SET=False, EMBEDDED=False),
        mock.patch.object(links.logger, "log") as log,
    ):
        log_portal_base_url_problems()

    assert log.call_count == 1
    level, text, message, hint, check_id = log.call_args.args
    assert level == logging.WARNING
    assert "links in e-mails use https://licenses.example.com" in message
    assert check_id == "licensepools.W001"
