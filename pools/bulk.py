"""Bulk assign, revoke and reclaim jobs: reading a CSV of users, creating a job, running and resuming it.

A job runs item by item through ``services.assign_license`` and ``services.revoke_license``, or for a
reclaim job through ``pools.reclaim_jobs``, with the job creator as the acting user, so quotas, scope
and audit apply to each user as they do to a single change. A runner holds the job while its heartbeat
is fresh. An item still ``in_progress`` when a runner died is checked against Graph before anything is
retried, so no user is assigned twice, and no license is reclaimed twice.
"""
from __future__ import annotations

import csv
import io
import logging
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import close_old_connections, connection, transaction
from django.db.models import Count
from django.http import Http404
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from chargeback.history import close_interval, open_interval
from graphsync.choices import LicenseState
from graphsync.client import GraphClient
from graphsync.errors import (
    GraphConnectionError, GraphError, GraphNotFoundError, GraphServiceError, GraphThrottledError,
)
from graphsync.models import DirectoryUser, Sku, UserLicense
from rbac import scoping
from rbac.choices import Action

from .audit import record_event
from .choices import AuditAction, BulkItemStatus, BulkJobKind, BulkJobStatus, Outcome
from .exceptions import AssignmentRejected, GraphRejected, OutcomeUnknown, PoolsError
from .models import AuditEvent, BulkJob, BulkJobItem, Pool
from .normalization import is_invisible
from .seats import release_unit, take_unit
from .services import assign_license, check_disabled_plans, revoke_license

logger = logging.getLogger(__name__)

MAX_CSV_BYTES = 2 * 1024 * 1024
MAX_JOB_USERS = 5000
# A running job's runner writes heartbeat_at this often from a thread of its own, even during a slow
# Graph call. A job without a heartbeat for STALE_AFTER_SECONDS has lost its runner and may be resumed.
HEARTBEAT_SECONDS = 5
DEFAULT_STALE_AFTER_SECONDS = 60
INVALID_LINES_SHOWN = 5
UPN_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TRANSIENT_GRAPH_ERRORS = (GraphThrottledError, GraphServiceError, GraphConnectionError)


class BulkInputError(PoolsError):
    """The uploaded file or the job request is unusable; the message names the value and the fix."""


class TransientGraphFailure(Exception):
    """Graph was throttling or unavailable after the client's retries; the job should run again later."""


def stale_after() -> timedelta:
    return timedelta(seconds=getattr(settings, "BULK_JOB_STALE_SECONDS", DEFAULT_STALE_AFTER_SECONDS))


# Reading user principal names


@dataclass
class UserList:
    """User principal names in file order, each once, and the names that appeared more than once."""

    names: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


def _clean_cell(cell: str) -> str:
    """Return a CSV cell without invisible characters and surrounding whitespace.

    Zero-width spaces, byte order marks, bidirectional controls (all format characters, category Cf),
    blank letters and control characters come along when names are copied from web pages or documents.
    No user principal name contains them, so they are removed wherever they are. Spaces inside the value
    stay, so that "anna smith@contoso.com" is still rejected as invalid.
    """
    text = "".join(
        character for character in cell
        if character.isspace() or not (is_invisible(character) or unicodedata.category(character) == "Cc")
    )
    return text.strip()


