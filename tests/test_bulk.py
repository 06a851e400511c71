"""Bulk assign and revoke jobs: CSV input, per-user outcomes through a real Celery worker, and resume."""
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from graphsync.choices import LicenseState
from graphsync.models import DirectoryUser, Sku, UserLicense
from pools.bulk import BulkInputError, create_bulk_job, parse_upn_csv, resume_bulk_job, results_csv, run_bulk_job
from pools.choices import AuditAction, BulkItemStatus, BulkJobKind, BulkJobStatus, Outcome, PoolAttribute
from pools.exceptions import PoolsError
from pools.models import AuditEvent, BulkJob, Pool
from pools.services import assign_license, set_allotment, set_scheme

from conftest import ROOT, sync_now

CONTROL_HEADERS = {"X-Emulator-Control": "test-control-token"}


@pytest.fixture
def emulator_snapshot():
    from graphsync.emulator.generator import generate_tenant

    return generate_tenant(users=200, seed=11)


def control(emulator, method: str, path: str, **kwargs) -> requests.Response:
    response = requests.request(
        method, f"{emulator.base_url}/_emulator/{path}", headers=CONTROL_HEADERS, verify=emulator.ca_path,
        timeout=10, **kwargs
    )
    assert response.status_code < 300, response.text
    return response


def graph_sku_ids(emulator, tenant, user: DirectoryUser) -> set[str]:
    body = control(emulator, "GET", f"tenants/{tenant.tenant_id}/users/{user.user_id}").json()
    return {item["skuId"].lower() for item in body["assignedLicenses"]}


def assign_calls(emulator, user: DirectoryUser) -> int:
    entries = control(emulator, "GET", "requests").json()["value"]
    return sum(1 for entry in entries if entry["path"] == f"/v1.0/users/{user.user_id}/assignLicense")


def setup_sales(tenant, make_portal_user):
    """Split the tenant by department and return (admin, the largest pool, SPE_E3)."""
    admin = make_portal_user("admin", role="tenant_admin", tenant=tenant)
    set_scheme(acting_user=admin, tenant=tenant, level1_attribute=PoolAttribute.DEPARTMENT)
    pool = Pool.objects.get(tenant=tenant, parent=None, key="sales")
    return admin, pool, Sku.objects.get(tenant=tenant, part_number="SPE_E3")


def free_users(pool: Pool, count: int) -> list[DirectoryUser]:
    holders = UserLicense.objects.values("user_id")
    users = list(
        pool.members_queryset().exclude(usage_location="").exclude(pk__in=holders).order_by("user_principal_name")[:count]
    )
    assert len(users) == count, f"pool {pool} has only {len(users)} free users"
    return users


def allot_spare(admin, pool: Pool, sku: Sku, spare: int) -> None:
    consumption = pool.members_queryset().filter(licenses__sku=sku).exclude(licenses__state="Error").distinct().count()
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=consumption + spare)


def wait_for_job(job: BulkJob, status: str = BulkJobStatus.FINISHED, timeout: float = 120) -> BulkJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status == status:
            return job
        time.sleep(0.2)
    raise AssertionError(f"bulk job {job.pk} is {job.status}, not {status}, after {timeout} s")


def outcomes(job: BulkJob) -> dict[str, tuple[str, str]]:
    return {item.user_principal_name: (item.status, item.message) for item in job.items.all()}


# Reading CSV files


def test_csv_one_per_line_with_bom():
    data = "\ufeffalice@contoso.com\r\n\r\nbob@contoso.com\n  \nALICE@contoso.com\n".encode("utf-8")

    result = parse_upn_csv(data)

    assert result.names == ["alice@contoso.com", "bob@contoso.com"]
    assert result.duplicates == ["alice@contoso.com"]


def test_csv_invisible_characters_removed():
    data = (
        "\u200banna@contoso.com\n"
        "bob@contoso.com\u2060\u00a0\n"
        "\u202ecarol@contoso.com\u202c,\n"
        "ANNA@contoso.com\ufeff\n"
    ).encode("utf-8")

    result = parse_upn_csv(data)

    assert result.names == ["anna@contoso.com", "bob@contoso.com", "carol@contoso.com"]
    assert result.duplicates == ["anna@contoso.com"]


def test_csv_invisible_header_and_cells():
    data = "\u200buserPrincipalName\u200b,department\n\u00adalice@contoso.com ,Sales\n\u3164\u200b,HR\n".encode()

    assert parse_upn_csv(data).names == ["alice@contoso.com"]


