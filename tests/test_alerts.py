"""Alerts: each kind raised, deduplicated and resolved; e-mail recipients; the daily digest; the pages."""
import time

import pytest
from django.utils import formats, timezone

from graphsync.models import DirectoryUser, Sku, UserLicense
from graphsync.testing import control
from pools.alerts import POOL_KINDS, evaluate_tenant
from pools.choices import AlertKind, PoolAttribute, RequestStatus
from pools.models import Alert, AlertPreference, Pool, SeatRequest
from pools.notifications import send_digests
from pools.services import assign_license, set_allotment, set_scheme

from conftest import require, sync_now


@pytest.fixture
def emulator_snapshot():
    from graphsync.emulator.generator import generate_tenant

    return generate_tenant(users=200, seed=11)


@pytest.fixture
def admin(make_portal_user, synced_tenant):
    user = make_portal_user("admin", role="tenant_admin", tenant=synced_tenant)
    user.email = "admin@example.com"
    user.save()
    return user


@pytest.fixture
def pool(synced_tenant, admin):
    """One pool holding every user: the scheme splits on the UPN domain, which all users share."""
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.UPN_DOMAIN)
    return Pool.objects.filter(tenant=synced_tenant, parent=None, is_unassigned=False).order_by("-pk").first()


@pytest.fixture
def manager(make_portal_user, pool):
    user = make_portal_user("manager", role="pool_manager", pool=pool)
    user.email = "manager@example.com"
    user.save()
    return user


def sku_named(tenant, part_number: str) -> Sku:
    return Sku.objects.get(tenant=tenant, part_number=part_number)


def consumption(pool: Pool, sku: Sku) -> int:
    return pool.members_queryset().filter(licenses__sku=sku).exclude(licenses__state="Error").distinct().count()


def open_alert(kind: str, **lookup) -> Alert:
    return Alert.objects.get(kind=kind, resolved_at__isnull=True, **lookup)


def mails_with_subject(mailoutbox, subject: str) -> list:
    return [mail for mail in mailoutbox if mail.subject == subject]


@pytest.fixture
def eager_tasks(monkeypatch):
    """Run Celery tasks in the calling process, as the embedded default does without a broker."""
    from licensepools.celery import app

    # The app reads Django settings with the CELERY_ namespace, so the setting has the namespaced name.
    monkeypatch.setattr(app.conf, "CELERY_TASK_ALWAYS_EAGER", True)


@pytest.fixture
def queued_tasks(monkeypatch, settings):
    """Record each pool and SKU evaluation queued, without sending it to the broker, and return the list.

    The pending marks are real ones in Redis. Marks left by earlier runs are cleared first.
    """
    import redis

    from licensepools.celery import app
    from pools import alert_tasks

    broker = settings.CELERY_BROKER_URL
    try:
        if broker.startswith("redis"):
            redis.Redis.from_url(broker, socket_connect_timeout=1).ping()
    except redis.RedisError:
        broker = ""
    require(broker.startswith("redis"), "This test needs Redis: set CELERY_BROKER_URL=redis://127.0.0.1:6379/15.")
    store = alert_tasks._pending_store()
    for key in store.scan_iter(alert_tasks.PENDING_KEY.format(pool_pk="*", sku_pk="*")):
        store.delete(key)
    monkeypatch.setattr(app.conf, "CELERY_TASK_ALWAYS_EAGER", False)
    queued: list[tuple] = []
    monkeypatch.setattr(
        alert_tasks.evaluate_pool_sku_alerts_task, "apply_async",
        lambda args, **options: queued.append((tuple(args), options)),
    )
    return queued


def test_spare_low_lifecycle(synced_tenant, admin, pool):
    sku = sku_named(synced_tenant, "SPE_E3")
    used = consumption(pool, sku)
    pool.spare_alert_count = 3
    pool.save()
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=used + 2)

    evaluate_tenant(synced_tenant)
    alert = open_alert(AlertKind.POOL_SPARE_LOW, pool=pool)
    assert alert.message == (
        f"Pool {pool} has 2 spare seats of Microsoft 365 E3 left ({used + 2} allotted, {used} in use), fewer than "
        "its alert threshold of 3."
    )
    first_seen = alert.last_seen_at

    result = evaluate_tenant(synced_tenant)
    assert alert.pk not in [item.pk for item in result.raised]
    assert Alert.objects.filter(kind=AlertKind.POOL_SPARE_LOW).count() == 1
    alert.refresh_from_db()
    assert alert.last_seen_at > first_seen

    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=used + 10)
    evaluate_tenant(synced_tenant)
    alert.refresh_from_db()
    assert alert.resolved_at is not None


