"""Template tags of movers: the users a sync moved into or out of a pool."""
from datetime import timedelta

from django import template
from django.utils import timezone

from pools.movers import RECENT_MOVES_DAYS, recent_moves

register = template.Library()


@register.inclusion_tag("pools/_movers.html")
def pool_movers(pool):
    """Render the moves into and out of the pool in the last RECENT_MOVES_DAYS days."""
    return {
        "pool": pool,
        "moves": recent_moves(pool),
        "since": timezone.now() - timedelta(days=RECENT_MOVES_DAYS),
    }
