"""Bulk jobs that meet an unavailable Graph wait to retry, with a real Celery worker and with eager tasks."""
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from pools.bulk import create_bulk_job, resume_stale_jobs
from pools.choices import BulkItemStatus, BulkJobKind, BulkJobStatus
from pools.models import BulkJob

from conftest import sync_now
from tests.test_bulk import _upload_file, allot_spare, control, free_users, graph_sku_ids, setup_sales, wait_for_job


@pytest.fixture
def emulator_snapshot():
    from graphsync.emulator.generator import generate_tenant

    return generate_tenant(users=200, seed=11)


@pytest.fixture
def eager_tasks():
    from licensepools.celery import app

    # With the CELERY namespace, Celery reads the prefixed key; setting task_always_eager has no effect.
    previous = app.conf.task_always_eager
    app.conf.CELERY_TASK_ALWAYS_EAGER = True
    yield
    app.conf.CELERY_TASK_ALWAYS_EAGER = previous


def test_eager_upload_waits_instead_of_500(
    client, emulator, synced_tenant, make_portal_user, eager_tasks, django_capture_on_commit_callbacks
):
    admin, pool, sku = setup_sales(synced_tenant, make_portal_user)
    users = free_users(pool, 6)
    allot_spare(admin, pool, sku, len(users))
    client.force_login(admin)
    control(emulator, "POST", "faults", json={"serverErrorRate": 1.0})
    data = "\n".join(user.user_principal_name for user in users).encode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("pools:bulk_upload", args=[pool.pk]), {"kind": "assign", "sku": sku.pk, "file": _upload_file(data)}
        )

    job = BulkJob.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("pools:bulk_job", args=[job.pk])
    assert job.status == BulkJobStatus.WAITING
    assert job.retry_reason
    assert job.heartbeat_at is None
    assert timezone.now() < job.retry_at <= timezone.now() + timedelta(seconds=31)
    assert set(job.items.values_list("status", flat=True)) == {BulkItemStatus.PENDING}

    page = client.get(reverse("pools:bulk_job", args=[job.pk])).content.decode()
    assert "Waiting to retry" in page
    assert job.retry_reason in page
    assert "Resume it at" in page
    assert 'hx-trigger="every 1s"' not in page
    assert "stopped reporting progress" not in page

    control(emulator, "POST", "faults", json={"serverErrorRate": 0.0})
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("pools:bulk_job_resume", args=[job.pk]))

    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == BulkJobStatus.FINISHED
    assert job.retry_at is None
    assert job.retry_reason == ""
    assert set(job.items.values_list("status", flat=True)) == {BulkItemStatus.DONE}
    for user in users:
        assert str(sku.sku_id) in graph_sku_ids(emulator, synced_tenant, user)


def test_overdue_waiting_job_is_resumed(synced_tenant, make_portal_user, django_capture_on_commit_callbacks):
    admin, pool, sku = setup_sales(synced_tenant, make_portal_user)
    user = free_users(pool, 1)[0]
    job = create_bulk_job(
        acting_user=admin, pool=pool, sku=sku, kind=BulkJobKind.ASSIGN, user_principal_names=[user.user_principal_name]
    )
    due = BulkJob.objects.create(
        tenant=job.tenant, pool=pool, sku=sku, kind=BulkJobKind.ASSIGN, created_by=admin,
        status=BulkJobStatus.WAITING, retry_at=timezone.now() - timedelta(minutes=5), retry_reason="unavailable",
    )
    BulkJob.objects.filter(pk=job.pk).update(status=BulkJobStatus.WAITING, retry_at=timezone.now())

    with django_capture_on_commit_callbacks() as callbacks:
        resumed = resume_stale_jobs()

    assert resumed == [due.pk]
    assert len(callbacks) == 1


@pytest.mark.django_db(transaction=True)
def test_worker_retries_waiting_job(require_postgresql, celery_worker, emulator, tenant, make_portal_user, client):
    sync_now(tenant)
    admin, pool, sku = setup_sales(tenant, make_portal_user)
    users = free_users(pool, 3)
    allot_spare(admin, pool, sku, len(users))
    control(emulator, "POST", "faults", json={"serverErrorRate": 1.0})

    job = create_bulk_job(
        acting_user=admin, pool=pool, sku=sku, kind=BulkJobKind.ASSIGN,
        user_principal_names=[user.user_principal_name for user in users],
    )
    job = wait_for_job(job, BulkJobStatus.WAITING, timeout=60)

    assert job.retry_reason
    assert job.retry_at > timezone.now()
    assert job.heartbeat_at is None
    client.force_login(admin)
    page = client.get(reverse("pools:bulk_job", args=[job.pk])).content.decode()
    assert "It runs again at" in page
    assert 'hx-trigger="every 1s"' in page
    control(emulator, "POST", "faults", json={"serverErrorRate": 0.0})

    # The worker's own retry runs the job again about 30 seconds after the failure, without a resume.
    job = wait_for_job(job, BulkJobStatus.FINISHED, timeout=90)
    assert set(job.items.values_list("status", flat=True)) == {BulkItemStatus.DONE}
    assert job.retry_at is None
    for user in users:
        assert str(sku.sku_id) in graph_sku_ids(emulator, tenant, user)
