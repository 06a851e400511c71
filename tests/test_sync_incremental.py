"""Incremental sync through the users delta link, sync locking, and mirrors that survive failed runs."""
import io
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg2
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from graphsync import delta as delta_module
from graphsync import sync as sync_module
from graphsync.choices import SyncKind, SyncStatus
from graphsync.locks import SYNC_LOCK_NAMESPACE
from graphsync.models import DeltaState, DirectoryUser, SyncRun
from graphsync.sync import run_sync
from graphsync.tasks import sync_all_tenants_task
from graphsync.testing import GraphTraffic, clear_throttle_state, control, emulator_snapshot, expected_mirror, mirror_state, set_faults

from conftest import port_open, require, sync_now

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_throttle_state(emulator_snapshot):
    clear_throttle_state(emulator_snapshot["tenantId"])
    yield
    clear_throttle_state(emulator_snapshot["tenantId"])


@pytest.fixture
def small_pages(monkeypatch):
    """Read 10 users per page, so the 60-user tenant takes 6 pages."""
    monkeypatch.setattr(sync_module, "PAGE_SIZE", 10)
    monkeypatch.setattr(delta_module, "PAGE_SIZE", 10)


def run_kind(tenant, kind):
    return run_sync(SyncRun.objects.create(tenant=tenant, kind=kind))


def assert_mirror_matches_emulator(tenant, emulator):
    expected = expected_mirror(emulator_snapshot(emulator, str(tenant.tenant_id)))
    mirrored = mirror_state(tenant)

    assert set(mirrored["users"]) == set(expected["users"])
    for user_id, fields in expected["users"].items():
        assert mirrored["users"][user_id] == fields, user_id
    assert mirrored["licenses"] == expected["licenses"]
    assert mirrored["skus"] == expected["skus"]
    known_deleted = expected["deleted"] & (set(mirrored["users"]) | mirrored["deleted"])
    assert known_deleted <= mirrored["deleted"]


def active_users(snapshot):
    return [user for user in snapshot["users"] if not user.get("deletedDateTime")]


def make_directory_changes(emulator, tenant_id: str, snapshot: dict) -> dict:
    """Change the emulated tenant the way an administrator would; return the ids involved."""
    users = active_users(snapshot)
    renamed, soft_deleted, purged, licensed = users[1], users[2], users[3], users[4]
    control(emulator, "PATCH", f"tenants/{tenant_id}/users/{renamed['id']}", {"department": "Ventes – Île-de-France", "city": "Paris"})
    control(emulator, "DELETE", f"tenants/{tenant_id}/users/{soft_deleted['id']}")
    control(emulator, "DELETE", f"tenants/{tenant_id}/users/{purged['id']}")
    control(emulator, "DELETE", f"tenants/{tenant_id}/deletedUsers/{purged['id']}")
    created = control(
        emulator, "POST", f"tenants/{tenant_id}/users",
        {
            "id": str(uuid.uuid4()),
            "userPrincipalName": f"new.hire.{uuid.uuid4().hex[:6]}@{renamed['userPrincipalName'].split('@')[1]}",
            "displayName": "New Hire",
            "accountEnabled": True,
            "department": "R&D",
            "usageLocation": "FR",
        },
    )
    held = {license_["skuId"] for license_ in licensed.get("assignedLicenses") or []}
    removable = sorted(held - {s["skuId"] for s in licensed.get("licenseAssignmentStates") or [] if s.get("assignedByGroup")})
    if removable:
        control(emulator, "POST", f"tenants/{tenant_id}/users/{licensed['id']}/licenses", {"addLicenses": [], "removeLicenses": removable[:1]})
    return {
        "renamed": renamed["id"], "soft_deleted": soft_deleted["id"], "purged": purged["id"], "created": created["id"],
        "licensed": licensed["id"],
    }


def add_to_licensed_group(emulator, tenant_id: str, snapshot: dict) -> str | None:
    """Add a user to a group that assigns licenses, which changes no user property; return the user id."""
    groups = [group for group in snapshot["groups"] if group.get("assignedLicenses")]
    if not groups:
        return None
    group = groups[0]
    members = set()
    for user in snapshot["users"]:
        for state in user.get("licenseAssignmentStates") or []:
            if (state.get("assignedByGroup") or "").lower() == group["id"].lower():
                members.add(user["id"])
    candidate = next(u for u in active_users(snapshot) if u["id"] not in members and u.get("usageLocation"))
    control(emulator, "POST", f"tenants/{tenant_id}/groups/{group['id']}/members", {"id": candidate["id"]})
    return candidate["id"]


