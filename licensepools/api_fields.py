"""API serializer fields whose errors name the value and what to enter, like the web forms' fields."""
from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from licensepools.form_errors import has_exponent, is_iso_date_shape


class PlainDecimalField(serializers.DecimalField):
    """A decimal that rejects exponent notation: "1e3" as a price is more often a typo than 1000."""

    default_error_messages = {
        "exponent": _('"{value}" uses exponent notation. Send the number with digits and a decimal point, such as '
                      '"1000.00".'),
    }

    def to_internal_value(self, data):
        if isinstance(data, str) and has_exponent(data):
            self.fail("exponent", value=data.strip()[:40])
        return super().to_internal_value(data)


class CalendarDateField(serializers.DateField):
    """A YYYY-MM-DD date with a separate error for a day that does not exist, such as 2026-02-30, and for a wrong format."""

    default_error_messages = {
        "no_such_date": _("The date {value} does not exist. Check the day and the month."),
    }

    def to_internal_value(self, value):
        try:
            return super().to_internal_value(value)
        except serializers.ValidationError:
            if isinstance(value, str) and is_iso_date_shape(value):
                self.fail("no_such_date", value=value.strip())
            raise
