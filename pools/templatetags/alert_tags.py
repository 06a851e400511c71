"""Template tags for alerts and drift: the navigation link, and the drift, licensing error and alert
sections of the pool and tenant pages. Each reads through the scoping path, so it shows only what the
signed-in user may see."""
from django import template
from django.db.models import Count

from pools import drift
from pools.alerts import license_error_rows, visible_alerts
from pools.notifications import ERROR_EXPLANATIONS, explain_error
from rbac import scoping

register = template.Library()


def _user(context):
    request = context.get("request")
    return request.user if request is not None else None


@register.inclusion_tag("pools/alerts/_nav.html", takes_context=True)
def alerts_nav(context):
    """Render the navigation link to the alerts page with the number of open alerts the user may see."""
    user = _user(context)
    if user is None or not user.is_authenticated:
        return {"show": False}
    return {"show": True, "count": visible_alerts(user).filter(resolved_at__isnull=True).count()}


@register.inclusion_tag("pools/drift/_section.html", takes_context=True)
def pool_drift(context, pool):
    """Render the pool's assignments made outside the portal, with adopt and refer buttons for administrators."""
    user = _user(context)
    return {
        "pool": pool,
        "lines": drift.pool_drift(pool),
        "can_administer": user is not None and scoping.can_administer_tenant(user, pool.tenant),
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("pools/alerts/_license_errors.html")
def pool_license_errors(pool):
    """Render the licensing errors Graph reports for the pool's members, with a plain explanation per code."""
    rows = list(
        license_error_rows(pool.tenant, pool.subtree_ids())
        .select_related("user", "sku")
        .order_by("sku__part_number", "user__user_principal_name")
    )
    names = drift.group_names(pool.tenant, [row.assigned_by_group for row in rows])
    for row in rows:
        row.group_name = names.get(row.assigned_by_group, "")
        row.is_known_error = row.error in ERROR_EXPLANATIONS
        row.explanation = explain_error(row.error)
    return {"pool": pool, "rows": rows}


@register.inclusion_tag("pools/alerts/_tenant_summary.html", takes_context=True)
def tenant_alerts_summary(context, tenant):
    """Render the number of open alerts of the tenant per kind, linking to its alerts page."""
    user = _user(context)
    alerts = visible_alerts(user).filter(tenant=tenant, resolved_at__isnull=True) if user else None
    kinds = []
    if alerts is not None:
        from pools.choices import AlertKind

        labels = dict(AlertKind.choices)
        kinds = [
            {"label": labels.get(row["kind"], row["kind"]), "count": row["count"]}
            for row in alerts.values("kind").annotate(count=Count("pk")).order_by("kind")
        ]
    return {"tenant": tenant, "kinds": kinds, "total": sum(item["count"] for item in kinds)}