# Delta link


def test_full_sync_stores_delta_link(tenant):
    sync_now(tenant)

    state = DeltaState.objects.get(tenant=tenant)
    assert "deltatoken" in state.users_delta_link.lower()


def test_incremental_without_link_runs_full(tenant, emulator):
    run = run_kind(tenant, SyncKind.INCREMENTAL)

    assert run.status == SyncStatus.SUCCEEDED, run.error_message
    assert run.kind == SyncKind.FULL
    assert DeltaState.objects.get(tenant=tenant).users_delta_link
    assert_mirror_matches_emulator(tenant, emulator)


def test_incremental_applies_changes(synced_tenant, emulator, emulator_snapshot):
    tenant_id = str(synced_tenant.tenant_id)
    old_link = DeltaState.objects.get(tenant=synced_tenant).users_delta_link
    changed = make_directory_changes(emulator, tenant_id, emulator_snapshot)

    run = run_kind(synced_tenant, SyncKind.INCREMENTAL)

    assert run.status == SyncStatus.SUCCEEDED, run.error_message
    assert run.kind == SyncKind.INCREMENTAL
    assert run.users_count < 10
    assert run.pages_count >= 4
    assert DeltaState.objects.get(tenant=synced_tenant).users_delta_link != old_link
    assert_mirror_matches_emulator(synced_tenant, emulator)
    renamed = DirectoryUser.objects.get(tenant=synced_tenant, user_id=changed["renamed"])
    assert renamed.department == "Ventes – Île-de-France"
    soft_deleted = DirectoryUser.objects.get(tenant=synced_tenant, user_id=changed["soft_deleted"])
    assert soft_deleted.is_deleted
    assert soft_deleted.deletion_reason == "changed"
    purged = DirectoryUser.objects.get(tenant=synced_tenant, user_id=changed["purged"])
    assert purged.is_deleted
    assert purged.deletion_reason == "deleted"
    created = DirectoryUser.objects.get(tenant=synced_tenant, user_id=changed["created"])
    assert created.department == "R&D"
    assert not created.is_deleted
    assert created.pool is not None


def test_incremental_refreshes_group_licenses(synced_tenant, emulator, emulator_snapshot, settings):
    # Group membership changes reach a user's licenseAssignmentStates without a delta entry, so this
    # needs the listing of every user's licenses.
    settings.GRAPH_LICENSE_LISTING_INTERVAL_MINUTES = 0
    user_id = add_to_licensed_group(emulator, str(synced_tenant.tenant_id), emulator_snapshot)
    if user_id is None:
        pytest.fail("the generated tenant should have a group that assigns licenses")
    before = DirectoryUser.objects.get(tenant=synced_tenant, user_id=user_id).licenses.count()

    run = run_kind(synced_tenant, SyncKind.INCREMENTAL)

    assert run.status == SyncStatus.SUCCEEDED, run.error_message
    assert run.kind == SyncKind.INCREMENTAL
    assert DirectoryUser.objects.get(tenant=synced_tenant, user_id=user_id).licenses.count() > before
    assert_mirror_matches_emulator(synced_tenant, emulator)


def test_restored_user_comes_back(synced_tenant, emulator, emulator_snapshot):
    tenant_id = str(synced_tenant.tenant_id)
    user_id = active_users(emulator_snapshot)[5]["id"]
    control(emulator, "DELETE", f"tenants/{tenant_id}/users/{user_id}")
    assert run_kind(synced_tenant, SyncKind.INCREMENTAL).status == SyncStatus.SUCCEEDED
    control(emulator, "POST", f"tenants/{tenant_id}/users/{user_id}/restore")

    run = run_kind(synced_tenant, SyncKind.INCREMENTAL)

    assert run.status == SyncStatus.SUCCEEDED, run.error_message
    user = DirectoryUser.objects.get(tenant=synced_tenant, user_id=user_id)
    assert not user.is_deleted
    assert user.deletion_reason == ""
    assert_mirror_matches_emulator(synced_tenant, emulator)