def parse_upn_csv(data: bytes) -> UserList:
    """Read user principal names from a CSV file: one per line, or a column headed ``userPrincipalName``.

    The file is UTF-8 with or without a byte order mark. Blank lines are ignored and a name that appears
    again (in any letter case) is kept once and listed in ``duplicates``. Raises BulkInputError.
    """
    if len(data) > MAX_CSV_BYTES:
        raise BulkInputError(
            _("The file has %(size)s bytes; the maximum is %(max)s. Split it into smaller files.")
            % {"size": number_format(len(data)), "max": number_format(MAX_CSV_BYTES)}
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BulkInputError(
            _("The file is not UTF-8 text: byte %(position)s cannot be decoded. Save it as \"CSV UTF-8\" and "
              "upload it again.") % {"position": number_format(exc.start + 1)}
        ) from None
    if "\x00" in text:
        raise BulkInputError(_("The file contains NUL characters, so it is not a CSV text file. Save it as "
                               "\"CSV UTF-8\" and upload it again."))

    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = [(reader.line_num, [_clean_cell(cell) for cell in row]) for row in reader]
    except csv.Error as exc:
        raise BulkInputError(
            _("The file is not valid CSV at line %(line)s: %(error)s.") % {"line": reader.line_num, "error": exc}
        ) from None
    rows = [(line, cells) for line, cells in rows if any(cells)]
    if not rows:
        raise BulkInputError(_("The file contains no user principal names. Put one per line, or add a column "
                               "headed userPrincipalName."))

    header = [cell.casefold() for cell in rows[0][1]]
    if "userprincipalname" in header:
        column = header.index("userprincipalname")
        rows = rows[1:]
    else:
        column = 0
        wide = next((line for line, cells in rows if sum(1 for cell in cells if cell) > 1), None)
        if wide is not None:
            raise BulkInputError(
                _("Line %(line)s has several values, but no column is headed userPrincipalName. Add that header "
                  "above the column of user principal names, or put one name per line.") % {"line": wide}
            )

    result = UserList()
    seen: dict[str, str] = {}
    invalid: list[str] = []
    for line, cells in rows:
        value = cells[column] if column < len(cells) else ""
        if not value:
            continue
        if not UPN_PATTERN.match(value):
            invalid.append(_("line %(line)s: \"%(value)s\"") % {"line": line, "value": value[:100]})
            continue
        key = value.casefold()
        if key in seen:
            if seen[key] not in result.duplicates:
                result.duplicates.append(seen[key])
            continue
        seen[key] = value
        result.names.append(value)

    if invalid:
        shown = "; ".join(invalid[:INVALID_LINES_SHOWN])
        more = len(invalid) - INVALID_LINES_SHOWN
        message = _("These values are not user principal names of the form name@domain: %(values)s.") % {
            "values": shown
        }
        if more > 0:
            message += " " + _("%(count)s more lines have the same problem.") % {"count": number_format(more)}
        raise BulkInputError(message + " " + _("Correct the file and upload it again."))
    if not result.names:
        raise BulkInputError(_("The userPrincipalName column is empty. Fill it in and upload the file again."))
    if len(result.names) > MAX_JOB_USERS:
        raise BulkInputError(
            _("The file lists %(count)s users; one job takes at most %(max)s. Split the file.")
            % {"count": number_format(len(result.names)), "max": number_format(MAX_JOB_USERS)}
        )
    return result


# Creating, resuming and reporting jobs


def create_bulk_job(
    *, acting_user: AbstractBaseUser, pool: Pool, sku: Sku, kind: str, user_principal_names: list[str],
    disabled_plans: list[str] | None = None,
) -> BulkJob:
    """Create a job with one item per user and queue it once the transaction commits.

    Raises Http404 outside the acting user's scope, BulkInputError or AssignmentRejected for a bad request.
    """
    if not scoping.pools_for(acting_user, Action.ASSIGN).filter(pk=pool.pk).exists():
        raise Http404("No such pool.")
    if sku.tenant_id != pool.tenant_id:
        raise Http404("No such SKU in this tenant.")
    if kind not in (BulkJobKind.ASSIGN, BulkJobKind.REVOKE):
        raise BulkInputError(_("\"%(kind)s\" is not a bulk operation; choose assign or revoke.") % {"kind": kind})
    if kind == BulkJobKind.REVOKE and disabled_plans:
        raise BulkInputError(_("Disabled service plans apply only when assigning; clear them to revoke."))
    plans = check_disabled_plans(sku, disabled_plans) if kind == BulkJobKind.ASSIGN else []
    if not user_principal_names:
        raise BulkInputError(_("Choose at least one user, or upload a file of user principal names."))
    if len(user_principal_names) > MAX_JOB_USERS:
        raise BulkInputError(
            _("%(count)s users were chosen; one job takes at most %(max)s.")
            % {"count": number_format(len(user_principal_names)), "max": number_format(MAX_JOB_USERS)}
        )

    with transaction.atomic():
        job = BulkJob.objects.create(
            tenant=pool.tenant, pool=pool, sku=sku, kind=kind, disabled_plans=plans, created_by=acting_user
        )
        BulkJobItem.objects.bulk_create(
            BulkJobItem(job=job, position=position, user_principal_name=name)
            for position, name in enumerate(user_principal_names, start=1)
        )
        record_event(
            acting_user=acting_user, action=AuditAction.BULK_JOB_STARTED, tenant=pool.tenant, pool=pool, sku=sku,
            target=_("bulk job %(id)s") % {"id": job.pk},
            after={"job": job.pk, "kind": kind, "users": len(user_principal_names), "disabledPlans": plans},
        )
        enqueue(job)
    logger.info(
        "Bulk job %s (%s %s, %s users) created in pool %s (tenant %s) by %s",
        job.pk, kind, sku.part_number, len(user_principal_names), pool.pk, pool.tenant.tenant_id,
        acting_user.get_username(),
    )
    return job


def enqueue(job: BulkJob) -> None:
    """Queue the job's task once the current transaction commits."""
    from .tasks import run_bulk_job_task

    # The queue is named on each call so that a test worker's queue, set after Celery cached its router,
    # takes effect.
    job_id = job.pk
    transaction.on_commit(
        lambda: run_bulk_job_task.apply_async(args=[job_id], queue=settings.CELERY_TASK_DEFAULT_QUEUE)
    )


def get_job_or_404(acting_user: AbstractBaseUser, action: Action, job_pk: int) -> BulkJob:
    """Return a bulk job of a pool the user may act on, else raise Http404."""
    job = (
        BulkJob.objects.select_related("tenant", "pool", "pool__parent", "sku", "created_by")
        .filter(pk=job_pk, pool__in=scoping.pools_for(acting_user, action).values("pk"))
        .first()
    )
    if job is None:
        raise Http404("No such bulk job.")
    return job


def is_runner_alive(job: BulkJob) -> bool:
    return (
        job.status == BulkJobStatus.RUNNING
        and job.heartbeat_at is not None
        and timezone.now() - job.heartbeat_at < stale_after()
    )


def resume_bulk_job(*, acting_user: AbstractBaseUser, job: BulkJob) -> BulkJob:
    """Queue a job again whose runner stopped; items already finished stay as they are."""
    if not _may_run(acting_user, job):
        raise Http404("No such bulk job.")
    with transaction.atomic():
        job = BulkJob.objects.select_for_update().get(pk=job.pk)
        if job.status == BulkJobStatus.FINISHED:
            raise PoolsError(_("Bulk job %(id)s has finished; there is nothing to resume.") % {"id": job.pk})
        if is_runner_alive(job):
            seconds = int((timezone.now() - job.heartbeat_at).total_seconds())
            raise PoolsError(
                _("Bulk job %(id)s is still running: its worker reported progress %(seconds)s seconds ago. It can "
                  "be resumed once the worker has been silent for %(stale)s seconds.")
                % {"id": job.pk, "seconds": seconds, "stale": int(stale_after().total_seconds())}
            )
        pending = job.items.filter(status__in=[BulkItemStatus.PENDING, BulkItemStatus.IN_PROGRESS]).count()
        record_event(
            acting_user=acting_user, action=AuditAction.BULK_JOB_STARTED, tenant=job.tenant, pool=job.pool,
            sku=job.sku, target=_("bulk job %(id)s") % {"id": job.pk}, message=_("Resumed."),
            after={"job": job.pk, "resumed": True, "remainingUsers": pending},
        )
        enqueue(job)
    logger.info("Bulk job %s (tenant %s) resumed by %s", job.pk, job.tenant.tenant_id, acting_user.get_username())
    return job


def resume_stale_jobs() -> list[int]:
    """Queue every job whose runner went silent, and every queued job whose task never started."""
    cutoff = timezone.now() - stale_after()
    stale = list(
        BulkJob.objects.filter(status=BulkJobStatus.RUNNING, heartbeat_at__lt=cutoff).values_list("pk", flat=True)
    ) + list(
        BulkJob.objects.filter(status=BulkJobStatus.RUNNING, heartbeat_at__isnull=True).values_list("pk", flat=True)
    ) + list(
        BulkJob.objects.filter(status=BulkJobStatus.QUEUED, created_at__lt=cutoff).values_list("pk", flat=True)
    )
    # A waiting job whose retry is overdue lost its scheduled task, or never had one (tasks run eagerly).
    stale += list(
        BulkJob.objects.filter(status=BulkJobStatus.WAITING, retry_at__lt=cutoff).values_list("pk", flat=True)
    )
    for job_id in stale:
        logger.warning("Bulk job %s has no live runner; queued again", job_id)
        with transaction.atomic():
            enqueue(BulkJob(pk=job_id))
    return stale


def wait_for_retry(job_id: int, *, reason: str, countdown: float) -> BulkJob:
    """Mark a job as waiting to run again in ``countdown`` seconds because Graph was unavailable."""
    retry_at = timezone.now() + timedelta(seconds=countdown)
    BulkJob.objects.filter(pk=job_id).exclude(status=BulkJobStatus.FINISHED).update(
        status=BulkJobStatus.WAITING, heartbeat_at=None, retry_at=retry_at, retry_reason=reason
    )
    job = BulkJob.objects.select_related("tenant").get(pk=job_id)
    logger.warning(
        "Bulk job %s (tenant %s, pool %s) waits until %s to run again: %s",
        job.pk, job.tenant.tenant_id, job.pool_id, retry_at.isoformat(), reason,
    )
    return job


def job_progress(job: BulkJob) -> dict:
    """Count the job's items by status, with the number finished and the percentage done."""
    counts = {status: 0 for status in BulkItemStatus.values}
    for row in job.items.values("status").annotate(n=Count("pk")):
        counts[row["status"]] = row["n"]
    total = sum(counts.values())
    finished = counts[BulkItemStatus.DONE] + counts[BulkItemStatus.REJECTED] + counts[BulkItemStatus.FAILED]
    return {
        "counts": counts,
        "total": total,
        "finished": finished,
        "percent": round(100 * finished / total) if total else 100,
    }


def _csv_cell(value: str) -> str:
    """Prefix text that a spreadsheet would run as a formula with an apostrophe."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def results_csv(job: BulkJob) -> str:
    """Return the job's per-user outcomes as CSV text, to be sent as UTF-8 with a byte order mark."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["position", "userPrincipalName", "status", "message", "graphRequestId", "finishedAt"])
    for item in job.items.order_by("position"):
        writer.writerow([
            item.position, _csv_cell(item.user_principal_name), item.status, _csv_cell(item.message),
            item.graph_request_id, item.finished_at.isoformat() if item.finished_at else "",
        ])
    return buffer.getvalue()


# Running a job


class Heartbeat(threading.Thread):
    """Write the job's heartbeat_at every HEARTBEAT_SECONDS until stopped, in its own DB connection."""

    def __init__(self, job_id: int) -> None:
        super().__init__(name=f"bulk-job-{job_id}-heartbeat", daemon=True)
        self.job_id = job_id
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(HEARTBEAT_SECONDS):
                try:
                    BulkJob.objects.filter(pk=self.job_id, status=BulkJobStatus.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except Exception:  # noqa: BLE001 - a failed beat is logged; the next one tries again
                    logger.exception("Heartbeat of bulk job %s failed", self.job_id)
                    close_old_connections()
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=HEARTBEAT_SECONDS * 2)


def run_bulk_job(job_id: int, *, retry_transient: bool = False) -> str:
    """Run a job's pending items, after reconciling items a dead runner left in progress; return its status.

    With ``retry_transient``, a throttled or unreachable Graph puts the item back to pending and raises
    TransientGraphFailure so the task can run again later; without it, the item fails with Graph's reason.
    """
    job = _claim(job_id)
    if job is None:
        return "skipped"
    heartbeat = Heartbeat(job.pk)
    heartbeat.start()
    try:
        _reconcile_in_progress(job)
        if job.created_by is None or not _may_run(job.created_by, job):
            _reject_remaining(job)
            return _finish(job, BulkJobStatus.FAILED)
        process = _process_item
        if job.kind == BulkJobKind.RECLAIM:
            from .reclaim_jobs import process_item as process
        while True:
            item = job.items.filter(status=BulkItemStatus.PENDING).order_by("position").first()
            if item is None:
                break
            process(job, item, retry_transient=retry_transient)
        return _finish(job, BulkJobStatus.FINISHED)
    except TransientGraphFailure:
        # Give up the job at once so the retry can claim it without waiting for the heartbeat to go stale.
        BulkJob.objects.filter(pk=job.pk).update(heartbeat_at=None)
        raise
    finally:
        heartbeat.stop()


def _may_run(user: AbstractBaseUser, job: BulkJob) -> bool:
    """Tell whether ``user`` may run or resume the job: reclaim seats, or assign licenses, in its pool."""
    if job.kind == BulkJobKind.RECLAIM:
        from .recovery import can_reclaim

        return can_reclaim(user, job.pool)
    return scoping.pools_for(user, Action.ASSIGN).filter(pk=job.pool_id).exists()


def _claim(job_id: int) -> BulkJob | None:
    """Mark the job running for this runner, unless it finished or another runner's heartbeat is fresh."""
    with transaction.atomic():
        job = (
            BulkJob.objects.select_for_update(of=("self",))
            .select_related("tenant", "pool", "pool__parent", "sku", "created_by")
            .filter(pk=job_id)
            .first()
        )
        if job is None:
            logger.info("Bulk job %s no longer exists; nothing to run", job_id)
            return None
        if job.status == BulkJobStatus.FINISHED:
            logger.info("Bulk job %s (tenant %s) has finished already; skipped", job_id, job.tenant.tenant_id)
            return None
        if is_runner_alive(job):
            logger.info("Bulk job %s (tenant %s) has a live runner; skipped", job_id, job.tenant.tenant_id)
            return None
        now = timezone.now()
        job.status = BulkJobStatus.RUNNING
        job.started_at = job.started_at or now
        job.heartbeat_at = now
        job.finished_at = None
        job.retry_at = None
        job.retry_reason = ""
        job.save(update_fields=["status", "started_at", "heartbeat_at", "finished_at", "retry_at", "retry_reason"])
    logger.info("Bulk job %s (tenant %s, pool %s) started", job.pk, job.tenant.tenant_id, job.pool_id)
    return job


def _finish(job: BulkJob, status: str) -> str:
    now = timezone.now()
    BulkJob.objects.filter(pk=job.pk).update(
        status=status, finished_at=now, heartbeat_at=now, retry_at=None, retry_reason=""
    )
    logger.info("Bulk job %s (tenant %s, pool %s) ended: %s", job.pk, job.tenant.tenant_id, job.pool_id, status)
    return status


def _finish_item(item: BulkJobItem, status: str, message: str, request_id: str = "") -> None:
    BulkJobItem.objects.filter(pk=item.pk).update(
        status=status, message=message, graph_request_id=request_id or "", finished_at=timezone.now(),
        user=item.user,
    )


def _reject_remaining(job: BulkJob) -> None:
    if job.created_by is None:
        message = _("The portal user who started this job no longer exists, so nothing more is changed.")
    elif job.kind == BulkJobKind.RECLAIM:
        message = _("%(creator)s, who started this job, may no longer reclaim seats in pool %(pool)s, so nothing "
                    "more is changed.") % {"creator": job.created_by.get_username(), "pool": str(job.pool)}
    else:
        message = _("%(creator)s, who started this job, may no longer assign licenses in pool %(pool)s, so nothing "
                    "more is changed.") % {"creator": job.created_by.get_username(), "pool": str(job.pool)}
    job.items.filter(status__in=[BulkItemStatus.PENDING, BulkItemStatus.IN_PROGRESS]).update(
        status=BulkItemStatus.REJECTED, message=message, finished_at=timezone.now()
    )
    logger.warning("Bulk job %s (tenant %s): %s", job.pk, job.tenant.tenant_id, message)


def _resolve_user(job: BulkJob, item: BulkJobItem) -> tuple[DirectoryUser | None, str]:
    """Find the item's user in the job's pool, or return the rejection message."""
    name = item.user_principal_name
    user = (
        DirectoryUser.objects.filter(tenant=job.tenant, user_principal_name__iexact=name, is_deleted=False)
        .select_related("pool", "pool__parent")
        .first()
    )
    if user is not None and user.pool_id in job.pool.subtree_ids():
        return user, ""

    # Someone scoped to some pools must not learn from the message whether a user exists elsewhere.
    creator = job.created_by
    if creator is None:
        return None, _("%(upn)s is not a member of pool %(pool)s.") % {"upn": name, "pool": str(job.pool)}
    if user is None and scoping.tenants_with_tenant_permission(creator, Action.VIEW).filter(pk=job.tenant_id).exists():
        return None, _(
            "No user with the user principal name %(upn)s exists in the tenant. Check the spelling, or run a sync "
            "if the user was created recently."
        ) % {"upn": name}
    if user is not None and user.pool_id and scoping.pools_for(creator, Action.VIEW).filter(pk=user.pool_id).exists():
        return None, _(
            "%(upn)s is in pool %(other)s, not in %(pool)s. Start the job from pool %(other)s, or correct the "
            "user's attributes in Entra ID."
        ) % {"upn": name, "other": str(user.pool), "pool": str(job.pool)}
    return None, _(
        "%(upn)s is not a member of pool %(pool)s. Check the spelling, or run a sync if the user was created or "
        "moved recently."
    ) % {"upn": name, "pool": str(job.pool)}


def _process_item(job: BulkJob, item: BulkJobItem, *, retry_transient: bool) -> None:
    with transaction.atomic():
        claimed = BulkJobItem.objects.filter(pk=item.pk, status=BulkItemStatus.PENDING).update(
            status=BulkItemStatus.IN_PROGRESS
        )
        BulkJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())
    if not claimed:
        return

    user, rejection = _resolve_user(job, item)
    if user is None:
        _finish_item(item, BulkItemStatus.REJECTED, rejection)
        return
    item.user = user
    # The service writes the audit event that carries Graph's request id; it is the first one after this.
    last_event = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    try:
        if job.kind == BulkJobKind.ASSIGN:
            assign_license(
                acting_user=job.created_by, pool=job.pool, user=user, sku=job.sku, disabled_plans=job.disabled_plans
            )
        else:
            revoke_license(acting_user=job.created_by, pool=job.pool, user=user, sku=job.sku)
    except AssignmentRejected as exc:
        _finish_item(item, BulkItemStatus.REJECTED, exc.message)
        return
    except Http404:
        # The user moved out of the pool, or the creator's scope shrank, after the user was looked up.
        message = _resolve_user(job, item)[1] or _("%(upn)s is not a member of pool %(pool)s.") % {
            "upn": item.user_principal_name, "pool": str(job.pool)
        }
        _finish_item(item, BulkItemStatus.REJECTED, message)
        return
    except OutcomeUnknown as exc:
        # Sending the change again could undo one made meanwhile; the next sync settles this user.
        _finish_item(item, BulkItemStatus.FAILED, exc.message, exc.request_id)
        return
    except GraphRejected as exc:
        if retry_transient and isinstance(exc.__cause__, TRANSIENT_GRAPH_ERRORS):
            BulkJobItem.objects.filter(pk=item.pk).update(status=BulkItemStatus.PENDING, user=user)
            logger.warning(
                "Bulk job %s (tenant %s): Graph unavailable for %s; the job will run again: %s",
                job.pk, job.tenant.tenant_id, item.user_principal_name, exc.graph_message,
            )
            raise TransientGraphFailure(exc.message) from exc
        _finish_item(item, BulkItemStatus.FAILED, exc.message, exc.request_id)
        return

    event = (
        AuditEvent.objects.filter(
            pk__gt=last_event, target_user=user, sku=job.sku, outcome=Outcome.SUCCEEDED,
            action=AuditAction.LICENSE_ASSIGNED if job.kind == BulkJobKind.ASSIGN else AuditAction.LICENSE_REVOKED,
        )
        .order_by("-pk")
        .first()
    )
    message = _done_message(job, event, user)
    _finish_item(item, BulkItemStatus.DONE, message, event.graph_request_id if event else "")