def test_csv_inner_space_still_invalid():
    with pytest.raises(BulkInputError) as caught:
        parse_upn_csv("anna\u200b smith@contoso.com\n".encode())

    assert '"anna smith@contoso.com"' in caught.value.message


def test_csv_user_principal_name_column():
    data = b"displayName,UserPrincipalName,department\nAlice,alice@contoso.com,Sales\nBob,bob@contoso.com,\n\n"

    assert parse_upn_csv(data).names == ["alice@contoso.com", "bob@contoso.com"]


def test_csv_not_utf8():
    with pytest.raises(BulkInputError) as caught:
        parse_upn_csv("jürgen@contoso.com\n".encode("latin-1"))

    assert caught.value.message == (
        'The file is not UTF-8 text: byte 2 cannot be decoded. Save it as "CSV UTF-8" and upload it again.'
    )


def test_csv_columns_without_header():
    with pytest.raises(BulkInputError) as caught:
        parse_upn_csv(b"alice@contoso.com\nbob@contoso.com,Sales\n")

    assert caught.value.message == (
        "Line 2 has several values, but no column is headed userPrincipalName. Add that header above the column "
        "of user principal names, or put one name per line."
    )


def test_csv_invalid_names():
    with pytest.raises(BulkInputError) as caught:
        parse_upn_csv(b"alice@contoso.com\nbob\n\ncarol@\n")

    assert caught.value.message == (
        'These values are not user principal names of the form name@domain: line 2: "bob"; line 4: "carol@". '
        "Correct the file and upload it again."
    )


def test_csv_empty():
    with pytest.raises(BulkInputError) as caught:
        parse_upn_csv(b"\n \n")

    assert caught.value.message == (
        "The file contains no user principal names. Put one per line, or add a column headed userPrincipalName."
    )


def test_csv_header_only():
    with pytest.raises(BulkInputError) as caught:
        parse_upn_csv(b"userPrincipalName\n")

    assert caught.value.message == "The userPrincipalName column is empty. Fill it in and upload the file again."


def test_upload_shows_parse_error(client, synced_tenant, make_portal_user):
    admin, pool, sku = setup_sales(synced_tenant, make_portal_user)
    client.force_login(admin)
    upload = _upload_file(b"not-a-name\n")

    response = client.post(reverse("pools:bulk_upload", args=[pool.pk]), {"kind": "assign", "sku": sku.pk, "file": upload})

    assert response.status_code == 200
    assert "line 1: &quot;not-a-name&quot;" in response.content.decode()
    assert not BulkJob.objects.exists()


def _upload_file(data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("users.csv", data, content_type="text/csv")


def test_upload_creates_job(client, synced_tenant, make_portal_user):
    admin, pool, sku = setup_sales(synced_tenant, make_portal_user)
    users = free_users(pool, 2)
    client.force_login(admin)
    data = "\n".join([users[0].user_principal_name, users[1].user_principal_name, users[0].user_principal_name.upper()])

    response = client.post(
        reverse("pools:bulk_upload", args=[pool.pk]), {"kind": "assign", "sku": sku.pk, "file": _upload_file(data.encode())}
    )

    job = BulkJob.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("pools:bulk_job", args=[job.pk])
    assert [item.user_principal_name for item in job.items.order_by("position")] == [u.user_principal_name for u in users]
    assert job.created_by == admin
    started = AuditEvent.objects.get(action=AuditAction.BULK_JOB_STARTED)
    assert started.after == {"job": job.pk, "kind": "assign", "users": 2, "disabledPlans": []}


# Running jobs


@pytest.mark.django_db(transaction=True)
def test_bulk_assign_mixed_outcomes(require_postgresql, celery_worker, emulator, tenant, make_portal_user):
    sync_now(tenant)
    admin, pool, sku = setup_sales(tenant, make_portal_user)
    ok1, ok2, gone, ok3, over = free_users(pool, 5)
    elsewhere = DirectoryUser.objects.filter(tenant=tenant, pool__key="marketing").first()
    allot_spare(admin, pool, sku, 3)
    control(emulator, "DELETE", f"tenants/{tenant.tenant_id}/users/{gone.user_id}")
    names = [u.user_principal_name for u in (ok1, ok2, gone, ok3, over)]
    names += ["nobody@example.invalid", elsewhere.user_principal_name]

    job = create_bulk_job(acting_user=admin, pool=pool, sku=sku, kind=BulkJobKind.ASSIGN, user_principal_names=names)
    job = wait_for_job(job)

    result = outcomes(job)
    seats = pool.allotments.get(sku=sku).seats
    for user in (ok1, ok2, ok3):
        assert result[user.user_principal_name] == (BulkItemStatus.DONE, "Assigned Microsoft 365 E3.")
        assert str(sku.sku_id) in graph_sku_ids(emulator, tenant, user)
    assert result[over.user_principal_name] == (
        BulkItemStatus.REJECTED,
        f"Pool {pool} has no spare seat of Microsoft 365 E3: {seats} allotted, {seats} in use, 0 spare. Revoke a "
        "license in this pool or ask a tenant administrator to raise its allotment.",
    )
    status, message = result[gone.user_principal_name]
    assert status == BulkItemStatus.FAILED
    assert message.startswith(f"{gone.user_principal_name} no longer exists in Entra ID. Run a sync to refresh the pool.")
    assert job.items.get(user_principal_name=gone.user_principal_name).graph_request_id
    assert result["nobody@example.invalid"] == (
        BulkItemStatus.REJECTED,
        "No user with the user principal name nobody@example.invalid exists in the tenant. Check the spelling, or "
        "run a sync if the user was created recently.",
    )
    assert result[elsewhere.user_principal_name] == (
        BulkItemStatus.REJECTED,
        f"{elsewhere.user_principal_name} is in pool {elsewhere.pool}, not in {pool}. Start the job from pool "
        f"{elsewhere.pool}, or correct the user's attributes in Entra ID.",
    )
    done = job.items.get(user_principal_name=ok1.user_principal_name)
    assert done.graph_request_id == AuditEvent.objects.get(
        action=AuditAction.LICENSE_ASSIGNED, target_user=ok1, outcome=Outcome.SUCCEEDED
    ).graph_request_id
    assert AuditEvent.objects.filter(action=AuditAction.LICENSE_ASSIGNED, target_user=over, outcome=Outcome.REJECTED).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.LICENSE_ASSIGNED, target_user=gone, outcome=Outcome.FAILED).count() == 1
    assert job.finished_at is not None