def test_expired_delta_link_runs_full(synced_tenant, emulator, emulator_snapshot):
    tenant_id = str(synced_tenant.tenant_id)
    make_directory_changes(emulator, tenant_id, emulator_snapshot)
    control(emulator, "POST", f"tenants/{tenant_id}/delta/expire")

    run = run_kind(synced_tenant, SyncKind.INCREMENTAL)

    assert run.status == SyncStatus.SUCCEEDED, run.error_message
    assert run.kind == SyncKind.FULL
    assert_mirror_matches_emulator(synced_tenant, emulator)
    assert run_kind(synced_tenant, SyncKind.INCREMENTAL).kind == SyncKind.INCREMENTAL


# Failed runs keep the mirror


@pytest.mark.parametrize("kind", [SyncKind.FULL, SyncKind.INCREMENTAL])
def test_failing_page_keeps_mirror(synced_tenant, emulator, emulator_snapshot, small_pages, kind, settings):
    settings.GRAPH_LICENSE_LISTING_INTERVAL_MINUTES = 0
    make_directory_changes(emulator, str(synced_tenant.tenant_id), emulator_snapshot)
    before = mirror_state(synced_tenant)
    link_before = DeltaState.objects.get(tenant=synced_tenant).users_delta_link
    set_faults(emulator, failPage=3, failPageMode="always")

    run = run_kind(synced_tenant, kind)

    assert run.status == SyncStatus.FAILED
    assert "page token" in run.error_message
    assert "HTTP 400" in run.error_message
    assert mirror_state(synced_tenant) == before
    assert DeltaState.objects.get(tenant=synced_tenant).users_delta_link == link_before

    set_faults(emulator, failPage=None)
    run = run_kind(synced_tenant, kind)

    assert run.status == SyncStatus.SUCCEEDED, run.error_message
    assert_mirror_matches_emulator(synced_tenant, emulator)


def test_page_failing_once_then_converges(synced_tenant, emulator, emulator_snapshot, small_pages):
    make_directory_changes(emulator, str(synced_tenant.tenant_id), emulator_snapshot)
    before = mirror_state(synced_tenant)
    set_faults(emulator, failPage=3, failPageMode="once")

    failed = run_kind(synced_tenant, SyncKind.FULL)
    assert failed.status == SyncStatus.FAILED
    assert mirror_state(synced_tenant) == before

    run = run_kind(synced_tenant, SyncKind.FULL)

    assert run.status == SyncStatus.SUCCEEDED, run.error_message
    assert_mirror_matches_emulator(synced_tenant, emulator)


@pytest.mark.parametrize(
    "faults",
    [
        {"throttleRate": 0.25, "retryAfterSeconds": 1, "retryAfterFormat": "seconds"},
        {"throttleRate": 0.25, "retryAfterSeconds": 0.249, "retryAfterFormat": "decimal"},
        {"throttleRate": 0.2, "retryAfterSeconds": 1, "retryAfterFormat": "httpDate"},
        {"serverErrorRate": 0.3},
        {"unavailableRate": 0.3},
        {"latencyMs": 150},
        {"dropRate": 0.25},
        {"throttleScale": 0.003, "retryAfterFormat": "decimal"},
    ],
    ids=["429-seconds", "429-decimal", "429-http-date", "500", "503", "latency", "dropped-connection", "resource-units"],
)
def test_transient_faults_converge(synced_tenant, emulator, emulator_snapshot, small_pages, faults):
    make_directory_changes(emulator, str(synced_tenant.tenant_id), emulator_snapshot)
    set_faults(emulator, seed=21, **faults)

    incremental = run_kind(synced_tenant, SyncKind.INCREMENTAL)

    assert incremental.status == SyncStatus.SUCCEEDED, incremental.error_message
    assert incremental.kind == SyncKind.INCREMENTAL
    assert_mirror_matches_emulator(synced_tenant, emulator)

    full = run_kind(synced_tenant, SyncKind.FULL)

    assert full.status == SyncStatus.SUCCEEDED, full.error_message
    assert_mirror_matches_emulator(synced_tenant, emulator)


# One run per tenant at a time


