"""Alert e-mails: who receives each alert, the e-mail sent when an alert is raised, the daily digest and
the drift referral.

Alerts about a pool go to its managers: users and groups holding ``pools.manage_pool`` on the pool or
its level-1 parent, or ``graphsync.manage_pools`` on the tenant. A pool without a manager falls back to
the tenant administrators (``graphsync.administer_tenant``), who also receive every tenant-wide alert and
the pool alerts only they can fix (over allotment, assignments made outside the portal). Users whose
AlertPreference requests a daily digest get no e-mail per alert; their digest lists the alerts their
alerts page shows.
"""
from __future__ import annotations

import logging
import smtplib
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.utils.translation import ngettext
from guardian.shortcuts import get_users_with_perms

from graphsync.models import Tenant
from licensepools.links import portal_url

from .models import Alert, AlertPreference, Pool

logger = logging.getLogger(__name__)

# Plain explanations of Graph's licenseAssignmentStates.error codes. A code missing here is shown as received.
ERROR_EXPLANATIONS = {
    "CountViolation": gettext_lazy(
        "The tenant has no free unit of this product, so the group could not give the user a seat. Buy more units or "
        "free one; Microsoft 365 then retries, or reprocess the user's group licenses."
    ),
    "MutuallyExclusiveViolation": gettext_lazy(
        "A service plan of this product cannot be combined with a service plan the user already has from another "
        "license. Remove one of the two licenses or disable the conflicting plan."
    ),
    "DependencyViolation": gettext_lazy(
        "A service plan of this product needs another service plan that the user does not have. Assign the product "
        "that contains the required plan first."
    ),
    "ProhibitedInUsageLocationViolation": gettext_lazy(
        "This product is not available in the user's usage location. Change the usage location or use another product."
    ),
    "UniquenessViolation": gettext_lazy(
        "A value that Microsoft 365 requires to be unique, such as a proxy address, is already used by another "
        "object. Fix the duplicate value in Entra ID or Exchange."
    ),
    "Other": gettext_lazy(
        "Microsoft 365 reported another problem with this assignment. Check the user's licenses in the Microsoft 365 "
        "admin center."
    ),
}
# Graph's older documentation spelled it "Others"; both mean the same.
ERROR_EXPLANATIONS["Others"] = ERROR_EXPLANATIONS["Other"]


def explain_error(code: str) -> str:
    """Return a plain explanation of a licensing error code, or a note that the code is unknown."""
    explanation = ERROR_EXPLANATIONS.get(code)
    if explanation is not None:
        return str(explanation)
    return _("The portal does not know this error code; it is shown exactly as Microsoft Graph reported it.")


# Recipients


def tenant_administrators(tenant: Tenant) -> list[AbstractBaseUser]:
    """Active portal users holding ``administer_tenant`` on the tenant, directly or through a group."""
    users = get_users_with_perms(tenant, only_with_perms_in=["administer_tenant"], with_group_users=True)
    return list(users.filter(is_active=True).order_by("pk"))


def pool_managers(pool: Pool) -> list[AbstractBaseUser]:
    """Active portal users who manage the pool: on the pool, on its level-1 parent, or tenant-wide.

    The tenant administrator role also carries ``manage_pools``; administrators are left out of the
    tenant-wide managers because they are the fallback for a pool nobody manages.
    """
    user_pks: set[int] = set()
    for obj in [pool, pool.parent] if pool.parent_id else [pool]:
        user_pks |= set(
            get_users_with_perms(obj, only_with_perms_in=["manage_pool"], with_group_users=True).values_list("pk", flat=True)
        )
    tenant_wide = set(
        get_users_with_perms(pool.tenant, only_with_perms_in=["manage_pools"], with_group_users=True).values_list(
            "pk", flat=True
        )
    )
    administrators = {user.pk for user in tenant_administrators(pool.tenant)}
    user_pks |= tenant_wide - administrators
    return list(get_user_model().objects.filter(pk__in=user_pks, is_active=True).order_by("pk"))