def test_manager_cannot_tell_unknown_from_elsewhere(emulator, synced_tenant, make_portal_user):
    admin, pool, sku = setup_sales(synced_tenant, make_portal_user)
    manager = make_portal_user("manager", role="pool_manager", pool=pool)
    elsewhere = DirectoryUser.objects.filter(tenant=synced_tenant, pool__key="marketing").first()
    job = create_bulk_job(
        acting_user=manager, pool=pool, sku=sku, kind=BulkJobKind.ASSIGN,
        user_principal_names=["nobody@example.invalid", elsewhere.user_principal_name],
    )

    assert run_bulk_job(job.pk) == BulkJobStatus.FINISHED

    result = outcomes(job)
    for name in ("nobody@example.invalid", elsewhere.user_principal_name):
        assert result[name] == (
            BulkItemStatus.REJECTED,
            f"{name} is not a member of pool {pool}. Check the spelling, or run a sync if the user was created or "
            "moved recently.",
        )


def test_bulk_revoke(emulator, synced_tenant, make_portal_user):
    admin, pool, sku = setup_sales(synced_tenant, make_portal_user)
    allot_spare(admin, pool, sku, 2)
    holder, unlicensed = free_users(pool, 2)
    assign_license(acting_user=admin, pool=pool, user=holder, sku=sku)
    job = create_bulk_job(
        acting_user=admin, pool=pool, sku=sku, kind=BulkJobKind.REVOKE,
        user_principal_names=[holder.user_principal_name, unlicensed.user_principal_name],
    )

    run_bulk_job(job.pk)

    result = outcomes(job)
    assert result[holder.user_principal_name] == (BulkItemStatus.DONE, "Revoked Microsoft 365 E3.")
    assert result[unlicensed.user_principal_name] == (
        BulkItemStatus.REJECTED, f"{unlicensed.user_principal_name} does not hold Microsoft 365 E3."
    )
    assert str(sku.sku_id) not in graph_sku_ids(emulator, synced_tenant, holder)


def test_creator_without_scope_stops_job(emulator, synced_tenant, make_portal_user):
    from rbac.models import Grant
    from rbac.services import remove_grant

    admin, pool, sku = setup_sales(synced_tenant, make_portal_user)
    manager = make_portal_user("manager", role="pool_manager", pool=pool)
    user = free_users(pool, 1)[0]
    job = create_bulk_job(
        acting_user=manager, pool=pool, sku=sku, kind=BulkJobKind.ASSIGN, user_principal_names=[user.user_principal_name]
    )
    for grant in Grant.objects.filter(user=manager):
        remove_grant(acting_user=None, grant=grant)

    assert run_bulk_job(job.pk) == BulkJobStatus.FAILED

    assert outcomes(job)[user.user_principal_name] == (
        BulkItemStatus.REJECTED,
        f"manager, who started this job, may no longer assign licenses in pool {pool}, so nothing more is changed.",
    )
    assert str(sku.sku_id) not in graph_sku_ids(emulator, synced_tenant, user)