@pytest.fixture
def other_session_lock(require_postgresql):
    """Take a tenant's sync lock from a second database session, as another worker would."""
    sessions = []

    def hold(tenant_pk: int):
        db = connection.settings_dict
        session = psycopg2.connect(dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or 5432, password=db["PASSWORD"] or None)
        session.autocommit = True
        with session.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [SYNC_LOCK_NAMESPACE, tenant_pk])
            assert cursor.fetchone()[0]
        sessions.append(session)
        return session

    yield hold
    for session in sessions:
        session.close()


def test_second_run_is_skipped(synced_tenant, other_session_lock):
    before = mirror_state(synced_tenant)
    session = other_session_lock(synced_tenant.pk)

    run = run_kind(synced_tenant, SyncKind.FULL)

    assert run.status == SyncStatus.SKIPPED
    assert "another sync" in run.error_message
    assert str(synced_tenant.tenant_id) in run.error_message
    assert run.started_at is None
    assert mirror_state(synced_tenant) == before

    session.close()
    # PostgreSQL releases the closed session's advisory lock when its backend exits, which under load
    # can come a moment after close() returns.
    wait_for(lambda: not lock_is_held(synced_tenant.pk), 10, "the other session's sync lock was not released")
    assert run_kind(synced_tenant, SyncKind.FULL).status == SyncStatus.SUCCEEDED


def test_abandoned_running_run_does_not_block(synced_tenant):
    abandoned = SyncRun.objects.create(tenant=synced_tenant, status=SyncStatus.RUNNING, started_at=timezone.now())

    run = run_kind(synced_tenant, SyncKind.INCREMENTAL)

    assert run.status == SyncStatus.SUCCEEDED, run.error_message
    abandoned.refresh_from_db()
    assert abandoned.status == SyncStatus.FAILED
    assert "stopped before it finished" in abandoned.error_message


@pytest.fixture
def own_worker(settings, django_db_blocker):
    """Start a Celery worker of this test only, on its own queue, so that the test may kill it."""
    from licensepools.celery import app

    broker = settings.CELERY_BROKER_URL
    require(bool(broker) and port_open("127.0.0.1", 6379), "This test needs Redis: set CELERY_BROKER_URL.")
    db = connection.settings_dict
    require(db["ENGINE"] == "django.db.backends.postgresql", "This test needs PostgreSQL (DATABASE_URL).")
    queue = f"licensepools-kill-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["CELERY_TASK_DEFAULT_QUEUE"] = queue
    log_path = ROOT / "test-artifacts" / f"celery-{queue}.log"
    log_path.parent.mkdir(exist_ok=True)
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "licensepools", "worker", "--pool=solo", "-Q", queue,
         "--without-gossip", "--without-mingle", "-l", "info", "-n", f"{queue}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the Celery worker exited with {process.returncode}; see {log_path}"
        if app.control.ping(destination=[f"{queue}@{socket.gethostname()}"], timeout=1):
            break
    else:
        process.kill()
        pytest.fail(f"the Celery worker did not answer a ping within 60 s; see {log_path}")
    yield process, queue
    if process.poll() is None:
        process.kill()
        process.wait(timeout=20)
    log.close()