def test_spare_low_by_percent(synced_tenant, admin, pool):
    sku = sku_named(synced_tenant, "SPE_E3")
    used = consumption(pool, sku)
    pool.spare_alert_percent = 50
    pool.save()
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=used + 1)

    evaluate_tenant(synced_tenant)

    alert = open_alert(AlertKind.POOL_SPARE_LOW, pool=pool)
    assert alert.details["threshold"] == -(-(used + 1) * 50 // 100)


def test_allotment_change_evaluates_after_commit(
    synced_tenant, admin, pool, eager_tasks, django_capture_on_commit_callbacks
):
    sku = sku_named(synced_tenant, "SPE_E3")
    used = consumption(pool, sku)
    pool.spare_alert_count = 3
    pool.save()

    with django_capture_on_commit_callbacks(execute=True):
        set_allotment(acting_user=admin, pool=pool, sku=sku, seats=used + 1)
    assert open_alert(AlertKind.POOL_SPARE_LOW, pool=pool).details["spare"] == 1

    with django_capture_on_commit_callbacks(execute=True):
        set_allotment(acting_user=admin, pool=pool, sku=sku, seats=used + 5)
    assert not Alert.objects.filter(kind=AlertKind.POOL_SPARE_LOW, resolved_at__isnull=True).exists()


def test_assignment_evaluates_after_commit(
    emulator, synced_tenant, admin, pool, manager, eager_tasks, django_capture_on_commit_callbacks
):
    sku = sku_named(synced_tenant, "SPE_E3")
    pool.spare_alert_count = 1
    pool.save()
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=consumption(pool, sku) + 1)
    user = pool.members_queryset().exclude(usage_location="").exclude(licenses__isnull=False).order_by("pk").first()

    with django_capture_on_commit_callbacks(execute=True):
        assign_license(acting_user=manager, pool=pool, user=user, sku=sku)

    assert open_alert(AlertKind.POOL_SPARE_LOW, pool=pool).details["spare"] == 0


def test_changes_queue_one_evaluation(synced_tenant, admin, pool, queued_tasks, django_capture_on_commit_callbacks):
    from pools.alert_tasks import POOL_SKU_EVALUATION_DELAY_SECONDS

    sku = sku_named(synced_tenant, "SPE_E3")
    used = consumption(pool, sku)

    with django_capture_on_commit_callbacks(execute=True):
        for seats in range(used + 10, used + 13):
            set_allotment(acting_user=admin, pool=pool, sku=sku, seats=seats)

    assert len(queued_tasks) == 1
    args, options = queued_tasks[0]
    assert args == (pool.pk, sku.pk)
    assert options["countdown"] == POOL_SKU_EVALUATION_DELAY_SECONDS


def test_evaluation_start_allows_next(synced_tenant, admin, pool, queued_tasks, django_capture_on_commit_callbacks):
    from pools.alert_tasks import evaluate_pool_sku_alerts_task

    sku = sku_named(synced_tenant, "SPE_E3")
    used = consumption(pool, sku)
    pool.spare_alert_count = 3
    pool.save()
    with django_capture_on_commit_callbacks(execute=True):
        set_allotment(acting_user=admin, pool=pool, sku=sku, seats=used + 1)

    evaluate_pool_sku_alerts_task(pool.pk, sku.pk)
    with django_capture_on_commit_callbacks(execute=True):
        set_allotment(acting_user=admin, pool=pool, sku=sku, seats=used + 2)

    assert open_alert(AlertKind.POOL_SPARE_LOW, pool=pool).details["spare"] == 1
    assert [args for args, _options in queued_tasks] == [(pool.pk, sku.pk), (pool.pk, sku.pk)]


def test_evaluation_of_deleted_pool(synced_tenant, pool):
    from pools.alert_tasks import evaluate_pool_sku_alerts_task

    sku = sku_named(synced_tenant, "SPE_E3")
    missing = Pool.objects.order_by("-pk").first().pk + 1

    assert evaluate_pool_sku_alerts_task(missing, sku.pk) == 0