def test_unknown_plan_rejects_job(synced_tenant, make_portal_user):
    admin, pool, sku = setup_sales(synced_tenant, make_portal_user)

    with pytest.raises(PoolsError) as caught:
        create_bulk_job(
            acting_user=admin, pool=pool, sku=sku, kind=BulkJobKind.ASSIGN, user_principal_names=["a@contoso.com"],
            disabled_plans=["not-a-plan"],
        )

    assert caught.value.message.startswith('"not-a-plan" is not a service plan of Microsoft 365 E3')
    assert not BulkJob.objects.exists()


def test_results_csv_is_formula_safe(synced_tenant, make_portal_user):
    admin, pool, sku = setup_sales(synced_tenant, make_portal_user)
    job = create_bulk_job(
        acting_user=admin, pool=pool, sku=sku, kind=BulkJobKind.ASSIGN, user_principal_names=["=cmd@contoso.com"]
    )
    run_bulk_job(job.pk)

    lines = results_csv(job).splitlines()

    assert lines[0] == "position,userPrincipalName,status,message,graphRequestId,finishedAt"
    assert lines[1].startswith("1,'=cmd@contoso.com,rejected,")


def test_running_job_cannot_resume(synced_tenant, make_portal_user):
    admin, pool, sku = setup_sales(synced_tenant, make_portal_user)
    job = create_bulk_job(
        acting_user=admin, pool=pool, sku=sku, kind=BulkJobKind.ASSIGN, user_principal_names=["a@contoso.com"]
    )
    BulkJob.objects.filter(pk=job.pk).update(status=BulkJobStatus.RUNNING, heartbeat_at=timezone.now())

    with pytest.raises(PoolsError) as caught:
        resume_bulk_job(acting_user=admin, job=job)

    assert caught.value.message == (
        f"Bulk job {job.pk} is still running: its worker reported progress 0 seconds ago. It can be resumed once "
        "the worker has been silent for 60 seconds."
    )


# Resuming after a worker died


def start_worker(queue: str, log_path: Path) -> subprocess.Popen:
    """Start a Celery worker on ``queue`` bound to the test database, and wait until it answers a ping."""
    from licensepools.celery import app

    db = connection.settings_dict
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["CELERY_TASK_DEFAULT_QUEUE"] = queue
    node = f"{queue}-{uuid.uuid4().hex[:4]}"
    log = log_path.open("a")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "licensepools", "worker", "--pool=threads", "--concurrency=2",
         "-Q", queue, "--without-gossip", "--without-mingle", "-l", "info", "-n", f"{node}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the Celery worker exited with {process.returncode}; see {log_path}"
        if app.control.ping(destination=[f"{node}@{socket.gethostname()}"], timeout=1):
            return process
    process.kill()
    raise AssertionError(f"the Celery worker did not answer a ping within 60 s; see {log_path}")


