"""Template filters that render prices and costs in the reader's number format."""
from decimal import Decimal

from babel.numbers import get_currency_precision
from django import template
from django.utils.formats import number_format

from graphsync.currencies import is_iso_code

register = template.Library()


@register.filter
def price(value: Decimal | None) -> str:
    """Render a price with at least two and at most four decimal places, as stored."""
    if value is None:
        return ""
    exponent = value.normalize().as_tuple().exponent
    places = min(max(2, -exponent if isinstance(exponent, int) else 2), 4)
    return number_format(value, decimal_pos=places, use_l10n=True, force_grouping=True)


@register.filter
def money(value: Decimal | None) -> str:
    """Render an amount rounded to cents."""
    if value is None:
        return ""
    return number_format(value, decimal_pos=2, use_l10n=True, force_grouping=True)


@register.filter
def amount(value: Decimal | None, currency: str) -> str:
    """Render an amount in ``currency`` with at least the currency's minor units (0 for JPY, 2 for EUR, 3 for
    KWD, from babel's copy of the CLDR data) and any further stored decimal places, up to four."""
    if value is None:
        return ""
    places = get_currency_precision(currency) if is_iso_code(currency) else 2
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        places = min(-exponent, max(places, 4))
    return number_format(value, decimal_pos=places, use_l10n=True, force_grouping=True)