class RecipientCache:
    """Recipients per pool and tenant, computed once per batch of alerts."""

    def __init__(self) -> None:
        self._pools: dict[int, list[AbstractBaseUser]] = {}
        self._tenants: dict[int, list[AbstractBaseUser]] = {}

    def administrators(self, tenant: Tenant) -> list[AbstractBaseUser]:
        if tenant.pk not in self._tenants:
            self._tenants[tenant.pk] = tenant_administrators(tenant)
        return self._tenants[tenant.pk]

    def for_alert(self, alert: Alert) -> list[AbstractBaseUser]:
        """Return the users who receive ``alert``, each user once.

        Pool kinds go to the pool's managers, and those a tenant administrator must act on go to the
        administrators too. Other kinds, and pool kinds of a pool nobody manages, go to the administrators.
        """
        from .alerts import ADMINISTRATOR_ACTION_KINDS, POOL_KINDS

        if alert.kind in POOL_KINDS and alert.pool_id is not None:
            if alert.pool_id not in self._pools:
                self._pools[alert.pool_id] = pool_managers(alert.pool)
            managers = self._pools[alert.pool_id]
            if managers and alert.kind in ADMINISTRATOR_ACTION_KINDS:
                manager_pks = {user.pk for user in managers}
                return managers + [user for user in self.administrators(alert.tenant) if user.pk not in manager_pks]
            if managers:
                return managers
        return self.administrators(alert.tenant)


def _digest_user_pks(users: list[AbstractBaseUser]) -> set[int]:
    return set(
        AlertPreference.objects.filter(user__in=users, daily_digest=True).values_list("user_id", flat=True)
    )


# Links


def absolute_url(path: str) -> str:
    """Return the absolute URL of ``path`` under the PORTAL_BASE_URL setting, for links in e-mails."""
    return portal_url(path)


def alert_url(alert: Alert) -> str:
    """Link an alert to its pool's page, or to the tenant's alerts page for a tenant-wide alert."""
    from .alerts import POOL_KINDS

    if alert.kind in POOL_KINDS and alert.pool_id is not None:
        return absolute_url(reverse("pools:pool", kwargs={"pool_pk": alert.pool_id}))
    return absolute_url(reverse("pools:tenant_alerts", kwargs={"tenant_pk": alert.tenant_id}))


# Sending


def _message(subject: str, template: str, context: dict, recipient: str, connection) -> EmailMultiAlternatives:
    text = render_to_string(f"email/{template}.txt", context)
    html = render_to_string(f"email/{template}.html", context)
    message = EmailMultiAlternatives(subject, text, None, [recipient], connection=connection)
    message.attach_alternative(html, "text/html")
    return message


def _send(messages: list[EmailMultiAlternatives], *, what: str) -> bool:
    """Send ``messages`` on one connection; log and return False when the mail server fails."""
    if not messages:
        return False
    try:
        messages[0].connection.send_messages(messages)
    except (smtplib.SMTPException, OSError) as exc:
        # Alerts stay in the portal; a mail failure must not undo the change or the evaluation behind them.
        logger.error("Sending %s to %s recipients failed: %s", what, len(messages), exc)
        return False
    return True


def alert_subject(alert: Alert) -> str:
    if alert.pool_id is not None:
        return _("[%(tenant)s] %(kind)s: %(pool)s") % {
            "tenant": alert.tenant.name, "kind": alert.get_kind_display(), "pool": str(alert.pool),
        }
    return _("[%(tenant)s] %(kind)s") % {"tenant": alert.tenant.name, "kind": alert.get_kind_display()}


def send_raised_alerts(alert_pks: list[int]) -> int:
    """E-mail each newly raised alert once to its recipients without a daily digest; return the e-mails sent.

    An alert whose recipients all chose the digest is left for the digest; ``emailed_at`` records a send.
    """
    alerts = Alert.objects.filter(pk__in=alert_pks, emailed_at__isnull=True).select_related(
        "tenant", "pool", "pool__parent"
    )
    cache = RecipientCache()
    connection = get_connection()
    sent = 0
    for alert in alerts:
        recipients = cache.for_alert(alert)
        digest = _digest_user_pks(recipients)
        addresses = sorted({user.email for user in recipients if user.email and user.pk not in digest})
        if not addresses:
            if not recipients:
                logger.warning(
                    "Alert %s (%s) of tenant %s, pool %s: nobody manages the pool or administers the tenant",
                    alert.pk, alert.kind, alert.tenant_id, alert.pool_id,
                )
            continue
        context = {"alert": alert, "tenant": alert.tenant, "pool": alert.pool, "url": alert_url(alert)}
        subject = alert_subject(alert)
        messages = [_message(subject, "alert", context, address, connection) for address in addresses]
        if _send(messages, what=f"alert {alert.pk} of tenant {alert.tenant_id}"):
            Alert.objects.filter(pk=alert.pk).update(emailed_at=timezone.now())
            sent += len(messages)
            logger.info("Alert %s (%s) of tenant %s e-mailed to %s recipients", alert.pk, alert.kind, alert.tenant_id, len(messages))
    return sent


