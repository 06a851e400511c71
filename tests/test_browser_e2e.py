"""End to end through the web UI in Chromium, against the Graph emulator over HTTPS.

A tenant administrator defines a two-level pool scheme and allots 3 seats of a SKU to one pool. The
pool's manager assigns 3 users, sees the 4th rejected with the numbers shown, revokes one and then
assigns the 4th. A finance user downloads the chargeback CSV and finds the license-days and cost of
those assignments, and the administrator downloads those assignments from the audit trail.
"""
from __future__ import annotations

import calendar
import csv
import datetime as dt
import io
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from django.utils.text import slugify
from playwright.sync_api import Page, expect

from graphsync.choices import CapabilityStatus, LicenseState
from graphsync.models import DirectoryUser, Sku, UserLicense
from pools import stock
from pools.choices import AuditAction
from pools.models import Allotment, AuditEvent, Pool, PoolScheme
from pools.normalization import normalize_value
from rbac.choices import Role

PASSWORD = "correct-horse-42"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]


@dataclass
class Candidate:
    pool: Pool
    sku: Sku
    users: list[DirectoryUser]


def sign_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def expect_message(page: Page, text: str) -> None:
    expect(page.locator(".messages .message")).to_have_text(text)


def expect_usage(page: Page, sku: Sku, allotted: str, in_use: str, spare: str) -> None:
    row = page.locator("#usage tbody tr", has=page.get_by_role("rowheader", name=sku.name, exact=True))
    expect(row.locator("td")).to_have_text([allotted, in_use, spare])


def find_candidate(tenant) -> Candidate:
    """Pick a level-1 pool and a SKU it does not consume, with 4 users who can receive that SKU.

    The tenant needs at least 4 free enabled units of the SKU so that only the pool's allotment can
    reject the 4th assignment.
    """
    pools = Pool.objects.filter(tenant=tenant, parent=None, is_active=True, is_unassigned=False).order_by("display_name")
    skus = Sku.objects.filter(tenant=tenant, applies_to="User", capability_status=CapabilityStatus.ENABLED).order_by(
        "part_number"
    )
    for sku in skus:
        if sku.enabled_units - stock.holders(tenant, sku) < 4:
            continue
        for pool in pools:
            if stock.holders(tenant, sku, pool.subtree_ids()) != 0:
                continue
            users = list(
                pool.members_queryset()
                .exclude(usage_location="")
                .exclude(licenses__sku=sku)
                .order_by("user_principal_name")[:4]
            )
            if len(users) == 4:
                return Candidate(pool=pool, sku=sku, users=users)
    pytest.fail("The generated tenant has no pool and SKU with 4 users who can receive it.")


def search_member(page: Page, user: DirectoryUser) -> None:
    # The search box updates the table through htmx, which loads deferred, so text typed earlier is lost.
    page.wait_for_function("() => window.htmx !== undefined && document.readyState === 'complete'")
    page.get_by_label("Search members by name or user principal name").fill(user.user_principal_name)
    expect(page.locator(f"#member-{user.pk}")).to_be_visible()
    expect(page.locator("#members tbody tr")).to_have_count(1)


def assign(page: Page, user: DirectoryUser, sku: Sku) -> None:
    search_member(page, user)
    page.get_by_label(f"License to assign to {user.user_principal_name}").select_option(value=str(sku.pk))
    page.locator(f"#member-{user.pk}").get_by_role("button", name="Assign").click()


def revoke(page: Page, user: DirectoryUser, sku: Sku) -> None:
    search_member(page, user)
    page.get_by_role("button", name=f"Revoke {sku.name} from {user.user_principal_name}").click()


