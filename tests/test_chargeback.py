"""Chargeback: license-day accounting, prices, roll-up, CSV export and who sees which rows."""
from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from chargeback.exports import csv_filename, report_to_csv
from chargeback.models import LicenseInterval, SkuPrice
from chargeback.reports import InvalidMonth, build_report, parse_month
from graphsync.models import DirectoryUser, Sku, Tenant
from pools.choices import AuditAction
from pools.models import AuditEvent, Pool
from rbac.choices import Action, Role
from rbac.scoping import chargeback_pools_for, pools_for

pytestmark = pytest.mark.django_db

UTC = dt.timezone.utc
PASSWORD = "correct-horse-42"


def at(text: str) -> dt.datetime:
    """Parse ``YYYY-MM-DD HH:MM`` as a UTC datetime."""
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


@pytest.fixture
def contoso(require_postgresql) -> Tenant:
    tenant = Tenant(name="Contoso", tenant_id=uuid.uuid4(), client_id=uuid.uuid4(), currency="EUR")
    tenant.set_client_secret("unused")
    tenant.save()
    return tenant


@pytest.fixture
def e5(contoso) -> Sku:
    return Sku.objects.create(
        tenant=contoso, sku_id=uuid.uuid4(), part_number="SPE_E5", display_name="Microsoft 365 E5", enabled_units=100
    )


@pytest.fixture
def e3(contoso) -> Sku:
    return Sku.objects.create(
        tenant=contoso, sku_id=uuid.uuid4(), part_number="SPE_E3", display_name="Microsoft 365 E3", enabled_units=100
    )


def make_pool(tenant: Tenant, name: str, parent: Pool | None = None) -> Pool:
    return Pool.objects.create(
        tenant=tenant, parent=parent, attribute="department", key=name.casefold(), display_name=name
    )


@pytest.fixture
def sales(contoso) -> Pool:
    return make_pool(contoso, "Sales")


@pytest.fixture
def finance_pool(contoso) -> Pool:
    return make_pool(contoso, "Finance")


def make_user(tenant: Tenant, name: str, pool: Pool) -> DirectoryUser:
    return DirectoryUser.objects.create(
        tenant=tenant, user_id=uuid.uuid4(), user_principal_name=f"{name}@contoso.example", display_name=name,
        pool=pool,
    )


def hold(user: DirectoryUser, sku: Sku, pool: Pool, start: str, end: str | None = None) -> LicenseInterval:
    return LicenseInterval.objects.create(
        tenant=user.tenant, user=user, sku=sku, pool=pool, started_at=at(start), ended_at=at(end) if end else None
    )


def price(sku: Sku, amount: str, effective_from: str, currency: str = "EUR") -> SkuPrice:
    return SkuPrice.objects.create(
        tenant=sku.tenant, sku=sku, monthly_price=Decimal(amount), currency=currency,
        effective_from=dt.date.fromisoformat(effective_from),
    )


def report_for(tenant: Tenant, year: int = 2025, month: int = 3, pools=None, now: str = "2026-01-01 00:00"):
    pools = Pool.objects.filter(tenant=tenant) if pools is None else pools
    return build_report(tenant=tenant, year=year, month=month, pools=pools, now=at(now))


def days_by_pool(report) -> dict[tuple[str, str], int]:
    return {(row.pool_name, row.part_number): row.license_days for row in report.rows}


# License-day rules


