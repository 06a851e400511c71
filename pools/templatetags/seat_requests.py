"""Template tags of seat requests: the pending-request count shown to tenant administrators."""
from django import template

from pools.seat_requests import pending_count

register = template.Library()


@register.simple_tag(takes_context=True)
def pending_seat_requests(context, tenant) -> int:
    """Return the tenant's pending seat requests when the signed-in user administers it, else 0."""
    request = context.get("request")
    if request is None:
        return 0
    return pending_count(request.user, tenant)
