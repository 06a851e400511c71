"""Alert recipients: pool alerts a tenant administrator must act on reach the administrators too, once."""
import re

from pools.alerts import evaluate_tenant, visible_alerts
from pools.choices import AlertKind
from pools.models import AlertPreference
from pools.notifications import send_digests
from pools.services import set_allotment

from tests.test_alerts import (  # noqa: F401
    admin, consumption, emulator_snapshot, mails_with_subject, manager, open_alert, pool, sku_named,
)


def over_allotment(tenant, admin, pool):
    sku = sku_named(tenant, "SPE_E3")
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=consumption(pool, sku) - 1)
    return sku


def test_over_allotment_mailed_to_both(synced_tenant, admin, pool, manager, mailoutbox):
    over_allotment(synced_tenant, admin, pool)

    evaluate_tenant(synced_tenant)

    mails = mails_with_subject(mailoutbox, f"[{synced_tenant.name}] Pool over allotment: {pool}")
    assert sorted(mail.to[0] for mail in mails) == ["admin@example.com", "manager@example.com"]
    assert open_alert(AlertKind.POOL_OVER_ALLOTMENT, pool=pool).emailed_at is not None


def test_spare_low_stays_with_manager(synced_tenant, admin, pool, manager, mailoutbox):
    sku = sku_named(synced_tenant, "SPE_E3")
    pool.spare_alert_count = 3
    pool.save()
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=consumption(pool, sku) + 1)

    evaluate_tenant(synced_tenant)

    mails = mails_with_subject(mailoutbox, f"[{synced_tenant.name}] Pool spare low: {pool}")
    assert [mail.to for mail in mails] == [["manager@example.com"]]


def test_admin_managing_pool_mailed_once(synced_tenant, admin, pool, mailoutbox):
    from rbac.services import grant_role

    grant_role(acting_user=None, user=admin, role="pool_manager", tenant=synced_tenant, pool=pool)
    over_allotment(synced_tenant, admin, pool)

    evaluate_tenant(synced_tenant)

    mails = mails_with_subject(mailoutbox, f"[{synced_tenant.name}] Pool over allotment: {pool}")
    assert [mail.to for mail in mails] == [["admin@example.com"]]


def test_admin_digest_matches_alerts_page(synced_tenant, admin, pool, manager, mailoutbox, client):
    AlertPreference.objects.create(user=admin, daily_digest=True)
    over_allotment(synced_tenant, admin, pool)

    evaluate_tenant(synced_tenant)

    assert [mail for mail in mailoutbox if mail.to == ["admin@example.com"]] == []
    assert mails_with_subject(mailoutbox, f"[{synced_tenant.name}] Pool over allotment: {pool}")[0].to == [
        "manager@example.com"
    ]
    visible_open = visible_alerts(admin).filter(resolved_at__isnull=True)
    assert visible_open.filter(pool=pool, kind=AlertKind.POOL_OVER_ALLOTMENT).exists()

    mailoutbox.clear()
    assert send_digests() == 1

    digest = mailoutbox[0]
    assert digest.to == ["admin@example.com"]
    assert digest.subject == f"License Pools daily digest: {visible_open.count()} new, 0 still open"
    assert open_alert(AlertKind.POOL_OVER_ALLOTMENT, pool=pool).message in digest.body
    client.force_login(admin)
    page = client.get("/alerts/").content.decode()
    assert visible_open.count() <= 50, "the alerts page shows 50 alerts per page"
    assert len(re.findall(r'<tr class="alert-\w+" id="alert-\d+">', page)) == visible_open.count()
