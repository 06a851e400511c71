"""ISO 4217 currency codes, checked against the list of current codes in the pycountry package.

pycountry (pinned in pyproject.toml) ships Debian's iso-codes data, which follows the amendments of the ISO 4217
maintenance agency. Codes that ISO withdrew, such as HRK, are not in it.
"""
from __future__ import annotations

import pycountry
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

INVALID_CURRENCY_MESSAGE = _('"%(value)s" is not an ISO 4217 currency code. Enter a current code such as EUR or USD.')
NOT_MONEY_MESSAGE = _(
    '"%(value)s" is an ISO 4217 code for a precious metal, a unit of account, testing or "no currency", and no '
    "price can be paid in it. Enter a currency code such as EUR or USD."
)

# Codes in the ISO 4217 list that name no currency a bill is paid in. They are XXX (no currency), XTS (testing),
# the precious metals gold, silver, platinum and palladium, and the European bond market units. The rest are the
# units of account of the IMF (XDR), ALBA (XSU), the African Development Bank (XUA) and the Arab Monetary Fund (XAD).
NOT_MONEY_CODES = frozenset({
    "XXX", "XTS", "XAU", "XAG", "XPT", "XPD", "XBA", "XBB", "XBC", "XBD", "XDR", "XSU", "XUA", "XAD",
})


def is_iso_code(value: str) -> bool:
    """Tell whether ``value`` is in the current ISO 4217 list, in any letter case, money or not."""
    if len(value) != 3 or not value.isascii() or not value.isalpha():
        return False
    return pycountry.currencies.get(alpha_3=value.upper()) is not None


def is_currency_code(value: str) -> bool:
    """Tell whether ``value`` is a current ISO 4217 code of a currency that prices can be paid in."""
    return is_iso_code(value) and value.upper() not in NOT_MONEY_CODES


def validate_currency_code(value: str) -> None:
    if not is_iso_code(value):
        raise ValidationError(INVALID_CURRENCY_MESSAGE, code="invalid_currency", params={"value": value})
    if value.upper() in NOT_MONEY_CODES:
        raise ValidationError(NOT_MONEY_MESSAGE, code="not_money", params={"value": value})