@pytest.mark.django_db(transaction=True)
def test_assignment_alert_from_worker(celery_worker, emulator, tenant, make_portal_user):
    sync_now(tenant)
    admin = make_portal_user("admin", role="tenant_admin", tenant=tenant)
    set_scheme(acting_user=admin, tenant=tenant, level1_attribute=PoolAttribute.UPN_DOMAIN)
    pool = Pool.objects.filter(tenant=tenant, parent=None, is_unassigned=False).order_by("-pk").first()
    manager = make_portal_user("manager", role="pool_manager", pool=pool)
    sku = sku_named(tenant, "SPE_E3")
    pool.spare_alert_count = 1
    pool.save()
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=consumption(pool, sku) + 2)
    users = list(pool.members_queryset().exclude(usage_location="").exclude(licenses__isnull=False).order_by("pk")[:2])

    for user in users:
        assign_license(acting_user=manager, pool=pool, user=user, sku=sku)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        alert = Alert.objects.filter(kind=AlertKind.POOL_SPARE_LOW, pool=pool, resolved_at__isnull=True).first()
        if alert is not None and alert.details["spare"] == 0:
            break
        time.sleep(0.2)
    assert alert is not None, "the Celery worker raised no spare-low alert within 30 s"
    assert alert.details["spare"] == 0


def test_mover_over_allotment(emulator, synced_tenant, admin):
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.DEPARTMENT)
    sales = Pool.objects.get(tenant=synced_tenant, parent=None, key="sales")
    sku = sku_named(synced_tenant, "SPE_E3")
    used = consumption(sales, sku)
    set_allotment(acting_user=admin, pool=sales, sku=sku, seats=used)
    mover = (
        DirectoryUser.objects.filter(tenant=synced_tenant, licenses__sku=sku, licenses__assigned_by_group="")
        .exclude(pool=sales).order_by("pk").first()
    )
    control(emulator, "PATCH", f"tenants/{synced_tenant.tenant_id}/users/{mover.user_id}", {"department": "Sales"})

    sync_now(synced_tenant)
    evaluate_tenant(synced_tenant)

    alert = open_alert(AlertKind.POOL_OVER_ALLOTMENT, pool=sales)
    assert alert.message == (
        f"Pool {sales} uses {used + 1} seats of Microsoft 365 E3 but is allotted {used}, 1 over. Assignments made "
        "outside the portal and users who moved into the pool count here, and the portal revokes none of them. "
        "Raise the allotment or revoke licenses in the pool."
    )
    assert UserLicense.objects.filter(user=mover, sku=sku).exists()
    user = control(emulator, "GET", f"tenants/{synced_tenant.tenant_id}/users/{mover.user_id}")
    assert str(sku.sku_id) in {item["skuId"].lower() for item in user["assignedLicenses"]}


def test_stock_low_lifecycle(emulator, synced_tenant, admin):
    sku = sku_named(synced_tenant, "O365_BUSINESS_PREMIUM")
    evaluate_tenant(synced_tenant)
    alert = open_alert(AlertKind.TENANT_STOCK_LOW, dedup_key=f"tenant_stock_low:sku{sku.pk}")
    holders = sku.enabled_units
    assert alert.message == (
        f"Microsoft 365 Business Standard has 0 free units left in {synced_tenant.name} ({holders} enabled, {holders} "
        "assigned), fewer than the alert threshold of 5. Buy more units or reclaim unused licenses."
    )
    assert alert.severity == "critical"

    evaluate_tenant(synced_tenant)
    assert Alert.objects.filter(dedup_key=alert.dedup_key).count() == 1

    control(emulator, "POST", f"tenants/{synced_tenant.tenant_id}/skus/{sku.sku_id}", {"prepaidUnits": {"enabled": holders + 20}})
    sync_now(synced_tenant)
    evaluate_tenant(synced_tenant)
    alert.refresh_from_db()
    assert alert.resolved_at is not None