def _done_message(job: BulkJob, event: AuditEvent | None, user: DirectoryUser) -> str:
    names = {"sku": job.sku.name}
    if job.kind == BulkJobKind.REVOKE:
        return _("Revoked %(sku)s.") % names
    if event is not None and event.before:
        return _("Changed the disabled service plans of %(sku)s; no new seat was taken.") % names
    if not user.account_enabled:
        # The seat of a disabled account is a reclaim candidate at once, so the result flags it.
        return _("Assigned %(sku)s (account disabled).") % names
    return _("Assigned %(sku)s.") % names


# Reconciling items a dead runner left in progress


def _reconcile_in_progress(job: BulkJob) -> None:
    """Settle each item left ``in_progress`` from what Graph holds, before anything is sent again."""
    for item in job.items.filter(status=BulkItemStatus.IN_PROGRESS).order_by("position"):
        if job.kind == BulkJobKind.RECLAIM:
            from .reclaim_jobs import reconcile_item

            reconcile_item(job, item)
            continue
        user = item.user
        if user is None:
            user, _rejection = _resolve_user(job, item)
        if user is None:
            # The runner stopped before it called Graph for this user, so processing it again is safe.
            BulkJobItem.objects.filter(pk=item.pk).update(status=BulkItemStatus.PENDING)
            continue
        item.user = user
        try:
            states = _direct_states(job, user)
        except GraphNotFoundError:
            states = None
        except GraphError as exc:
            # Without Graph's answer the item cannot be settled; it stays in progress for the next resume.
            logger.warning(
                "Bulk job %s (tenant %s): cannot check %s in Graph (%s); the job stops here",
                job.pk, job.tenant.tenant_id, user.user_id, exc,
            )
            raise TransientGraphFailure(str(exc)) from exc
        if job.kind == BulkJobKind.ASSIGN:
            _reconcile_assignment(job, item, user, states)
        else:
            _reconcile_revocation(job, item, user, states)