def test_pools_assignment_and_chargeback(
    browser_page, live_server, synced_tenant, emulated_tenant_state, make_portal_user, require_postgresql
):
    page = browser_page
    base_url = live_server.url
    tenant = synced_tenant
    today = timezone.now().astimezone(dt.timezone.utc).date()
    make_portal_user("central-it", role=Role.TENANT_ADMIN, tenant=tenant)
    make_portal_user("finance", role=Role.FINANCE, tenant=tenant)

    # The administrator defines a two-level scheme: country, then department.
    sign_in(page, base_url, "central-it")
    page.locator("main").get_by_role("link", name="Tenant overview").click()
    page.get_by_label("Level 1 attribute").select_option(label="Country or region")
    page.get_by_label("Level 2 attribute (optional)").select_option(label="Department")
    page.get_by_role("button", name="Preview scheme").click()
    expect(page.get_by_role("heading", name="Preview of the scheme Country or region / Department")).to_be_visible()
    assert not PoolScheme.objects.filter(tenant=tenant).exists()
    page.get_by_role("button", name="Apply this scheme").click()

    active_pools = Pool.objects.filter(tenant=tenant, is_active=True)
    expect_message(
        page,
        f"Saved the pool scheme Country or region / Department. The tenant now has {active_pools.count()} pools.",
    )
    users = DirectoryUser.objects.filter(tenant=tenant, is_deleted=False)
    countries = {normalize_value(user.country) for user in users} - {""}
    assert {pool.key for pool in active_pools.filter(parent=None, is_unassigned=False)} == countries
    assert active_pools.filter(parent__isnull=False).exists()
    pool_list = page.locator("#pools")
    for pool in active_pools:
        expect(pool_list.get_by_role("link", name=pool.name, exact=True).first).to_be_visible()

    # The administrator allots 3 seats of a SKU the pool does not use yet, and prices the SKU.
    candidate = find_candidate(tenant)
    pool, sku = candidate.pool, candidate.sku
    pool_list.get_by_role("link", name=pool.name, exact=True).first.click()
    expect(page.get_by_role("heading", name=pool.name, exact=True)).to_be_visible()
    seats = page.get_by_label(f"Seats of {sku.name}", exact=True)
    seats.fill("3")
    page.locator("form", has=seats).get_by_role("button", name="Save").click()
    expect_message(page, f"Allotted 3 seats of {sku.name} to {pool.name}.")
    expect_usage(page, sku, "3", "0", "3")
    assert Allotment.objects.get(pool=pool, sku=sku).seats == 3

    page.goto(f"{base_url}/tenants/{tenant.pk}/prices/")
    page.get_by_label("SKU", exact=True).select_option(value=str(sku.pk))
    page.get_by_label("Monthly price per seat").fill("31.00")
    page.get_by_label("Currency").fill("EUR")
    page.get_by_label("Effective from").fill(today.replace(day=1).isoformat())
    page.get_by_role("button", name="Set price").click()
    expect_message(
        page, f"{sku.name} now costs 31.00 EUR per seat and month from {today.replace(day=1):%m/%d/%Y}."
    )
    sign_out(page)

    # The pool manager has access to their pool only. They assign 3 users, see the 4th rejected, revoke
    # one and then assign the 4th.
    make_portal_user("unit-manager", role=Role.POOL_MANAGER, pool=pool)
    other_pool = active_pools.filter(parent=None).exclude(pk=pool.pk).order_by("pk").first()
    sign_in(page, base_url, "unit-manager")
    main = page.locator("main")
    expect(main.get_by_role("link", name=pool.name, exact=True)).to_be_visible()
    expect(main.get_by_role("link", name=other_pool.name, exact=True)).to_have_count(0)
    expect(main.get_by_role("link", name="Tenant overview")).to_have_count(0)
    assert page.goto(f"{base_url}/pools/{other_pool.pk}/").status == 404
    assert page.goto(f"{base_url}/tenants/{tenant.pk}/").status == 404
    page.goto(f"{base_url}/")
    main.get_by_role("link", name=pool.name, exact=True).click()
    expect(page.get_by_role("heading", name=pool.name, exact=True)).to_be_visible()

    first, second, third, fourth = candidate.users
    for user in (first, second, third):
        assign(page, user, sku)
        expect_message(page, f"Assigned {sku.name} to {user.user_principal_name}.")

    assign(page, fourth, sku)
    expect_message(
        page,
        f"Pool {pool.name} has no spare seat of {sku.name}: 3 allotted, 3 in use, 0 spare. Revoke a license in "
        "this pool or ask a tenant administrator to raise its allotment.",
    )

    revoke(page, third, sku)
    expect_message(page, f"Revoked {sku.name} from {third.user_principal_name}.")
    assign(page, fourth, sku)
    expect_message(page, f"Assigned {sku.name} to {fourth.user_principal_name}.")
    expect_usage(page, sku, "3", "3", "0")

    sku_id = str(sku.sku_id)
    for user, holds in zip(candidate.users, (True, True, False, True)):
        assert (sku_id in emulated_tenant_state.held_skus(str(user.user_id))) is holds, user.user_principal_name
        direct = UserLicense.objects.filter(user=user, sku=sku, assigned_by_group="", state=LicenseState.ACTIVE)
        assert direct.exists() is holds, user.user_principal_name
    sign_out(page)

    # Finance downloads this month's CSV. Each of the 4 users held the SKU today, the revoked one
    # included, so the pool has 4 license-days of it.
    # NOTE: a run that crosses midnight UTC charges a second day to the users still holding the SKU.
    sign_in(page, base_url, "finance")
    page.locator("main").get_by_role("link", name="Chargeback").click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    month = f"{today:%Y-%m}"
    assert download.suggested_filename.endswith(f"-{month}.csv")
    content = Path(download.path()).read_bytes().decode("utf-8")
    assert content.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(content.removeprefix("\ufeff"))))
    pool_rows = [row for row in rows if row["Pool"] == pool.name and row["SKU"] == sku.part_number]
    assert len(pool_rows) == 1, rows
    row = pool_rows[0]
    days_in_month = calendar.monthrange(today.year, today.month)[1]
    expected_cost = (Decimal(4) * Decimal("31.00") / days_in_month).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert row["Month"] == month
    assert row["License-days"] == "4"
    assert row["Cost"] == f"{expected_cost:.2f}"
    assert row["Currency"] == "EUR"
    sign_out(page)

    # The administrator filters the audit trail to successful assignments and downloads them as CSV.
    sign_in(page, base_url, "central-it")
    page.locator("main").get_by_role("link", name="Audit trail").click()
    page.get_by_label("Action").select_option(label="License assigned")
    page.get_by_label("Outcome").select_option(label="Succeeded")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("4 events, newest first.")).to_be_visible()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename == f"audit-{slugify(tenant.name)}-{today}-to-{today}.csv"
    content = Path(download.path()).read_bytes().decode("utf-8")
    assert content.startswith("\ufeff")
    audit_rows = list(csv.DictReader(io.StringIO(content.removeprefix("\ufeff"))))
    assert sorted(row["Target"] for row in audit_rows) == sorted(user.user_principal_name for user in candidate.users)
    assert {(row["Actor"], row["Action code"], row["Outcome"], row["SKU"]) for row in audit_rows} == {
        ("unit-manager", "license.assigned", "succeeded", sku.part_number)
    }
    exports = AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORTED, tenant=tenant)
    assert [(event.actor_name, event.after) for event in exports] == [
        ("central-it", {"format": "csv", "channel": "web", "action": "license.assigned", "outcome": "succeeded"})
    ]
