"""ISO 4217 currency codes, checked against the list of current codes in the pycountry package.

pycountry (pinned in pyproject.toml) ships Debian's iso-codes data, which follows the amendments of the ISO 4217
maintenance agency. Codes that ISO withdrew, such as HRK, are not in it.
"""
from __future__ import annotations

import pycountry
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

INVALID_CURRENCY_MESSAGE = _('"%(value)s" is not an ISO 4217 currency code. Enter a current code such as EUR or USD.')


def is_currency_code(value: str) -> bool:
    """Tell whether ``value`` is a current ISO 4217 alphabetic code, in any letter case."""
    if len(value) != 3 or not value.isascii() or not value.isalpha():
        return False
    return pycountry.currencies.get(alpha_3=value.upper()) is not None


def validate_currency_code(value: str) -> None:
    if not is_currency_code(value):
        raise ValidationError(INVALID_CURRENCY_MESSAGE, code="invalid_currency", params={"value": value})