def test_units_warning_and_suspended(emulator, synced_tenant, admin):
    power_bi = sku_named(synced_tenant, "POWER_BI_PRO")
    project = sku_named(synced_tenant, "PROJECTPROFESSIONAL")
    evaluate_tenant(synced_tenant)

    warning = open_alert(AlertKind.UNITS_WARNING, dedup_key=f"units_warning:sku{power_bi.pk}")
    assert warning.message.startswith(
        f"{power_bi.warning_units} units of Power BI Pro are in their grace period (warning state) and stop working "
        "unless the subscription is renewed."
    )
    suspended = open_alert(AlertKind.UNITS_SUSPENDED, dedup_key=f"units_suspended:sku{project.pk}")
    holders = UserLicense.objects.filter(sku=project).values("user").distinct().count()
    assert suspended.message == (
        f"{project.suspended_units} units of {project.name} are suspended or locked out and cannot be assigned; "
        f"{holders} users still hold the license. Renew or reactivate the subscription in the Microsoft 365 admin center."
    )

    control(
        emulator, "POST", f"tenants/{synced_tenant.tenant_id}/skus/{power_bi.sku_id}",
        {"prepaidUnits": {"enabled": power_bi.warning_units, "warning": 0}, "capabilityStatus": "Enabled"},
    )
    sync_now(synced_tenant)
    evaluate_tenant(synced_tenant)
    warning.refresh_from_db()
    assert warning.resolved_at is not None


def test_group_error_resolved(emulator, synced_tenant, pool):
    from graphsync.models import DirectoryGroup

    group = DirectoryGroup.objects.get(tenant=synced_tenant, display_name="License - Visio Plan 2")
    evaluate_tenant(synced_tenant)
    alert = open_alert(AlertKind.GROUP_LICENSE_ERROR, details__error="CountViolation")
    for row in UserLicense.objects.filter(assigned_by_group=str(group.group_id), error="CountViolation").select_related("user"):
        control(emulator, "DELETE", f"tenants/{synced_tenant.tenant_id}/groups/{group.group_id}/members/{row.user.user_id}")

    sync_now(synced_tenant)
    evaluate_tenant(synced_tenant)

    alert.refresh_from_db()
    assert alert.resolved_at is not None


def test_pending_request_lifecycle(synced_tenant, pool, manager, mailoutbox):
    sku = sku_named(synced_tenant, "SPE_E3")
    seat_request = SeatRequest.objects.create(
        tenant=synced_tenant, pool=pool, sku=sku, quantity=4, reason="New hires", requested_by=manager
    )

    evaluate_tenant(synced_tenant)
    alert = open_alert(AlertKind.PENDING_REQUEST)
    requested = formats.date_format(timezone.localtime(seat_request.requested_at), "DATE_FORMAT")
    assert alert.message == (
        f"manager asked on {requested} for 4 more seats of Microsoft 365 E3 for pool {pool}; the request is waiting "
        "for a decision."
    )
    mails = mails_with_subject(mailoutbox, f"[{synced_tenant.name}] Pending seat request: {pool}")
    assert [mail.to for mail in mails] == [["admin@example.com"]]

    seat_request.status = RequestStatus.DECLINED
    seat_request.save()
    evaluate_tenant(synced_tenant)
    alert.refresh_from_db()
    assert alert.resolved_at is not None


def test_pool_alert_goes_to_manager(synced_tenant, admin, pool, manager, mailoutbox):
    sku = sku_named(synced_tenant, "SPE_E3")
    pool.spare_alert_count = 3
    pool.save()
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=consumption(pool, sku) + 1)

    evaluate_tenant(synced_tenant)

    mails = mails_with_subject(mailoutbox, f"[{synced_tenant.name}] Pool spare low: {pool}")
    assert [mail.to for mail in mails] == [["manager@example.com"]]
    mail = mails[0]
    assert synced_tenant.name in mail.body
    assert "1 spare seats of Microsoft 365 E3 left" in mail.body
    assert f"/pools/{pool.pk}/" in mail.body
    assert "text/html" == mail.alternatives[0][1]
    assert open_alert(AlertKind.POOL_SPARE_LOW).emailed_at is not None

    mailoutbox.clear()
    evaluate_tenant(synced_tenant)
    assert mails_with_subject(mailoutbox, f"[{synced_tenant.name}] Pool spare low: {pool}") == []


