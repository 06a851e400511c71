"""The range of dates that purchases and SKU prices may carry, shared by the forms, the API and the services.

A date before 2000-01-01 predates every Microsoft 365 license, because Office 365 launched in 2011. A date more
than a year ahead lies beyond any price list or order. Both are typing mistakes, such as 1899 or 2999.
"""
from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

EARLIEST_DATE = dt.date(2000, 1, 1)

OUT_OF_RANGE_MESSAGE = _("%(value)s is outside the allowed range. Enter a date from %(earliest)s to %(latest)s.")


def one_year_after(day: dt.date) -> dt.date:
    """Return the same day a year later, or 28 February for 29 February."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day.replace(year=day.year + 1, day=28)


def validate_date_range(value: dt.date, *, future_allowed: bool) -> None:
    """Raise ValidationError unless ``value`` lies from 2000-01-01 to today, or to a year from today."""
    today = timezone.localdate()
    latest = one_year_after(today) if future_allowed else today
    if EARLIEST_DATE <= value <= latest:
        return
    raise ValidationError(
        OUT_OF_RANGE_MESSAGE,
        code="date_out_of_range",
        params={"value": value.isoformat(), "earliest": EARLIEST_DATE.isoformat(), "latest": latest.isoformat()},
    )


def validate_purchase_date(value: dt.date) -> None:
    """Reject a purchase date before 2000-01-01 or after today, because a purchase is recorded once made."""
    validate_date_range(value, future_allowed=False)


def validate_effective_date(value: dt.date) -> None:
    """Reject a price's effective date before 2000-01-01 or more than a year from today."""
    validate_date_range(value, future_allowed=True)
