"""Lockout of a client address after repeated invalid API tokens, with the counts kept in Redis."""
import logging
import time

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from licensepools.token_throttle import clear_failures

ATTACKER = "198.51.100.7"
NEIGHBOUR = "198.51.100.8"
URL = "/api/v1/tenants/"


@pytest.fixture(autouse=True)
def lockout_settings(settings):
    assert django_settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    settings.API_TOKEN_FAILURE_LIMIT = 3
    settings.API_TOKEN_FAILURE_WINDOW_MINUTES = 1
    for address in (ATTACKER, NEIGHBOUR):
        clear_failures(address)
    yield settings
    for address in (ATTACKER, NEIGHBOUR):
        clear_failures(address)


@pytest.fixture
def token(db) -> Token:
    user = get_user_model().objects.create_user(username="scripted", password="correct-horse-42")
    return Token.objects.create(user=user)


def call(key: str, address: str):
    api = APIClient(REMOTE_ADDR=address)
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api.get(URL)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def throttle_log():
    handler = Records()
    logger = logging.getLogger("licensepools.token_throttle")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


def test_invalid_tokens_lock_out_address(token, throttle_log):
    refused = [call("not-a-valid-token", ATTACKER) for _attempt in range(3)]
    locked = call("not-a-valid-token", ATTACKER)
    valid_while_locked = call(token.key, ATTACKER)

    assert [response.status_code for response in refused] == [401, 401, 401]
    assert locked.status_code == 429
    assert 55 <= int(locked["Retry-After"]) <= 60
    assert locked.json() == {
        "detail": f"Too many requests with an invalid API token came from {ATTACKER}. Use a valid token, or try "
        f"again in {locked['Retry-After']} seconds."
    }
    # Another client at the same address, such as a script behind the same NAT gateway, keeps working.
    assert valid_while_locked.status_code == 200
    warnings = [record.getMessage() for record in throttle_log if record.levelno == logging.WARNING]
    assert warnings == [f"API token requests from {ATTACKER} locked out for 60 s after 3 invalid tokens"]
    assert all(token.key not in record.getMessage() for record in throttle_log)


def test_lockout_spares_other_addresses(token):
    for _attempt in range(4):
        call("not-a-valid-token", ATTACKER)

    assert call(token.key, NEIGHBOUR).status_code == 200
    assert call("not-a-valid-token", NEIGHBOUR).status_code == 401


def test_lockout_spares_session_requests(token):
    for _attempt in range(4):
        call("not-a-valid-token", ATTACKER)
    session = APIClient(REMOTE_ADDR=ATTACKER)
    session.force_login(token.user)

    assert session.get(URL).status_code == 200


def test_valid_tokens_never_count(token):
    responses = [call(token.key, ATTACKER) for _attempt in range(30)]
    refused = [call("not-a-valid-token", ATTACKER) for _attempt in range(2)]

    assert {response.status_code for response in responses} == {200}
    assert [response.status_code for response in refused] == [401, 401]
    assert call(token.key, ATTACKER).status_code == 200


def test_lockout_ends_with_window(lockout_settings, token):
    lockout_settings.API_TOKEN_FAILURE_WINDOW_MINUTES = 2 / 60
    for _attempt in range(3):
        call("not-a-valid-token", ATTACKER)
    assert call("not-a-valid-token", ATTACKER).status_code == 429

    time.sleep(2.5)

    assert call("not-a-valid-token", ATTACKER).status_code == 401


def test_zero_limit_turns_lockout_off(lockout_settings, token):
    lockout_settings.API_TOKEN_FAILURE_LIMIT = 0

    responses = [call("not-a-valid-token", ATTACKER) for _attempt in range(5)]

    assert {response.status_code for response in responses} == {401}
    assert call(token.key, ATTACKER).status_code == 200