def test_pool_alert_falls_back_to_admin(synced_tenant, admin, pool, mailoutbox):
    sku = sku_named(synced_tenant, "SPE_E3")
    pool.spare_alert_count = 3
    pool.save()
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=consumption(pool, sku) + 1)

    evaluate_tenant(synced_tenant)

    mails = mails_with_subject(mailoutbox, f"[{synced_tenant.name}] Pool spare low: {pool}")
    assert [mail.to for mail in mails] == [["admin@example.com"]]


def test_tenant_alert_not_sent_to_manager(synced_tenant, pool, manager, mailoutbox):
    evaluate_tenant(synced_tenant)

    stock_mails = [mail for mail in mailoutbox if "Tenant stock low" in mail.subject]
    assert stock_mails
    assert all(mail.to == ["admin@example.com"] for mail in stock_mails)


def test_digest_instead_of_mail(synced_tenant, admin, pool, manager, mailoutbox):
    AlertPreference.objects.create(user=manager, daily_digest=True)
    sku = sku_named(synced_tenant, "SPE_E3")
    pool.spare_alert_count = 3
    pool.save()
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=consumption(pool, sku) + 1)

    evaluate_tenant(synced_tenant)
    assert [mail for mail in mailoutbox if "manager@example.com" in mail.to] == []
    alert = open_alert(AlertKind.POOL_SPARE_LOW)
    assert alert.emailed_at is None

    assert send_digests() == 1
    digests = [mail for mail in mailoutbox if mail.to == ["manager@example.com"]]
    assert len(digests) == 1
    routed = Alert.objects.filter(pool=pool, kind__in=POOL_KINDS).count()
    assert routed == 2, "the spare alert and the Visio group's CountViolation"
    assert digests[0].subject == "License Pools daily digest: 2 new, 0 still open"
    assert alert.message in digests[0].body
    assert AlertPreference.objects.get(user=manager).last_digest_sent_at is not None

    assert send_digests() == 0


def test_alerts_page_scoped(synced_tenant, make_portal_user, admin, pool, manager, client):
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.DEPARTMENT)
    sales = Pool.objects.get(tenant=synced_tenant, parent=None, key="sales")
    other = Pool.objects.filter(tenant=synced_tenant, parent=None).exclude(pk=sales.pk).exclude(is_unassigned=True).first()
    sales_manager = make_portal_user("sales-manager", role="pool_manager", pool=sales)
    Alert.objects.create(tenant=synced_tenant, pool=sales, kind=AlertKind.DRIFT, dedup_key="a", message="Sales drift")
    Alert.objects.create(tenant=synced_tenant, pool=other, kind=AlertKind.DRIFT, dedup_key="b", message="Other drift")
    Alert.objects.create(tenant=synced_tenant, kind=AlertKind.TENANT_STOCK_LOW, dedup_key="c", message="Stock low")

    client.force_login(sales_manager)
    page = client.get(f"/tenants/{synced_tenant.pk}/alerts/").content.decode()
    assert "Sales drift" in page
    assert "Other drift" not in page
    assert "Stock low" not in page
    assert 'aria-label="1 open alert"' in client.get("/alerts/").content.decode()

    client.force_login(admin)
    page = client.get(f"/tenants/{synced_tenant.pk}/alerts/").content.decode()
    assert "Sales drift" in page
    assert "Other drift" in page
    assert "Stock low" in page


def test_alerts_page_of_other_tenant_not_found(synced_tenant, make_portal_user, client):
    outsider = make_portal_user("outsider")
    client.force_login(outsider)

    assert client.get(f"/tenants/{synced_tenant.pk}/alerts/").status_code == 404


def test_preference_form(synced_tenant, manager, client):
    client.force_login(manager)

    response = client.post("/alerts/preferences/", {"daily_digest": "on"}, follow=True)

    assert "Saved. You will receive one alert digest a day." in response.content.decode()
    assert AlertPreference.objects.get(user=manager).daily_digest is True


@pytest.mark.django_db(transaction=True)
def test_sync_task_evaluates_alerts(celery_worker, tenant):
    from graphsync.services import request_sync

    run = request_sync(tenant, acting_user=None)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if Alert.objects.filter(tenant=tenant, kind=AlertKind.UNITS_SUSPENDED).exists():
            break
        time.sleep(0.2)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    assert Alert.objects.filter(tenant=tenant, kind=AlertKind.UNITS_SUSPENDED, resolved_at__isnull=True).count() == 1