@pytest.mark.django_db(transaction=True)
def test_resume_after_killed_worker(require_postgresql, emulator, tenant, make_portal_user, settings, monkeypatch):
    from licensepools.celery import app

    sync_now(tenant)
    admin, pool, sku = setup_sales(tenant, make_portal_user)
    users = free_users(pool, 12)
    allot_spare(admin, pool, sku, len(users))
    queue = f"licensepools-bulk-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    # Celery reads this app's settings under the CELERY_ prefix, so assigning task_always_eager changes nothing.
    # The bulk job must run in the worker started below, which this test kills midway.
    monkeypatch.setattr(app.conf, "CELERY_TASK_ALWAYS_EAGER", False)
    log_path = ROOT / "test-artifacts" / f"celery-{queue}.log"
    log_path.parent.mkdir(exist_ok=True)
    control(emulator, "POST", "faults", json={"latencyMs": 300})

    first = start_worker(queue, log_path)
    try:
        job = create_bulk_job(
            acting_user=admin, pool=pool, sku=sku, kind=BulkJobKind.ASSIGN,
            user_principal_names=[user.user_principal_name for user in users],
        )
        deadline = time.monotonic() + 60
        while job.items.filter(status=BulkItemStatus.DONE).count() < 3:
            assert time.monotonic() < deadline, "the first worker processed fewer than 3 users in 60 s"
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()

    job.refresh_from_db()
    assert job.status == BulkJobStatus.RUNNING
    done_before = job.items.filter(status=BulkItemStatus.DONE).count()
    assert 3 <= done_before < len(users)
    # The dead worker's heartbeat ages past the stale limit; moving it back stands in for that wait.
    BulkJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    time.sleep(1)  # Let the emulator finish a request the dead worker sent during the injected latency.

    second = start_worker(queue, log_path)
    try:
        resume_bulk_job(acting_user=admin, job=job)
        job = wait_for_job(job)
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(timeout=20)
        except subprocess.TimeoutExpired:
            second.kill()

    assert {item.status for item in job.items.all()} == {BulkItemStatus.DONE}
    for user in users:
        assert assign_calls(emulator, user) == 1, f"{user.user_principal_name} got assignLicense more than once"
        assert str(sku.sku_id) in graph_sku_ids(emulator, tenant, user)
        events = AuditEvent.objects.filter(action=AuditAction.LICENSE_ASSIGNED, target_user=user, outcome=Outcome.SUCCEEDED)
        assert events.count() == 1
        assert UserLicense.objects.get(user=user, sku=sku, assigned_by_group="").state == LicenseState.ACTIVE
    assert AuditEvent.objects.filter(action=AuditAction.BULK_JOB_STARTED, message="Resumed.").count() == 1


def test_reconcile_confirms_graph_assignment(emulator, synced_tenant, make_portal_user):
    admin, pool, sku = setup_sales(synced_tenant, make_portal_user)
    allot_spare(admin, pool, sku, 1)
    user = free_users(pool, 1)[0]
    job = create_bulk_job(
        acting_user=admin, pool=pool, sku=sku, kind=BulkJobKind.ASSIGN, user_principal_names=[user.user_principal_name]
    )
    # A runner reserved the seat, Graph applied the assignment, and the runner died before recording it.
    UserLicense.objects.create(
        tenant=synced_tenant, user=user, sku=sku, state=LicenseState.PENDING, reserved_at=timezone.now()
    )
    control(emulator, "POST", f"tenants/{synced_tenant.tenant_id}/users/{user.user_id}/licenses",
            json={"addLicenses": [{"skuId": str(sku.sku_id), "disabledPlans": []}], "removeLicenses": []})
    job.items.update(status=BulkItemStatus.IN_PROGRESS, user=user)
    BulkJob.objects.filter(pk=job.pk).update(
        status=BulkJobStatus.RUNNING, heartbeat_at=timezone.now() - timedelta(minutes=5)
    )

    assert run_bulk_job(job.pk) == BulkJobStatus.FINISHED

    assert outcomes(job)[user.user_principal_name] == (
        BulkItemStatus.DONE, "Assigned Microsoft 365 E3 (confirmed in Microsoft Graph after the worker stopped)."
    )
    assert assign_calls(emulator, user) == 0
    assert UserLicense.objects.get(user=user, sku=sku).state == LicenseState.ACTIVE
    event = AuditEvent.objects.get(action=AuditAction.LICENSE_ASSIGNED, target_user=user)
    assert event.message == "Found in Microsoft Graph when the bulk job resumed after its worker stopped."


def test_reconcile_releases_unsent_reservation(emulator, synced_tenant, make_portal_user):
    admin, pool, sku = setup_sales(synced_tenant, make_portal_user)
    allot_spare(admin, pool, sku, 1)
    user = free_users(pool, 1)[0]
    job = create_bulk_job(
        acting_user=admin, pool=pool, sku=sku, kind=BulkJobKind.ASSIGN, user_principal_names=[user.user_principal_name]
    )
    # A runner reserved the seat and died before Graph received the assignment.
    UserLicense.objects.create(
        tenant=synced_tenant, user=user, sku=sku, state=LicenseState.PENDING, reserved_at=timezone.now()
    )
    job.items.update(status=BulkItemStatus.IN_PROGRESS, user=user)
    BulkJob.objects.filter(pk=job.pk).update(status=BulkJobStatus.RUNNING, heartbeat_at=None)

    run_bulk_job(job.pk)

    assert outcomes(job)[user.user_principal_name] == (BulkItemStatus.DONE, "Assigned Microsoft 365 E3.")
    assert assign_calls(emulator, user) == 1
    assert UserLicense.objects.get(user=user, sku=sku).state == LicenseState.ACTIVE
