"""Monthly chargeback reports: license-days and time-weighted cost per pool and SKU.

Definitions:

- A *license-day* is one user holding one SKU on one UTC calendar day. A day on which the license was
  held for any part counts once, however many intervals touch it.
- When a user moved pools, or was revoked and re-assigned, on one day, that day is charged once, to
  the pool of the interval that started last that day.
- Intervals are half-open: an interval that ends exactly at 00:00 UTC does not count the day starting
  then. An open interval counts up to and including today (UTC); later days are not charged.
- Level-2 pools roll up into their level-1 pool. A user who may see a level-2 pool but not its parent
  gets a row for the level-2 pool itself.
- Days are charged to the pool that held the license then, even if that pool is inactive now because
  its scheme was replaced or it was merged into another pool. Its rows say so and carry its ID, which
  distinguishes two pools of one name.
- The cost of a license-day is the monthly price in effect that day (the SkuPrice with the latest
  ``effective_from`` on or before the day) divided by the number of days in the month. Days without a
  price form a row of their own with license-days and an empty cost.
- Money is kept as exact Decimal values and each row's cost is rounded half-up to two places only for
  output. The total of a currency is the sum of those rounded row costs, so that it equals the sum of
  the rows shown on the page, in the CSV export and in the API.
"""
from __future__ import annotations

import calendar
import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from itertools import groupby
from operator import itemgetter

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from graphsync.models import Sku, Tenant
from pools.models import Pool

from .models import LicenseInterval, SkuPrice

MIN_YEAR = 2000
MAX_YEAR = 2100
CENT = Decimal("0.01")
MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")


class InvalidMonth(ValueError):
    """A report month that is malformed or out of range. Its ``message`` is ready to show."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def round_money(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def check_month(year: int, month: int) -> None:
    """Raise InvalidMonth unless ``year`` and ``month`` name a supported calendar month."""
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise InvalidMonth(
            _("The year %(year)s is out of range: use a year from %(min)s to %(max)s.")
            % {"year": year, "min": MIN_YEAR, "max": MAX_YEAR}
        )
    if not 1 <= month <= 12:
        raise InvalidMonth(_("The month %(month)s is invalid: use a month from 1 to 12.") % {"month": month})


def parse_month(value: str) -> tuple[int, int]:
    """Parse ``YYYY-MM`` into (year, month), raising InvalidMonth with the offending value."""
    match = MONTH_PATTERN.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise InvalidMonth(_("“%(value)s” is not a month: use the form YYYY-MM, e.g. 2025-03.") % {"value": value})
    year, month = int(match.group(1)), int(match.group(2))
    check_month(year, month)
    return year, month


def month_label(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


@dataclass
class ReportRow:
    """License-days and cost of one SKU in one pool, in one currency, or unpriced when ``currency`` is empty."""

    pool_id: int
    pool_name: str
    sku_id: int
    sku_guid: str
    part_number: str
    product_name: str
    currency: str
    license_days: int = 0
    # Sum of license-days × monthly price. ``exact_cost`` divides it by the days of the month.
    price_days: Decimal = Decimal(0)
    days_in_month: int = 30
    pool_active: bool = True
    # The active pool that took over an inactive pool in a merge, if any.
    merged_into_id: int | None = None
    merged_into_name: str = ""

    @property
    def pool_status(self) -> str:
        """Return the label of the pool's state: active, inactive, or inactive and merged into a named pool."""
        if self.pool_active:
            return _("Active")
        if self.merged_into_id is not None:
            return _("Inactive, merged into %(pool)s (ID %(id)s)") % {
                "pool": self.merged_into_name, "id": self.merged_into_id
            }
        return _("Inactive")

    @property
    def has_price(self) -> bool:
        return bool(self.currency)

    @property
    def exact_cost(self) -> Decimal | None:
        if not self.has_price:
            return None
        return self.price_days / self.days_in_month

    @property
    def cost(self) -> Decimal | None:
        """Cost rounded half-up to cents, or None for license-days without a price."""
        exact = self.exact_cost
        return None if exact is None else round_money(exact)