def wait_for(condition, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(message)


def lock_is_held(tenant_pk: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s AND granted",
            [SYNC_LOCK_NAMESPACE, tenant_pk],
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_killed_worker_keeps_mirror(own_worker, tenant, emulator, emulator_snapshot):
    from graphsync.tasks import sync_tenant_task

    process, queue = own_worker
    sync_now(tenant)
    make_directory_changes(emulator, str(tenant.tenant_id), emulator_snapshot)
    before = mirror_state(tenant)
    link_before = DeltaState.objects.get(tenant=tenant).users_delta_link
    # The worker reads 999 users per page, so its run has 4 pages; 2 s per request makes it last about 10 s.
    set_faults(emulator, latencyMs=2000)
    run = SyncRun.objects.create(tenant=tenant, kind=SyncKind.FULL)

    sync_tenant_task.apply_async(args=[run.pk], queue=queue)
    wait_for(
        lambda: SyncRun.objects.filter(pk=run.pk, status=SyncStatus.RUNNING, pages_count__gte=2).exists(),
        60, "the worker's sync did not reach its second page",
    )
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=20)

    run.refresh_from_db()
    assert run.status == SyncStatus.RUNNING
    assert mirror_state(tenant) == before
    assert DeltaState.objects.get(tenant=tenant).users_delta_link == link_before
    # PostgreSQL ends the killed worker's session, and with it the session's advisory lock.
    wait_for(lambda: not lock_is_held(tenant.pk), 20, "the killed worker's sync lock was not released")

    set_faults(emulator, latencyMs=0)
    next_run = run_kind(tenant, SyncKind.INCREMENTAL)

    assert next_run.status == SyncStatus.SUCCEEDED, next_run.error_message
    run.refresh_from_db()
    assert run.status == SyncStatus.FAILED
    assert_mirror_matches_emulator(tenant, emulator)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_incremental_sync_in_celery_worker(celery_worker, tenant, emulator, emulator_snapshot):
    from graphsync.services import request_sync

    sync_now(tenant)
    make_directory_changes(emulator, str(tenant.tenant_id), emulator_snapshot)

    run = request_sync(tenant, acting_user=None, kind=SyncKind.INCREMENTAL)
    wait_for(
        lambda: SyncRun.objects.filter(pk=run.pk, status__in=[SyncStatus.SUCCEEDED, SyncStatus.FAILED]).exists(),
        60, "the incremental sync did not finish in the worker",
    )

    run.refresh_from_db()
    assert run.status == SyncStatus.SUCCEEDED, run.error_message
    assert run.kind == SyncKind.INCREMENTAL
    assert_mirror_matches_emulator(tenant, emulator)


# Scheduling and progress


def test_schedule_picks_incremental_then_daily_full(tenant):
    sync_all_tenants_task()
    assert SyncRun.objects.filter(tenant=tenant).latest("queued_at").kind == SyncKind.FULL

    full = sync_now(tenant)
    sync_all_tenants_task()
    assert SyncRun.objects.filter(tenant=tenant).latest("queued_at").kind == SyncKind.INCREMENTAL

    SyncRun.objects.filter(pk=full.pk).update(started_at=timezone.now() - timedelta(hours=25))
    sync_all_tenants_task()
    assert SyncRun.objects.filter(tenant=tenant).latest("queued_at").kind == SyncKind.FULL


def test_run_counts_pages(tenant, small_pages):
    run = sync_now(tenant)

    # subscribedSkus, subscriptions, one page of groups and six pages of 10 users.
    assert run.pages_count >= 9
    assert run.users_count == 60


def test_sync_tenant_command_prints_progress(tenant, small_pages):
    out = io.StringIO()

    call_command("sync_tenant", str(tenant.tenant_id), stdout=out)

    lines = out.getvalue().splitlines()
    progress = [line for line in lines if ", " in line and "users so far" in line]
    assert len(progress) >= 9
    assert progress[-1].endswith("60 users so far")
    assert "full sync succeeded" in lines[-1]

    out = io.StringIO()
    call_command("sync_tenant", str(tenant.tenant_id), stdout=out)

    assert "incremental sync succeeded" in out.getvalue().splitlines()[-1]


def test_incremental_reads_only_changed_licenses(synced_tenant, emulator, emulator_snapshot, settings):
    settings.GRAPH_LICENSE_LISTING_INTERVAL_MINUTES = 60
    changed = next(
        user for user in emulator_snapshot["users"]
        if user.get("usageLocation") and not user.get("assignedLicenses") and user.get("accountEnabled", True)
    )
    sku = next(item for item in emulator_snapshot["subscribedSkus"] if item["skuPartNumber"] == "EXCHANGESTANDARD")
    control(emulator, "POST", f"tenants/{synced_tenant.tenant_id}/users/{changed['id']}/licenses",
            {"addLicenses": [{"skuId": sku["skuId"], "disabledPlans": []}], "removeLicenses": []})
    traffic = GraphTraffic(emulator)

    run = run_sync(SyncRun.objects.create(tenant=synced_tenant, kind=SyncKind.INCREMENTAL))

    assert run.status == SyncStatus.SUCCEEDED
    assert run.kind == SyncKind.INCREMENTAL
    user = DirectoryUser.objects.get(tenant=synced_tenant, user_id=changed["id"])
    assert user.licenses.filter(sku__sku_id=sku["skuId"]).exists()
    traffic.close()
    assert traffic.paths["users"] == 0, "no listing of every user"
    assert traffic.paths[f"users/{changed['id']}"] == 1, "the changed user's licenses read through $batch"
