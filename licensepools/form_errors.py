"""Form errors that name the field and, where the user typed one, the value.

``NamedErrorsFormMixin`` puts the field's label before each of its errors, so that a message still reads
right where it is shown apart from its field, as pages that redirect with a flash message do. The field
classes below word their messages around the text the user typed, so that together they give, for example,
'Seats: "abc" is not a whole number.'.
"""
from __future__ import annotations

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


class DecimalField(TypedValueMixin, forms.DecimalField):
    typed_value_messages = {
        "invalid": _('"%(value)s" is not a number.'),
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


class DateField(TypedValueMixin, forms.DateField):
    typed_value_messages = {"invalid": _('"%(value)s" is not a date. Enter it as YYYY-MM-DD.')}


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