@dataclass
class CurrencyTotal:
    """Cost of a report in one currency: the sum of the rounded costs of its rows."""

    currency: str
    cost: Decimal


@dataclass
class Report:
    tenant: Tenant
    year: int
    month: int
    first_day: dt.date
    last_day: dt.date
    # The last day charged: the month's last day, or today while the month is in progress.
    charged_through: dt.date | None
    rows: list[ReportRow] = field(default_factory=list)

    @property
    def label(self) -> str:
        return month_label(self.year, self.month)

    @property
    def days_in_month(self) -> int:
        return self.last_day.day

    @property
    def license_days(self) -> int:
        return sum(row.license_days for row in self.rows)

    @property
    def unpriced_license_days(self) -> int:
        return sum(row.license_days for row in self.rows if not row.has_price)

    @property
    def totals(self) -> list[CurrencyTotal]:
        """Total cost per currency, summed from the rounded row costs so that it matches the rows shown.

        Summing exact costs and rounding once could differ from the shown rows by a cent per row.
        """
        sums: dict[str, Decimal] = defaultdict(Decimal)
        for row in self.rows:
            if row.has_price:
                sums[row.currency] += row.cost
        return [CurrencyTotal(currency=currency, cost=sums[currency]) for currency in sorted(sums)]


def _day_span(started_at: dt.datetime, ended_at: dt.datetime | None, first: dt.date, last: dt.date) -> tuple[int, int] | None:
    """Return the 0-based day indexes of the month (first, last inclusive) that an interval covers."""
    start_day = timezone.localtime(started_at, dt.timezone.utc).date()
    if ended_at is None:
        end_day = last
    else:
        end = timezone.localtime(ended_at, dt.timezone.utc)
        end_day = end.date()
        # A half-open interval ending exactly at midnight does not touch the day that starts then.
        if end.time() == dt.time(0) and end > timezone.localtime(started_at, dt.timezone.utc):
            end_day -= dt.timedelta(days=1)
    start_day = max(start_day, first)
    end_day = min(end_day, last)
    if end_day < start_day:
        return None
    return (start_day - first).days, (end_day - first).days


def _charged_days(tenant: Tenant, first: dt.date, last: dt.date) -> dict[tuple[int, int], list[int]]:
    """Count license-days per (pool id, SKU id) and day index, over every interval of the tenant.

    Every pool of the tenant takes part, not only the visible ones, so that a day a user spent partly in
    a pool the reader cannot see is still charged to the right pool and not to the one the reader sees.
    """
    month_start = dt.datetime.combine(first, dt.time(0), tzinfo=dt.timezone.utc)
    month_end = month_start + dt.timedelta(days=(last - first).days + 1)
    intervals = (
        LicenseInterval.objects.filter(tenant=tenant, started_at__lt=month_end)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=month_start))
        .order_by("user_id", "sku_id", "started_at", "pk")
        .values_list("user_id", "sku_id", "pool_id", "started_at", "ended_at")
    )
    days = (last - first).days + 1
    counts: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0] * days)
    for (_user_id, sku_id), group in groupby(intervals.iterator(chunk_size=5000), key=itemgetter(0, 1)):
        # Intervals come sorted by start, so a later interval overwrites the days it shares with an
        # earlier one. Each day thus goes to the interval that started last that day.
        owner: list[int | None] = [None] * days
        for _user, _sku, pool_id, started_at, ended_at in group:
            span = _day_span(started_at, ended_at, first, last)
            if span is None:
                continue
            for index in range(span[0], span[1] + 1):
                owner[index] = pool_id
        for index, pool_id in enumerate(owner):
            if pool_id is not None:
                counts[(pool_id, sku_id)][index] += 1
    return counts