def test_partial_days_count_whole(contoso, e5, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2025-03-10 15:00", "2025-03-12 01:00")

    assert days_by_pool(report_for(contoso)) == {("Sales", "SPE_E5"): 3}


def test_end_at_midnight_excludes_day(contoso, e5, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2025-03-10 00:00", "2025-03-12 00:00")

    assert days_by_pool(report_for(contoso)) == {("Sales", "SPE_E5"): 2}


def test_short_interval_counts_its_day(contoso, e5, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2025-03-10 10:00", "2025-03-10 10:05")

    assert days_by_pool(report_for(contoso)) == {("Sales", "SPE_E5"): 1}


def test_move_charges_day_to_new_pool(contoso, e5, sales, finance_pool):
    alice = make_user(contoso, "alice", finance_pool)
    hold(alice, e5, sales, "2025-03-01 00:00", "2025-03-15 12:00")
    hold(alice, e5, finance_pool, "2025-03-15 12:00")

    assert days_by_pool(report_for(contoso)) == {("Finance", "SPE_E5"): 17, ("Sales", "SPE_E5"): 14}


def test_revoke_and_reassign_same_day(contoso, e5, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2025-03-05 08:00", "2025-03-05 09:00")
    hold(alice, e5, sales, "2025-03-05 17:00", "2025-03-07 10:00")

    assert days_by_pool(report_for(contoso)) == {("Sales", "SPE_E5"): 3}


def test_reassign_in_other_pool_same_day(contoso, e5, sales, finance_pool):
    alice = make_user(contoso, "alice", finance_pool)
    hold(alice, e5, sales, "2025-03-01 00:00", "2025-03-10 09:00")
    hold(alice, e5, finance_pool, "2025-03-10 18:00", "2025-03-11 06:00")

    assert days_by_pool(report_for(contoso)) == {("Finance", "SPE_E5"): 2, ("Sales", "SPE_E5"): 9}


def test_interval_spans_months(contoso, e5, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2025-02-20 13:00", "2025-04-10 08:00")

    assert days_by_pool(report_for(contoso, month=2)) == {("Sales", "SPE_E5"): 9}
    assert days_by_pool(report_for(contoso, month=3)) == {("Sales", "SPE_E5"): 31}
    assert days_by_pool(report_for(contoso, month=4)) == {("Sales", "SPE_E5"): 10}


def test_open_interval_whole_month(contoso, e5, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2024-11-03 09:00")

    report = report_for(contoso, month=3)

    assert days_by_pool(report) == {("Sales", "SPE_E5"): 31}
    assert report.charged_through == dt.date(2025, 3, 31)


def test_open_interval_month_in_progress(contoso, e5, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2025-02-27 09:00")

    report = report_for(contoso, month=3, now="2025-03-10 12:00")

    assert days_by_pool(report) == {("Sales", "SPE_E5"): 10}
    assert report.charged_through == dt.date(2025, 3, 10)


def test_future_month_is_empty(contoso, e5, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2025-02-27 09:00")

    report = report_for(contoso, month=4, now="2025-03-10 12:00")

    assert report.rows == []
    assert report.charged_through is None


def test_intervals_outside_month_ignored(contoso, e5, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2025-01-01 00:00", "2025-03-01 00:00")
    hold(alice, e5, sales, "2025-04-01 00:00")

    assert report_for(contoso, month=3).rows == []


def test_users_and_skus_add_up(contoso, e5, e3, sales):
    alice = make_user(contoso, "alice", sales)
    bob = make_user(contoso, "bob", sales)
    hold(alice, e5, sales, "2025-03-01 00:00", "2025-03-11 00:00")
    hold(bob, e5, sales, "2025-03-21 00:00", "2025-04-01 00:00")
    hold(bob, e3, sales, "2025-03-01 00:00", "2025-03-02 00:00")

    report = report_for(contoso)

    assert days_by_pool(report) == {("Sales", "SPE_E3"): 1, ("Sales", "SPE_E5"): 21}
    assert report.license_days == 22


def test_level2_rolls_up(contoso, e5, sales):
    emea = make_pool(contoso, "EMEA", parent=sales)
    alice = make_user(contoso, "alice", sales)
    bob = make_user(contoso, "bob", emea)
    hold(alice, e5, sales, "2025-03-01 00:00", "2025-03-11 00:00")
    hold(bob, e5, emea, "2025-03-01 00:00", "2025-03-06 00:00")

    report = report_for(contoso)

    assert days_by_pool(report) == {("Sales", "SPE_E5"): 15}
    assert [row.pool_id for row in report.rows] == [sales.pk]


def test_level2_only_scope_keeps_own_row(contoso, e5, sales):
    emea = make_pool(contoso, "EMEA", parent=sales)
    alice = make_user(contoso, "alice", sales)
    bob = make_user(contoso, "bob", emea)
    hold(alice, e5, sales, "2025-03-01 00:00", "2025-03-11 00:00")
    hold(bob, e5, emea, "2025-03-01 00:00", "2025-03-06 00:00")

    report = report_for(contoso, pools=Pool.objects.filter(pk=emea.pk))

    assert days_by_pool(report) == {("Sales / EMEA", "SPE_E5"): 5}


def test_move_day_goes_to_hidden_pool(contoso, e5, sales, finance_pool):
    alice = make_user(contoso, "alice", finance_pool)
    hold(alice, e5, sales, "2025-03-01 00:00", "2025-03-15 12:00")
    hold(alice, e5, finance_pool, "2025-03-15 12:00")

    report = report_for(contoso, pools=Pool.objects.filter(pk=sales.pk))

    assert days_by_pool(report) == {("Sales", "SPE_E5"): 14}


def test_other_tenant_ignored(contoso, e5, sales):
    other = Tenant(name="Fabrikam", tenant_id=uuid.uuid4(), client_id=uuid.uuid4())
    other.set_client_secret("unused")
    other.save()
    other_sku = Sku.objects.create(tenant=other, sku_id=e5.sku_id, part_number="SPE_E5", enabled_units=5)
    other_pool = make_pool(other, "Sales")
    carol = make_user(other, "carol", other_pool)
    hold(carol, other_sku, other_pool, "2025-03-01 00:00")

    report = report_for(contoso, pools=Pool.objects.all())

    assert report.rows == []


def test_query_count_is_bounded(contoso, e5, sales, django_assert_max_num_queries):
    for number in range(30):
        user = make_user(contoso, f"user{number}", sales)
        hold(user, e5, sales, "2025-03-01 00:00", "2025-03-05 00:00")
        hold(user, e5, sales, "2025-03-20 00:00")
    price(e5, "31", "2025-01-01")

    with django_assert_max_num_queries(4):
        report = report_for(contoso)

    assert days_by_pool(report) == {("Sales", "SPE_E5"): 30 * (4 + 12)}


# Prices and money


def test_full_month_costs_monthly_price(contoso, e5, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2025-01-01 00:00")
    price(e5, "54.75", "2024-07-01")

    report = report_for(contoso)

    assert report.rows[0].cost == Decimal("54.75")
    assert report.rows[0].currency == "EUR"


def test_price_change_mid_month(contoso, e5, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2025-01-01 00:00")
    price(e5, "31.00", "2025-01-01")
    price(e5, "62.00", "2025-03-16")
    price(e5, "1000.00", "2025-04-01")

    row = report_for(contoso).rows[0]

    # 15 days at 31.00 / 31 and 16 days at 62.00 / 31.
    assert row.license_days == 31
    assert row.cost == Decimal("47.00")


def test_price_per_day_of_month(contoso, e5, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2025-02-01 00:00", "2025-02-08 00:00")
    price(e5, "28.00", "2025-01-01")

    row = report_for(contoso, month=2).rows[0]

    assert row.license_days == 7
    assert row.cost == Decimal("7.00")


def test_cost_rounds_half_up(contoso, e5, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2025-04-10 00:00", "2025-04-11 00:00")
    price(e5, "0.15", "2025-01-01")

    row = report_for(contoso, month=4).rows[0]

    # 0.15 / 30 = 0.005 exactly, which half-up rounding takes to 0.01.
    assert row.exact_cost == Decimal("0.005")
    assert row.cost == Decimal("0.01")


def test_total_sums_rounded_rows(contoso, e5, sales, finance_pool):
    for pool in (sales, finance_pool):
        user = make_user(contoso, f"user-{pool.name}", pool)
        hold(user, e5, pool, "2025-04-10 00:00", "2025-04-11 00:00")
    price(e5, "0.15", "2025-01-01")

    report = report_for(contoso, month=4)

    # Each row costs 0.15 / 30 = 0.005, shown as 0.01. Rounding the exact sum 0.010 would give a
    # total of 0.01, one cent less than the rows add up to.
    assert [row.cost for row in report.rows] == [Decimal("0.01"), Decimal("0.01")]
    assert [(total.currency, total.cost) for total in report.totals] == [("EUR", Decimal("0.02"))]


def test_no_price_has_empty_cost(contoso, e5, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2025-03-01 00:00")

    report = report_for(contoso)

    assert len(report.rows) == 1
    assert report.rows[0].license_days == 31
    assert report.rows[0].cost is None
    assert report.rows[0].currency == ""
    assert report.totals == []
    assert report.unpriced_license_days == 31


def test_price_from_mid_month_splits_row(contoso, e5, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2025-03-01 00:00")
    price(e5, "31.00", "2025-03-11")

    rows = report_for(contoso).rows

    assert [(row.license_days, row.cost, row.currency) for row in rows] == [
        (21, Decimal("21.00"), "EUR"),
        (10, None, ""),
    ]


def test_price_of_other_sku_not_used(contoso, e5, e3, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2025-03-01 00:00")
    price(e3, "36.00", "2025-01-01")

    assert report_for(contoso).rows[0].cost is None


# Month input


def test_month_out_of_range_rejected(contoso):
    with pytest.raises(InvalidMonth) as error:
        report_for(contoso, month=13)
    assert error.value.message == "The month 13 is invalid: use a month from 1 to 12."

    with pytest.raises(InvalidMonth) as error:
        report_for(contoso, year=1899, month=1)
    assert error.value.message == "The year 1899 is out of range: use a year from 2000 to 2100."


def test_parse_month_names_value():
    assert parse_month("2025-03") == (2025, 3)
    with pytest.raises(InvalidMonth) as error:
        parse_month("2025-3")
    assert error.value.message == "“2025-3” is not a month: use the form YYYY-MM, e.g. 2025-03."
    with pytest.raises(InvalidMonth) as error:
        parse_month("2025-00")
    assert error.value.message == "The month 0 is invalid: use a month from 1 to 12."


# CSV export


def test_csv_has_bom_and_columns(contoso, e5, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2025-03-01 00:00")
    price(e5, "1234.5", "2025-01-01")

    text = report_to_csv(report_for(contoso))

    assert text.startswith("\ufeffMonth,Pool ID,Pool,Pool status,SKU,Product,License-days,Cost,Currency\r\n")
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert rows[1] == ["2025-03", str(sales.pk), "Sales", "Active", "SPE_E5", "Microsoft 365 E5", "31", "1234.50", "EUR"]
    assert len(rows) == 2


def test_csv_cells_are_formula_safe(contoso, e5):
    names = ["=SUM(A1:A2)", "+1", "-1", "@cmd", "\tTab", "\rReturn", "R&D"]
    for number, name in enumerate(names):
        pool = make_pool(contoso, name)
        user = make_user(contoso, f"user{number}", pool)
        hold(user, e5, pool, "2025-03-01 00:00", "2025-03-02 00:00")
    e5.name_override = "=HYPERLINK(\"http://example.invalid\")"
    e5.save()

    rows = list(csv.reader(io.StringIO(report_to_csv(report_for(contoso)).removeprefix("\ufeff"))))

    pool_cells = sorted(row[2] for row in rows[1:])
    assert pool_cells == sorted(["'=SUM(A1:A2)", "'+1", "'-1", "'@cmd", "'\tTab", "'\rReturn", "R&D"])
    assert {row[5] for row in rows[1:]} == {"'=HYPERLINK(\"http://example.invalid\")"}
    assert {row[6] for row in rows[1:]} == {"1"}


def test_csv_no_price_cost_empty(contoso, e5, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2025-03-01 00:00")

    rows = list(csv.reader(io.StringIO(report_to_csv(report_for(contoso)).removeprefix("\ufeff"))))

    assert rows[1] == ["2025-03", str(sales.pk), "Sales", "Active", "SPE_E5", "Microsoft 365 E5", "31", "", ""]


def test_csv_tells_same_names_apart(contoso, e5, sales):
    other = Pool.objects.create(tenant=contoso, attribute="companyName", key="sales", display_name="Sales")
    hold(make_user(contoso, "alice", sales), e5, sales, "2025-03-01 00:00")
    hold(make_user(contoso, "bob", other), e5, other, "2025-03-01 00:00", "2025-03-11 00:00")

    rows = list(csv.reader(io.StringIO(report_to_csv(report_for(contoso)).removeprefix("\ufeff"))))

    assert [row[:4] + [row[6]] for row in rows[1:]] == [
        ["2025-03", str(sales.pk), "Sales", "Active", "31"],
        ["2025-03", str(other.pk), "Sales", "Active", "10"],
    ]


def test_csv_filename(contoso):
    report = report_for(contoso)

    assert csv_filename(report) == "chargeback-contoso-2025-03.csv"


# Views and who sees which rows


@pytest.fixture
def two_pools_held(contoso, e5, sales, finance_pool):
    alice = make_user(contoso, "alice", sales)
    bob = make_user(contoso, "bob", finance_pool)
    hold(alice, e5, sales, "2025-03-01 00:00")
    hold(bob, e5, finance_pool, "2025-03-01 00:00", "2025-03-03 00:00")
    price(e5, "31.00", "2025-01-01")


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode("utf-8").removeprefix("\ufeff"))))


def report_url(tenant: Tenant) -> str:
    return reverse("chargeback:report", kwargs={"tenant_pk": tenant.pk})


def csv_url(tenant: Tenant, month: str = "2025-03") -> str:
    return reverse("chargeback:report_csv", kwargs={"tenant_pk": tenant.pk, "month": month})


def test_csv_view_download(client, make_portal_user, contoso, two_pools_held):
    client.force_login(make_portal_user("fin", role=Role.FINANCE, tenant=contoso))

    response = client.get(csv_url(contoso))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="chargeback-contoso-2025-03.csv"'
    assert response.content.startswith(b"\xef\xbb\xbf")
    assert [row[2] for row in csv_rows(response)[1:]] == ["Finance", "Sales"]


def test_csv_view_bad_month(client, make_portal_user, contoso):
    client.force_login(make_portal_user("fin", role=Role.FINANCE, tenant=contoso))

    response = client.get(csv_url(contoso, "2025-13"))

    assert response.status_code == 400
    assert response.content.decode() == "The month 13 is invalid: use a month from 1 to 12."


def test_finance_tenant_sees_all_pools(client, make_portal_user, contoso, two_pools_held):
    client.force_login(make_portal_user("fin", role=Role.FINANCE, tenant=contoso))

    response = client.get(report_url(contoso), {"month": "2025-03"})

    assert response.status_code == 200
    assert [(row.pool_name, row.license_days) for row in response.context["report"].rows] == [
        ("Finance", 2),
        ("Sales", 31),
    ]
    assert ">Download CSV</a>" in response.content.decode()
    assert f'href="{csv_url(contoso)}"' in response.content.decode()


def test_finance_pool_sees_own_rows(client, make_portal_user, contoso, sales, two_pools_held):
    client.force_login(make_portal_user("fin", role=Role.FINANCE, pool=sales))

    page = client.get(report_url(contoso), {"month": "2025-03"})
    download = client.get(csv_url(contoso))

    assert [row.pool_name for row in page.context["report"].rows] == ["Sales"]
    assert "Finance" not in [row[2] for row in csv_rows(download)]
    assert [row[2] for row in csv_rows(download)[1:]] == ["Sales"]


def test_past_month_keeps_inactive_pools(client, make_portal_user, contoso, e5, sales, finance_pool):
    retired = make_pool(contoso, "Vertrieb")
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, retired, "2025-03-01 00:00", "2025-03-11 00:00")
    hold(alice, e5, sales, "2025-03-11 00:00")
    Pool.objects.filter(pk=retired.pk).update(is_active=False)
    client.force_login(make_portal_user("fin", role=Role.FINANCE, tenant=contoso))

    page = client.get(report_url(contoso), {"month": "2025-03"})
    download = client.get(csv_url(contoso))

    assert [(row.pool_id, row.license_days, row.pool_active) for row in page.context["report"].rows] == [
        (sales.pk, 21, True),
        (retired.pk, 10, False),
    ]
    assert "(Inactive)" in page.content.decode()
    assert [row[1:4] + [row[6]] for row in csv_rows(download)[1:]] == [
        [str(sales.pk), "Sales", "Active", "21"],
        [str(retired.pk), "Vertrieb", "Inactive", "10"],
    ]


def test_merged_pool_follows_grant(client, make_portal_user, contoso, e5, sales, finance_pool):
    merged = make_pool(contoso, "Vertrieb")
    child = make_pool(contoso, "Berlin", parent=merged)
    hold(make_user(contoso, "alice", sales), e5, merged, "2025-03-01 00:00", "2025-03-05 00:00")
    hold(make_user(contoso, "bob", sales), e5, child, "2025-03-01 00:00", "2025-03-03 00:00")
    hold(make_user(contoso, "carol", finance_pool), e5, finance_pool, "2025-03-01 00:00")
    sibling = make_pool(contoso, "Berlin", parent=sales)
    Pool.objects.filter(pk__in=[merged.pk, child.pk]).update(is_active=False)
    Pool.objects.filter(pk=merged.pk).update(merged_into=sales)
    Pool.objects.filter(pk=child.pk).update(merged_into=sibling)
    client.force_login(make_portal_user("fin", role=Role.FINANCE, pool=sales))

    download = client.get(csv_url(contoso))

    assert [row[1:4] + [row[6]] for row in csv_rows(download)[1:]] == [
        [str(merged.pk), "Vertrieb", f"Inactive, merged into Sales (ID {sales.pk})", "6"],
    ]


def test_inactive_pool_scope(make_portal_user, contoso, sales, finance_pool):
    retired = make_pool(contoso, "Vertrieb")
    Pool.objects.filter(pk=retired.pk).update(is_active=False, merged_into=finance_pool)
    pool_reader = make_portal_user("pool-fin", role=Role.FINANCE, pool=sales)
    tenant_reader = make_portal_user("tenant-fin", role=Role.FINANCE, tenant=contoso)

    assert set(chargeback_pools_for(pool_reader)) == {sales}
    assert set(chargeback_pools_for(tenant_reader)) == {sales, finance_pool, retired}
    assert retired not in pools_for(tenant_reader, Action.CHARGEBACK)


def test_admin_and_auditor_see_all(client, make_portal_user, contoso, two_pools_held):
    for username, role in [("admin", Role.TENANT_ADMIN), ("auditor", Role.AUDITOR)]:
        client.force_login(make_portal_user(username, role=role, tenant=contoso))

        response = client.get(report_url(contoso), {"month": "2025-03"})

        assert [row.pool_name for row in response.context["report"].rows] == ["Finance", "Sales"], username


def test_others_get_404(client, make_portal_user, contoso, sales, two_pools_held):
    manager = make_portal_user("manager", role=Role.POOL_MANAGER, pool=sales)
    operator = make_portal_user("operator", role=Role.LICENSE_OPERATOR, tenant=contoso)
    nobody = make_portal_user("nobody")
    for user in (manager, operator, nobody):
        client.force_login(user)

        assert client.get(report_url(contoso)).status_code == 404, user.username
        assert client.get(csv_url(contoso)).status_code == 404, user.username


def test_anonymous_redirected_to_login(client, contoso):
    response = client.get(report_url(contoso))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_report_page_renders_localised(client, make_portal_user, contoso, e5, sales, settings):
    settings.USE_THOUSAND_SEPARATOR = True
    for number in range(40):
        user = make_user(contoso, f"user{number}", sales)
        hold(user, e5, sales, "2025-03-01 00:00")
    price(e5, "1000.00", "2025-01-01")
    client.force_login(make_portal_user("fin", role=Role.FINANCE, tenant=contoso))

    html = client.get(report_url(contoso), {"month": "2025-03"}).content.decode()

    assert "1,240" in html
    assert "40,000.00" in html


def test_report_page_marks_no_price(client, make_portal_user, contoso, e5, sales):
    alice = make_user(contoso, "alice", sales)
    hold(alice, e5, sales, "2025-03-01 00:00")
    client.force_login(make_portal_user("fin", role=Role.FINANCE, tenant=contoso))

    html = client.get(report_url(contoso), {"month": "2025-03"}).content.decode()

    assert "<em>no price</em>" in html
    assert "31 license-days have no price and are not in the total cost." in html


def test_report_page_bad_month(client, make_portal_user, contoso):
    client.force_login(make_portal_user("fin", role=Role.FINANCE, tenant=contoso))

    response = client.get(report_url(contoso), {"month": "March"})

    assert response.status_code == 400
    assert "“March” is not a month: use the form YYYY-MM, e.g. 2025-03." in response.content.decode()


def test_report_defaults_to_current_month(client, make_portal_user, contoso):
    client.force_login(make_portal_user("fin", role=Role.FINANCE, tenant=contoso))
    today = dt.datetime.now(UTC).date()

    report = client.get(report_url(contoso)).context["report"]

    assert (report.year, report.month) == (today.year, today.month)


# Prices page


def prices_url(tenant: Tenant) -> str:
    return reverse("chargeback:prices", kwargs={"tenant_pk": tenant.pk})


def test_admin_sets_price(client, make_portal_user, contoso, e5):
    admin = make_portal_user("admin", role=Role.TENANT_ADMIN, tenant=contoso)
    client.force_login(admin)

    form = client.get(prices_url(contoso)).context["form"]
    response = client.post(
        prices_url(contoso),
        {"sku": e5.pk, "monthly_price": "54.75", "currency": "eur", "effective_from": "2025-03-01"},
    )

    assert form.initial["currency"] == "EUR"
    assert response.status_code == 302
    stored = SkuPrice.objects.get(sku=e5)
    assert (stored.monthly_price, stored.currency, stored.effective_from) == (
        Decimal("54.75"), "EUR", dt.date(2025, 3, 1)
    )
    event = AuditEvent.objects.get(action=AuditAction.PRICE_CHANGED)
    assert event.actor == admin
    assert event.sku == e5
    assert event.before is None
    assert event.after == {"monthly_price": "54.75", "currency": "EUR", "effective_from": "2025-03-01"}
    page = client.get(prices_url(contoso)).content.decode()
    assert "Microsoft 365 E5 now costs 54.75 EUR per seat and month from 03/01/2025." in page
    assert "<td>03/01/2025</td>" in page
    assert '<option value="" selected>Choose a SKU</option>' in page


def test_price_same_date_replaced(client, make_portal_user, contoso, e5):
    client.force_login(make_portal_user("admin", role=Role.TENANT_ADMIN, tenant=contoso))
    body = {"sku": e5.pk, "currency": "EUR", "effective_from": "2025-03-01"}
    client.post(prices_url(contoso), {**body, "monthly_price": "10"})

    unconfirmed = client.post(prices_url(contoso), {**body, "monthly_price": "12.5"})
    assert unconfirmed.status_code == 400
    assert (
        "Microsoft 365 E5 already costs 10.00 EUR from 03/01/2025. To replace that price, tick \u201cReplace the "
        "price already set for this SKU and date\u201d and submit again; otherwise choose another date."
    ) in unconfirmed.content.decode()
    assert list(SkuPrice.objects.values_list("monthly_price", flat=True)) == [Decimal("10")]

    confirmed = client.post(prices_url(contoso), {**body, "monthly_price": "12.5", "replace_existing": "on"})
    assert confirmed.status_code == 302
    assert list(SkuPrice.objects.values_list("monthly_price", flat=True)) == [Decimal("12.5")]
    event = AuditEvent.objects.filter(action=AuditAction.PRICE_CHANGED).first()
    assert event.before == {
        "monthly_price": "10.0000", "currency": "EUR", "effective_from": "2025-03-01", "set_by": "admin",
    }


def test_price_in_other_currency_rejected(client, make_portal_user, contoso, e5):
    client.force_login(make_portal_user("admin", role=Role.TENANT_ADMIN, tenant=contoso))

    response = client.post(
        prices_url(contoso), {"sku": e5.pk, "monthly_price": "36", "currency": "USD", "effective_from": "2025-11-01"}
    )

    assert response.status_code == 400
    assert (
        "Currency: USD is not the tenant&#x27;s chargeback currency, EUR. Chargeback reports add the costs of all "
        "SKUs in one currency, so enter the price converted to EUR."
    ) in response.content.decode()
    assert not SkuPrice.objects.exists()


def test_negative_price_rejected(client, make_portal_user, contoso, e5):
    client.force_login(make_portal_user("admin", role=Role.TENANT_ADMIN, tenant=contoso))

    response = client.post(
        prices_url(contoso), {"sku": e5.pk, "monthly_price": "-1", "currency": "EUR", "effective_from": "2025-03-01"}
    )

    assert response.status_code == 400
    assert "Monthly price per seat: -1 is less than the minimum of 0." in response.content.decode()
    assert not SkuPrice.objects.exists()


def test_unknown_currency_rejected(client, make_portal_user, contoso, e5):
    client.force_login(make_portal_user("admin", role=Role.TENANT_ADMIN, tenant=contoso))

    response = client.post(
        prices_url(contoso), {"sku": e5.pk, "monthly_price": "1", "currency": "EUX", "effective_from": "2025-03-01"}
    )

    assert response.status_code == 400
    assert (
        "Currency: &quot;EUX&quot; is not an ISO 4217 currency code. Enter a current code such as EUR or USD."
        in response.content.decode()
    )
    assert not SkuPrice.objects.exists()


def test_finance_reads_prices(client, make_portal_user, contoso, e5):
    admin = make_portal_user("admin", role=Role.TENANT_ADMIN, tenant=contoso)
    SkuPrice.objects.create(
        tenant=contoso, sku=e5, monthly_price=Decimal("54.75"), currency="EUR", effective_from=dt.date(2025, 3, 1),
        created_by=admin,
    )
    client.force_login(make_portal_user("fin", role=Role.FINANCE, tenant=contoso))

    page = client.get(prices_url(contoso))
    posted = client.post(
        prices_url(contoso), {"sku": e5.pk, "monthly_price": "1", "currency": "EUR", "effective_from": "2025-04-01"}
    )

    assert page.status_code == 200
    assert page.context["form"] is None
    body = page.content.decode()
    assert "54.75" in body
    assert "Tenant administrators set these prices." in body
    assert "Set price" not in body
    assert posted.status_code == 404
    assert SkuPrice.objects.count() == 1


def test_prices_page_roles(client, make_portal_user, contoso, sales):
    users = {
        "pool-finance": (make_portal_user("pool-finance", role=Role.FINANCE, pool=sales), 200),
        "auditor": (make_portal_user("auditor", role=Role.AUDITOR, tenant=contoso), 200),
        "manager": (make_portal_user("manager", role=Role.POOL_MANAGER, pool=sales), 404),
        "operator": (make_portal_user("operator", role=Role.LICENSE_OPERATOR, tenant=contoso), 404),
        "nobody": (make_portal_user("nobody"), 404),
    }

    for name, (user, status) in users.items():
        client.force_login(user)

        assert client.get(prices_url(contoso)).status_code == status, name


def test_prices_in_navigation(client, make_portal_user, contoso, sales):
    link = f'href="{prices_url(contoso)}"'
    users = {
        "admin": (make_portal_user("admin", role=Role.TENANT_ADMIN, tenant=contoso), True),
        "finance": (make_portal_user("fin", role=Role.FINANCE, tenant=contoso), True),
        "manager": (make_portal_user("manager", role=Role.POOL_MANAGER, pool=sales), False),
    }

    for name, (user, shown) in users.items():
        client.force_login(user)

        assert (link in client.get(reverse("pools:home")).content.decode()) is shown, name


def test_grant_on_retired_pool_opens_reports(client, make_portal_user, contoso, e5, sales, finance_pool):
    retired = make_pool(contoso, "Vertrieb")
    hold(make_user(contoso, "alice", sales), e5, retired, "2025-03-01 00:00", "2025-03-11 00:00")
    reader = make_portal_user("retired-fin", role=Role.FINANCE, pool=retired)
    Pool.objects.filter(pk=retired.pk).update(is_active=False)
    client.force_login(reader)

    page = client.get(report_url(contoso), {"month": "2025-03"})

    assert page.status_code == 200
    assert [(row.pool_id, row.license_days) for row in page.context["report"].rows] == [(retired.pk, 10)]
