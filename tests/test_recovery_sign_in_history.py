"""Reclaim candidates and the start of Entra ID's sign-in records, against the Graph emulator."""
from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from conftest import sync_now
from pools import recovery
from tests.test_recovery import (  # noqa: F401 (fixtures)
    DISABLED, GROUP, NEVER, REDUNDANT, STATEMENT, admin, by_upn, emulator_snapshot, manager, member, messages_of,
    patch_user, pool, premium, scenario,
)

OLD_ACCOUNT_REASON = (
    "No sign-in recorded since April 2020, when Entra ID began recording sign-ins. The account was created on "
    "06/01/2019, and the threshold is 90 days."
)


@pytest.fixture
def old_account(emulator, scenario, emulator_snapshot):
    """Make the never-signed-in member an account created in June 2019, before sign-ins were recorded."""
    patch_user(emulator, scenario, emulator_snapshot, NEVER, {"signInActivity": None, "createdDateTime": "2019-06-01T09:00:00Z"})
    sync_now(scenario)
    return member(scenario, NEVER)


def test_old_account_is_inactive(old_account, pool):
    report = recovery.pool_report(pool)
    candidate = by_upn(report.candidates)[NEVER]

    assert candidate.reason_codes == [recovery.ReasonCode.INACTIVE]
    assert messages_of(candidate) == [OLD_ACCOUNT_REASON]
    assert candidate.no_sign_in_since == dt.datetime(2020, 4, 1, tzinfo=dt.timezone.utc)
    assert candidate.last_sign_in is None
    assert report.count(recovery.ReasonCode.NEVER_SIGNED_IN) == 0


def test_old_account_on_pages(old_account, pool, manager, client):
    client.force_login(manager)
    api = APIClient()
    api.force_authenticate(manager)

    page = client.get(reverse("pools:pool_recovery", kwargs={"pool_pk": pool.pk})).content.decode()
    body = api.get(f"/api/v1/pools/{pool.pk}/reclaim-candidates/").json()

    assert "none recorded since April 2020" in page
    assert OLD_ACCOUNT_REASON in page
    assert "Never signed in; the account was created" not in page
    item = next(item for item in body["candidates"] if item["userPrincipalName"].startswith(NEVER))
    assert item["reasons"] == [{"code": "inactive", "message": OLD_ACCOUNT_REASON}]
    assert item["noSignInRecordedSince"] == "2020-04-01T00:00:00Z"


def test_recent_account_never_signed_in(scenario, pool):
    candidate = by_upn(recovery.pool_report(pool).candidates)[NEVER]

    assert candidate.reason_codes == [recovery.ReasonCode.NEVER_SIGNED_IN]
    assert candidate.no_sign_in_since is None


@pytest.mark.parametrize("premium", [False])
def test_old_account_without_premium(old_account, scenario, pool):
    report = recovery.pool_report(pool)

    assert scenario.sign_in_activity_available is False
    assert report.statement == STATEMENT
    assert set(by_upn(report.candidates)) == {DISABLED, REDUNDANT, GROUP}
    assert report.count(recovery.ReasonCode.INACTIVE) == 0
    assert report.count(recovery.ReasonCode.NEVER_SIGNED_IN) == 0
