"""English short date-times always show their minutes and keep Django's US date order."""
from __future__ import annotations

import datetime

import pytest
from django.template import Context, Template
from django.utils import translation


def render_date(value, format_name: str) -> str:
    template = Template('{{ value|date:"' + format_name + '" }}')
    with translation.override("en"):
        return template.render(Context({"value": value}))


@pytest.mark.parametrize(
    ("hour", "expected"),
    [
        (1, "12/05/2026 1:00 a.m."),
        (0, "12/05/2026 12:00 a.m."),
        (12, "12/05/2026 12:00 p.m."),
        (13, "12/05/2026 1:00 p.m."),
    ],
)
def test_short_datetime_shows_minutes(hour, expected):
    value = datetime.datetime(2026, 12, 5, hour, 0, tzinfo=datetime.timezone.utc)

    assert render_date(value, "SHORT_DATETIME_FORMAT") == expected


def test_short_datetime_keeps_nonzero_minutes():
    value = datetime.datetime(2026, 12, 5, 13, 7, tzinfo=datetime.timezone.utc)

    assert render_date(value, "SHORT_DATETIME_FORMAT") == "12/05/2026 1:07 p.m."


def test_short_date_keeps_us_order():
    assert render_date(datetime.date(2026, 12, 5), "SHORT_DATE_FORMAT") == "12/05/2026"


def test_datetime_format_shows_minutes():
    value = datetime.datetime(2026, 12, 5, 1, 0, tzinfo=datetime.timezone.utc)

    assert render_date(value, "DATETIME_FORMAT") == "Dec. 5, 2026, 1:00 a.m."
