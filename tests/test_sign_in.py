"""Sign-in throttling: failed sign-ins lock out a user name from one address for a while, with a clear page."""
from __future__ import annotations

import datetime as dt

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.urls import reverse

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-42"
LOCKED_OUT = "Too many failed sign-ins with this user name. Try again in 15 minutes, after "


@pytest.fixture
def alice(make_portal_user):
    return make_portal_user("alice")


def sign_in(client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address)


def fail_until_locked(client, username: str) -> None:
    for _attempt in range(settings.AXES_FAILURE_LIMIT - 1):
        response = sign_in(client, username, "wrong")
        assert response.status_code == 200
        assert "Please enter a correct username and password." in response.content.decode()


def test_lockout_after_failure_limit(client, alice):
    fail_until_locked(client, "alice")

    locked = sign_in(client, "alice", "wrong")

    assert settings.AXES_FAILURE_LIMIT == 5
    assert locked.status_code == 429
    assert LOCKED_OUT in locked.content.decode()
    assert 899 <= int(locked["Retry-After"]) <= 900
    assert 'value="alice"' in locked.content.decode()


def test_right_password_refused_while_locked(client, alice):
    fail_until_locked(client, "alice")
    sign_in(client, "alice", "wrong")

    response = sign_in(client, "alice", PASSWORD)

    assert response.status_code == 429
    assert LOCKED_OUT in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_lockout_is_per_user_and_address(client, alice, make_portal_user):
    make_portal_user("bob")
    fail_until_locked(client, "alice")
    sign_in(client, "alice", "wrong")

    other_user = sign_in(client, "bob", PASSWORD)
    client.logout()
    other_address = sign_in(client, "alice", PASSWORD, address="127.0.0.2")

    assert other_user.status_code == 302
    assert other_address.status_code == 302


def test_sign_in_after_lockout_ends(client, alice):
    fail_until_locked(client, "alice")
    sign_in(client, "alice", "wrong")

    AccessAttempt.objects.update(attempt_time=dt.datetime.now(dt.timezone.utc) - settings.AXES_COOLOFF_TIME)
    response = sign_in(client, "alice", PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == reverse("pools:home")


def test_success_resets_failures(client, alice):
    fail_until_locked(client, "alice")
    assert sign_in(client, "alice", PASSWORD).status_code == 302
    client.logout()

    fail_until_locked(client, "alice")

    assert sign_in(client, "alice", PASSWORD).status_code == 302


def test_admin_sign_in_throttled(client, alice):
    alice.is_staff = True
    alice.save()
    for _attempt in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": "alice", "password": "wrong"})

    response = client.post("/admin/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 429
    assert LOCKED_OUT in response.content.decode()


def test_test_client_login_not_throttled(client, alice):
    assert client.login(username="alice", password=PASSWORD)
