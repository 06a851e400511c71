"""Template tags of the portal's page layout."""
from django import template

from pools.overview import tenants_in_scope

register = template.Library()


@register.inclusion_tag("includes/nav_tenants.html", takes_context=True)
def tenant_menus(context):
    """Render one menu per tenant in the signed-in user's scope, so every page extending the base shows it."""
    request = context.get("request")
    if request is None or not request.user.is_authenticated:
        return {"scopes": []}
    return {"scopes": tenants_in_scope(request.user)}