def _daily_prices(tenant: Tenant, sku_ids: set[int], first: dt.date, last: dt.date) -> dict[int, list[SkuPrice | None]]:
    """Map SKU id to the price in effect on each day of the month, None where there is none."""
    prices = SkuPrice.objects.filter(tenant=tenant, sku_id__in=sku_ids, effective_from__lte=last).order_by(
        "sku_id", "effective_from"
    )
    by_sku: dict[int, list[SkuPrice]] = defaultdict(list)
    for price in prices:
        by_sku[price.sku_id].append(price)
    days = (last - first).days + 1
    result: dict[int, list[SkuPrice | None]] = {}
    for sku_id in sku_ids:
        history = by_sku.get(sku_id, [])
        daily: list[SkuPrice | None] = []
        position = -1
        for index in range(days):
            day = first + dt.timedelta(days=index)
            while position + 1 < len(history) and history[position + 1].effective_from <= day:
                position += 1
            daily.append(history[position] if position >= 0 else None)
        result[sku_id] = daily
    return result


def build_report(*, tenant: Tenant, year: int, month: int, pools: QuerySet[Pool], now: dt.datetime | None = None) -> Report:
    """Build the chargeback report of one month for the given pools of the tenant.

    ``pools`` is the reader's scope, from ``rbac.scoping.chargeback_pools_for(user)``, which includes
    inactive pools so that months before a scheme change or a merge keep the pools that held licenses
    then. Pools of other tenants in it are ignored. ``now`` fixes "today" for a month in progress and
    defaults to the current time.
    """
    check_month(year, month)
    first = dt.date(year, month, 1)
    last = dt.date(year, month, calendar.monthrange(year, month)[1])
    today = timezone.localtime(now or timezone.now(), dt.timezone.utc).date()
    charged_last = min(last, today)
    report = Report(
        tenant=tenant, year=year, month=month, first_day=first, last_day=last,
        charged_through=charged_last if charged_last >= first else None,
    )
    if charged_last < first:
        return report

    visible = {
        pool.pk: pool
        for pool in pools.filter(tenant=tenant).select_related("parent", "merged_into", "merged_into__parent")
    }
    counts = _charged_days(tenant, first, charged_last)
    counts = {key: daily for key, daily in counts.items() if key[0] in visible}
    if not counts:
        return report

    sku_ids = {sku_id for _pool_id, sku_id in counts}
    skus = {sku.pk: sku for sku in Sku.objects.filter(pk__in=sku_ids)}
    daily_prices = _daily_prices(tenant, sku_ids, first, charged_last)

    rows: dict[tuple[int, int, str], ReportRow] = {}
    for (pool_id, sku_id), daily in counts.items():
        pool = visible[pool_id]
        row_pool = pool.parent if pool.parent_id and pool.parent_id in visible else pool
        sku = skus[sku_id]
        for index, holders in enumerate(daily):
            if not holders:
                continue
            price = daily_prices[sku_id][index]
            currency = price.currency if price else ""
            key = (row_pool.pk, sku_id, currency)
            row = rows.get(key)
            if row is None:
                successor = row_pool.merged_into if not row_pool.is_active else None
                row = rows[key] = ReportRow(
                    pool_id=row_pool.pk, pool_name=str(row_pool), sku_id=sku_id, sku_guid=str(sku.sku_id),
                    part_number=sku.part_number, product_name=sku.name, currency=currency,
                    days_in_month=report.days_in_month, pool_active=row_pool.is_active,
                    merged_into_id=successor.pk if successor else None,
                    merged_into_name=str(successor) if successor else "",
                )
            row.license_days += holders
            if price is not None:
                row.price_days += holders * price.monthly_price

    report.rows = sorted(
        rows.values(),
        key=lambda row: (
            row.pool_name.casefold(), row.pool_id, row.part_number.casefold(), row.currency == "", row.currency
        ),
    )
    return report
