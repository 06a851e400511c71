"""Template filters that render prices and costs in the reader's number format."""
from decimal import Decimal

from django import template
from django.utils.formats import number_format

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