def send_drift_referral(*, pool: Pool, line, recipients: list[AbstractBaseUser], acting_user: AbstractBaseUser) -> list[str]:
    """E-mail the pool's managers the drift a tenant administrator referred to them; return the addresses."""
    addresses = sorted({user.email for user in recipients if user.email})
    context = {
        "pool": pool,
        "tenant": pool.tenant,
        "line": line,
        "referred_by": acting_user.get_username(),
        "url": absolute_url(reverse("pools:pool", kwargs={"pool_pk": pool.pk}) + "#drift"),
    }
    subject = ngettext(
        "[%(tenant)s] %(count)s assignment of %(sku)s in %(pool)s made outside the portal",
        "[%(tenant)s] %(count)s assignments of %(sku)s in %(pool)s made outside the portal",
        len(line.assignments),
    ) % {"tenant": pool.tenant.name, "count": len(line.assignments), "sku": line.sku.name, "pool": str(pool)}
    connection = get_connection()
    messages = [_message(subject, "drift_referral", context, address, connection) for address in addresses]
    return addresses if _send(messages, what=f"the drift referral of pool {pool.pk} (tenant {pool.tenant_id})") else []


# Daily digest

# A digest is not sent twice within this time, so running the task again on the same day does nothing.
DIGEST_MIN_INTERVAL = timedelta(hours=20)


def send_digests(now=None) -> int:
    """Send the daily digest to every active user who chose it and has alerts; return the digests sent.

    A digest lists the alerts raised since the user's previous digest (or in the last day) and every alert
    still open, among the alerts the user's alerts page shows, so its open alerts match that page.
    """
    now = now or timezone.now()
    preferences = list(
        AlertPreference.objects.filter(daily_digest=True, user__is_active=True)
        .exclude(user__email="")
        .filter(Q(last_digest_sent_at__isnull=True) | Q(last_digest_sent_at__lte=now - DIGEST_MIN_INTERVAL))
        .select_related("user")
    )
    if not preferences:
        return 0
    from .alerts import visible_alerts

    connection = get_connection()
    sent = 0
    for preference in preferences:
        since = preference.last_digest_sent_at or now - timedelta(days=1)
        alerts = list(
            visible_alerts(preference.user)
            .filter(Q(resolved_at__isnull=True) | Q(raised_at__gt=since))
            .select_related("tenant", "pool", "pool__parent")
            .order_by("tenant__name", "-severity", "-raised_at")
        )
        new = [alert for alert in alerts if alert.raised_at > since]
        still_open = [alert for alert in alerts if alert.resolved_at is None and alert.raised_at <= since]
        if not new and not still_open:
            continue
        context = {
            "user": preference.user,
            "new": [{"alert": alert, "url": alert_url(alert)} for alert in new],
            "still_open": [{"alert": alert, "url": alert_url(alert)} for alert in still_open],
            "since": since,
            "preferences_url": absolute_url(reverse("pools:alert_preferences")),
        }
        subject = _("License Pools daily digest: %(new)s new, %(open)s still open") % {
            "new": len(new), "open": len(still_open),
        }
        message = _message(subject, "digest", context, preference.user.email, connection)
        if _send([message], what=f"the daily digest of user {preference.user_id}"):
            AlertPreference.objects.filter(pk=preference.pk).update(last_digest_sent_at=now)
            sent += 1
    logger.info("Sent %s daily alert digests", sent)
    return sent
