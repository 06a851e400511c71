"""Form errors that name the field and, where the user typed one, the value.

``NamedErrorsFormMixin`` puts the field's label before each of its errors, so that a message still reads
right where it is shown apart from its field, as pages that redirect with a flash message do. The field
classes below word their messages around the text the user typed, so that together they give, for example,
'Seats: "abc" is not a whole number.'.
"""
from __future__ import annotations

import re

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.forms.utils import pretty_name
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

# Typed text longer than this is cut short in messages, so that a pasted page does not end up in one.
MAX_VALUE_SHOWN = 40


def typed_text(value) -> str:
    text = str(value).strip()
    if len(text) > MAX_VALUE_SHOWN:
        return f"{text[:MAX_VALUE_SHOWN]}…"
    return text


class TypedValueMixin:
    """A form field whose own error messages may use ``%(value)s``, the text the user typed."""

    def clean(self, value):
        try:
            return super().clean(value)
        except ValidationError as exc:
            raise ValidationError([self._with_typed_value(error, value) for error in exc.error_list]) from None

    def _with_typed_value(self, error: ValidationError, value) -> ValidationError:
        # Only the messages this class words itself expect the typed text; Django's own keep their params.
        if error.code not in self.typed_value_messages:
            return error
        params = {**(error.params or {}), "value": typed_text(value)}
        return ValidationError(self.typed_value_messages[error.code], code=error.code, params=params)


LIMIT_MESSAGES = {
    "min_value": _("%(value)s is less than the minimum of %(limit_value)s."),
    "max_value": _("%(value)s is more than the maximum of %(limit_value)s."),
}


class IntegerField(TypedValueMixin, forms.IntegerField):
    typed_value_messages = {"invalid": _('"%(value)s" is not a whole number.'), **LIMIT_MESSAGES}


EXPONENT_NOTATION = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")
ISO_DATE_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}")


def has_exponent(text: str) -> bool:
    """Tell whether ``text`` is a number in exponent notation, such as 1e3, which Python's Decimal accepts."""
    return bool(EXPONENT_NOTATION.fullmatch(text.strip()))


def is_iso_date_shape(text: str) -> bool:
    """Tell whether ``text`` looks like YYYY-MM-DD, so that a failed parse means the day does not exist."""
    return bool(ISO_DATE_SHAPE.fullmatch(text.strip()))


EXPONENT_MESSAGE = _('"%(value)s" uses exponent notation. Enter the number with digits and a decimal point, such '
                     'as 1000.00.')
NO_SUCH_DATE_MESSAGE = _("The date %(value)s does not exist. Check the day and the month.")


class DecimalField(TypedValueMixin, forms.DecimalField):
    """A decimal field that also rejects exponent notation, because "1e3" is more often a typo than 1000."""

    typed_value_messages = {
        "invalid": _('"%(value)s" is not a number.'),
        "exponent": EXPONENT_MESSAGE,
        **LIMIT_MESSAGES,
        "max_digits": ngettext_lazy(
            "%(value)s has more than %(max)s digit.", "%(value)s has more than %(max)s digits.", "max"
        ),
        "max_decimal_places": ngettext_lazy(
            "%(value)s has more than %(max)s decimal place.", "%(value)s has more than %(max)s decimal places.", "max"
        ),
        "max_whole_digits": ngettext_lazy(
            "%(value)s has more than %(max)s digit before the decimal point.",
            "%(value)s has more than %(max)s digits before the decimal point.",
            "max",
        ),
    }


    def to_python(self, value):
        if isinstance(value, str) and has_exponent(value):
            raise ValidationError(EXPONENT_MESSAGE, code="exponent")
        return super().to_python(value)


class DateField(TypedValueMixin, forms.DateField):
    """A date field with a separate error for a day that does not exist, such as 2026-02-30, and for a wrong format."""

    typed_value_messages = {
        "invalid": _('"%(value)s" is not a date. Enter it as YYYY-MM-DD.'),
        "no_such_date": NO_SUCH_DATE_MESSAGE,
    }

    def to_python(self, value):
        try:
            return super().to_python(value)
        except ValidationError as exc:
            if isinstance(value, str) and is_iso_date_shape(value):
                raise ValidationError(NO_SUCH_DATE_MESSAGE, code="no_such_date") from exc
            raise


class NamedErrorsFormMixin:
    """A form that puts the field's label before each of the field's errors."""

    def error_label(self, name: str) -> str:
        """Return the name that error messages give field ``name``; a form may override it to use cleaned data."""
        return str(self.fields[name].label or pretty_name(name))

    def add_error(self, field, error) -> None:
        if not isinstance(error, ValidationError):
            error = ValidationError(error)
        if field is None and hasattr(error, "error_dict"):
            for name, errors in error.error_dict.items():
                self.add_error(name, ValidationError(errors))
            return
        if field is None or field == NON_FIELD_ERRORS or field not in self.fields:
            super().add_error(field, error)
            return

        label = self.error_label(field)
        named = [
            ValidationError(
                _("%(field)s: %(message)s"), code=item.code, params={"field": label, "message": " ".join(item.messages)}
            )
            for item in error.error_list
        ]
        super().add_error(field, named)