def _direct_states(job: BulkJob, user: DirectoryUser) -> list[dict]:
    """Return the user's direct licenseAssignmentStates entries for the job's SKU, as Graph holds them now."""
    body = GraphClient(job.tenant).get(
        f"users/{user.user_id}", params={"$select": "id,assignedLicenses,licenseAssignmentStates"}
    )
    sku_id = str(job.sku.sku_id).lower()
    return [
        state for state in body.get("licenseAssignmentStates") or []
        if str(state.get("skuId", "")).lower() == sku_id and not state.get("assignedByGroup")
    ]


def _reconcile_assignment(job: BulkJob, item: BulkJobItem, user: DirectoryUser, states: list[dict] | None) -> None:
    wanted = {plan.lower() for plan in job.disabled_plans}
    in_graph = next(
        (state for state in states or [] if {plan.lower() for plan in state.get("disabledPlans") or []} == wanted),
        None,
    )
    direct = UserLicense.objects.filter(user=user, sku=job.sku, assigned_by_group="").first()
    audit = {"acting_user": job.created_by, "tenant": job.tenant, "pool": job.pool, "user": user, "sku": job.sku}
    after = {"skuId": str(job.sku.sku_id), "disabledPlans": list(job.disabled_plans)}
    confirmed = _("Found in Microsoft Graph when the bulk job resumed after its worker stopped.")

    if in_graph is None:
        # Graph never applied the change: release the dead runner's reservation and process the item again.
        # NOTE: a single assignment of the same SKU to the same user started during this resume would
        # have its reservation removed too; its activation then fails instead of double-counting a seat.
        with transaction.atomic():
            if direct is not None and direct.state == LicenseState.PENDING:
                release_unit(direct)
            BulkJobItem.objects.filter(pk=item.pk).update(status=BulkItemStatus.PENDING, user=user)
        logger.info("Bulk job %s: %s was not assigned in Graph; it will be processed again", job.pk, user.user_id)
        return

    with transaction.atomic():
        if direct is None:
            take_unit(user, job.sku)
            UserLicense.objects.create(
                tenant=job.tenant, user=user, sku=job.sku, assigned_by_group="", state=LicenseState.ACTIVE,
                disabled_plans=list(job.disabled_plans), last_updated=timezone.now(),
            )
            open_interval(user, job.sku)
            record_event(action=AuditAction.LICENSE_ASSIGNED, after=after, message=confirmed, **audit)
        elif direct.state == LicenseState.PENDING:
            direct.state = LicenseState.ACTIVE
            direct.error = "None"
            direct.last_updated = timezone.now()
            direct.save(update_fields=["state", "error", "last_updated"])
            open_interval(user, job.sku)
            record_event(action=AuditAction.LICENSE_ASSIGNED, after=after, message=confirmed, **audit)
        elif {plan.lower() for plan in direct.disabled_plans} != wanted:
            before = {"skuId": str(job.sku.sku_id), "disabledPlans": list(direct.disabled_plans)}
            direct.disabled_plans = list(job.disabled_plans)
            direct.save(update_fields=["disabled_plans"])
            record_event(action=AuditAction.LICENSE_ASSIGNED, before=before, after=after, message=confirmed, **audit)
        # Otherwise the runner recorded the change before it stopped, or the user held the SKU already.
        _finish_item(item, BulkItemStatus.DONE, _("Assigned %(sku)s (confirmed in Microsoft Graph after the worker "
                                                  "stopped).") % {"sku": job.sku.name})
    logger.info("Bulk job %s: %s was assigned in Graph before the worker stopped; marked done", job.pk, user.user_id)


def _reconcile_revocation(job: BulkJob, item: BulkJobItem, user: DirectoryUser, states: list[dict] | None) -> None:
    if states:
        BulkJobItem.objects.filter(pk=item.pk).update(status=BulkItemStatus.PENDING, user=user)
        logger.info("Bulk job %s: %s still holds the SKU in Graph; it will be processed again", job.pk, user.user_id)
        return
    with transaction.atomic():
        direct = UserLicense.objects.filter(user=user, sku=job.sku, assigned_by_group="").first()
        if direct is not None:
            release_unit(direct)
            if not UserLicense.objects.filter(user=user, sku=job.sku).exclude(state="Error").exists():
                close_interval(user, job.sku)
            record_event(
                action=AuditAction.LICENSE_REVOKED, acting_user=job.created_by, tenant=job.tenant, pool=job.pool,
                user=user, sku=job.sku, before={"skuId": str(job.sku.sku_id), "disabledPlans": direct.disabled_plans},
                message=_("Found removed in Microsoft Graph when the bulk job resumed after its worker stopped."),
            )
        _finish_item(item, BulkItemStatus.DONE, _("Revoked %(sku)s (confirmed in Microsoft Graph after the worker "
                                                  "stopped).") % {"sku": job.sku.name})
