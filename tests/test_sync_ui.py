"""Live sync progress and SKU name overrides in the web UI."""
import pytest
from django.contrib.messages import get_messages
from django.utils import timezone

from graphsync.models import Sku, SyncRun
from pools.choices import AuditAction
from pools.models import AuditEvent

PASSWORD = "correct-horse-42"


@pytest.fixture
def eager_celery(monkeypatch):
    """Run tasks in the requesting process, as the embedded mode without a broker does."""
    from licensepools.celery import app

    # The app reads Django settings with the CELERY_ namespace, so the setting has the namespaced name.
    monkeypatch.setattr(app.conf, "CELERY_TASK_ALWAYS_EAGER", True)


@pytest.fixture
def admin_client(client, make_portal_user, synced_tenant):
    admin = make_portal_user("admin", role="tenant_admin", tenant=synced_tenant)
    client.force_login(admin)
    return client


def test_progress_shows_pages_and_users(admin_client, synced_tenant):
    previous = synced_tenant.sync_runs.get()
    run = SyncRun.objects.create(
        tenant=synced_tenant, status="running", started_at=timezone.now(), pages_count=2, users_count=40
    )

    response = admin_client.get(f"/sync-runs/{run.pk}/status/")

    body = response.content.decode()
    assert response.status_code == 200
    assert f'hx-get="/sync-runs/{run.pk}/status/"' in body
    assert f'<progress value="40" max="{previous.users_count}"' in body
    assert "2 pages, 40 users so far" in body


def test_progress_stops_polling_when_finished(admin_client, synced_tenant):
    run = synced_tenant.sync_runs.get()

    response = admin_client.get(f"/sync-runs/{run.pk}/status/")

    body = response.content.decode()
    assert "hx-get" not in body
    assert "Succeeded" in body


def test_progress_hidden_from_pool_manager(client, make_portal_user, synced_tenant):
    from pools.models import Pool

    pool = Pool.objects.get(tenant=synced_tenant, is_unassigned=True)
    client.force_login(make_portal_user("manager", role="pool_manager", pool=pool))
    run = synced_tenant.sync_runs.get()

    assert client.get(f"/sync-runs/{run.pk}/status/").status_code == 404
    assert client.get(f"/tenants/{synced_tenant.pk}/sku-names/").status_code == 404


def test_sku_name_override(admin_client, synced_tenant):
    sku = Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")

    response = admin_client.post(
        f"/tenants/{synced_tenant.pk}/sku-names/", {"sku": sku.pk, "name_override": "E3 (staff)"}, follow=True
    )

    sku.refresh_from_db()
    assert sku.name == "E3 (staff)"
    assert "SPE_E3 is now shown as E3 (staff)." in response.content.decode()
    event = AuditEvent.objects.get(action=AuditAction.SKU_RENAMED)
    assert event.before == {"name": "Microsoft 365 E3"}
    assert event.after == {"name": "E3 (staff)"}


def test_sku_name_cleared_falls_back(admin_client, synced_tenant):
    sku = Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")
    sku.name_override = "Old name"
    sku.save()

    admin_client.post(f"/tenants/{synced_tenant.pk}/sku-names/", {"sku": sku.pk, "name_override": ""})

    sku.refresh_from_db()
    assert sku.name == "Microsoft 365 E3"


def test_unknown_sku_marked_unmapped(admin_client, synced_tenant):
    Sku.objects.create(
        tenant=synced_tenant, sku_id="00000000-0000-4000-8000-00000000beef", part_number="BRAND_NEW_SKU"
    )

    body = admin_client.get(f"/tenants/{synced_tenant.pk}/sku-names/").content.decode()

    assert "BRAND_NEW_SKU" in body
    assert "<mark>unmapped</mark>" in body


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


# request_sync starts the task on commit, which a test wrapped in a transaction never reaches.
@pytest.mark.django_db(transaction=True)
def test_sync_now_reports_eager_success(admin_client, synced_tenant, eager_celery):
    response = admin_client.post(f"/tenants/{synced_tenant.pk}/sync/", follow=True)

    run = synced_tenant.sync_runs.order_by("-queued_at", "-pk").first()
    assert run.status == "succeeded", run.error_message
    assert messages_of(response) == [f"Sync finished: {run.users_count} users synced."]


@pytest.mark.django_db(transaction=True)
def test_sync_now_reports_eager_failure(admin_client, synced_tenant, eager_celery):
    synced_tenant.set_client_secret("wrong-secret")
    synced_tenant.save()

    response = admin_client.post(f"/tenants/{synced_tenant.pk}/sync/", follow=True)

    run = synced_tenant.sync_runs.order_by("-queued_at", "-pk").first()
    assert run.status == "failed"
    assert "invalid_client" in run.error_message
    assert messages_of(response) == [f"Sync failed: {run.error_message}"]


def rename(admin_client, tenant, sku, name):
    response = admin_client.post(f"/tenants/{tenant.pk}/sku-names/", {"sku": sku.pk, "name_override": name})
    return messages_of(response)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("\u200b\u2060", "The name contains no visible character, only spaces or invisible characters "
                         "(U+200B U+2060). Enter a name people can read, or leave the field empty to show "
                         "Microsoft's product name again."),
        ("E3\u202e staff", "The name contains the bidirectional control character U+202E at position 3, which "
                           "can make the name display in a misleading order. Remove it and enter the name again."),
        ("E3\x07", "The name contains the control character U+0007 at position 3. Remove it and enter the name "
                   "again."),
    ],
)
def test_sku_name_unreadable_rejected(admin_client, synced_tenant, name, expected):
    sku = Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")

    assert rename(admin_client, synced_tenant, sku, name) == [expected]
    sku.refresh_from_db()
    assert sku.name_override == ""
    assert not AuditEvent.objects.filter(action=AuditAction.SKU_RENAMED).exists()


def test_sku_name_cleaned(admin_client, synced_tenant):
    sku = Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")

    rename(admin_client, synced_tenant, sku, "\u200bE3   for\u00adstaff ")

    sku.refresh_from_db()
    assert sku.name_override == "E3 forstaff"


def test_sku_name_taken_rejected(admin_client, synced_tenant):
    e3 = Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")
    e1 = Sku.objects.get(tenant=synced_tenant, part_number="ENTERPRISEPACK")

    messages = rename(admin_client, synced_tenant, e3, f" {e1.name.upper()}\u200b")

    assert messages == [
        f"SKU ENTERPRISEPACK is already shown as “{e1.name.upper()}”. Two SKUs of a tenant cannot share a name, "
        "whatever the letter case, because pages and chargeback reports could not tell them apart. Choose another name."
    ]
    e3.refresh_from_db()
    assert e3.name_override == ""


def test_sku_name_cleared_onto_taken_name_rejected(admin_client, synced_tenant):
    e3 = Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")
    e1 = Sku.objects.get(tenant=synced_tenant, part_number="ENTERPRISEPACK")
    e3.name_override = "E3 (staff)"
    e3.save()
    e1.name_override = "microsoft 365 e3"
    e1.save()

    messages = rename(admin_client, synced_tenant, e3, "")

    assert messages == [
        "SKU ENTERPRISEPACK is shown as “Microsoft 365 E3”, so SPE_E3 cannot show its product name “Microsoft 365 E3” "
        "again. Rename that SKU first, or enter another name for this one."
    ]
    e3.refresh_from_db()
    assert e3.name_override == "E3 (staff)"
