"""Bulk reclaim as a background job: one item per selected candidate, each user's own SKUs.

A reclaim job runs through the bulk-job runner of ``pools.bulk`` (claim, heartbeat, resume), but an
item covers every license of one user, so each item keeps a list of license outcomes in
``BulkJobItem.licenses``. Before Graph is called for a SKU, its entry is saved as ``in_progress``. A
runner that resumes after a dead one asks Graph about that one SKU and settles it, so no license is
removed twice and no reclaim goes unrecorded. SKUs with a final outcome are never tried again.
"""
from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import Http404
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from chargeback.history import close_interval
from graphsync.client import GraphClient
from graphsync.errors import GraphError, GraphNotFoundError
from graphsync.models import DirectoryUser, Sku, UserLicense

from . import bulk, recovery, services
from .audit import record_event
from .choices import AuditAction, BulkItemStatus, BulkJobKind, Outcome
from .exceptions import AssignmentRejected, GraphRejected, OutcomeUnknown
from .models import BulkJob, BulkJobItem, Pool

logger = logging.getLogger(__name__)


class LicenseStatus:
    """The states of one license in a reclaim item's ``licenses`` list."""

    IN_PROGRESS = "in_progress"
    RECLAIMED = "reclaimed"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    FAILED = "failed"


FINAL_STATUSES = {LicenseStatus.RECLAIMED, LicenseStatus.SKIPPED, LicenseStatus.REJECTED, LicenseStatus.FAILED}


# Creating a job


def create_reclaim_job(*, acting_user: AbstractBaseUser, pool: Pool, user_pks: list[int]) -> BulkJob:
    """Create a reclaim job for the selected members of ``pool`` and queue it once the transaction commits.

    A selected user who is no longer a member of the pool gets an item that is rejected at once, named by
    ID only, so nothing about users outside the pool is revealed. Raises Http404 outside the acting
    user's scope and RecoveryError for an empty or too large selection.
    """
    if not recovery.can_reclaim(acting_user, pool):
        raise Http404("No such pool.")
    user_pks = list(dict.fromkeys(user_pks))
    if not user_pks:
        raise recovery.RecoveryError(_("Select at least one candidate to reclaim."))
    if len(user_pks) > bulk.MAX_JOB_USERS:
        raise recovery.RecoveryError(
            _("%(count)s users were selected; one bulk reclaim takes at most %(max)s. Select fewer users.")
            % {"count": number_format(len(user_pks)), "max": number_format(bulk.MAX_JOB_USERS)}
        )

    members = {user.pk: user for user in pool.members_queryset().filter(pk__in=user_pks)}
    now = timezone.now()
    items = []
    for position, user_pk in enumerate(user_pks, start=1):
        user = members.get(user_pk)
        if user is not None:
            items.append(BulkJobItem(position=position, user=user, user_principal_name=user.user_principal_name))
            continue
        items.append(BulkJobItem(
            position=position, user_principal_name=_("User %(id)s") % {"id": user_pk},
            status=BulkItemStatus.REJECTED, finished_at=now,
            message=_("This user is no longer a member of pool %(pool)s. Run a sync if the user moved recently.")
            % {"pool": str(pool)},
        ))

    with transaction.atomic():
        job = BulkJob.objects.create(tenant=pool.tenant, pool=pool, sku=None, kind=BulkJobKind.RECLAIM, created_by=acting_user)
        for item in items:
            item.job = job
        BulkJobItem.objects.bulk_create(items)
        record_event(
            acting_user=acting_user, action=AuditAction.BULK_JOB_STARTED, tenant=pool.tenant, pool=pool,
            target=_("bulk job %(id)s") % {"id": job.pk},
            after={"job": job.pk, "kind": BulkJobKind.RECLAIM, "users": len(user_pks)},
        )
        bulk.enqueue(job)
    logger.info(
        "Reclaim job %s (%s users, %s no longer in the pool) created in pool %s (tenant %s) by %s",
        job.pk, len(user_pks), len(user_pks) - len(members), pool.pk, pool.tenant.tenant_id, acting_user.get_username(),
    )
    return job


# Processing an item


def process_item(job: BulkJob, item: BulkJobItem, *, retry_transient: bool) -> None:
    """Reclaim every reclaimable license of the item's user that has no final outcome yet."""
    with transaction.atomic():
        claimed = BulkJobItem.objects.filter(pk=item.pk, status=BulkItemStatus.PENDING).update(
            status=BulkItemStatus.IN_PROGRESS
        )
        BulkJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())
    if not claimed:
        return
    item.refresh_from_db()

    user = _member(job, item)
    if user is None:
        _finish(item, BulkItemStatus.REJECTED, _(
            "This user is no longer a member of pool %(pool)s. Run a sync if the user moved recently."
        ) % {"pool": str(job.pool)})
        return
    candidate = recovery.evaluate_user(job.pool, user)
    rejection = recovery.not_candidate_message(user, candidate)
    if rejection and any(entry["status"] in FINAL_STATUSES for entry in item.licenses):
        # A dead runner reclaimed this user's licenses before it could finish the item.
        _finish_from_licenses(item)
        return
    if rejection:
        record_event(
            acting_user=job.created_by, action=AuditAction.LICENSE_RECLAIMED, outcome=Outcome.REJECTED,
            tenant=job.tenant, pool=job.pool, user=user, message=rejection,
        )
        _finish(item, BulkItemStatus.REJECTED, rejection)
        return

    settled = {entry["skuId"] for entry in item.licenses if entry["status"] in FINAL_STATUSES}
    for held in candidate.licenses:
        if str(held.sku.sku_id) in settled:
            continue
        if not held.reclaimable:
            _record(item, held.sku, LicenseStatus.SKIPPED, held.skip_message)
            continue
        _record(item, held.sku, LicenseStatus.IN_PROGRESS, "", reasons=candidate.reason_codes)
        try:
            event = recovery.reclaim_license(acting_user=job.created_by, pool=job.pool, user=user, sku=held.sku)
        except (AssignmentRejected, Http404) as exc:
            message = getattr(exc, "message", "") or _("%(user)s is no longer a member of pool %(pool)s.") % {
                "user": user.user_principal_name, "pool": str(job.pool)
            }
            _record(item, held.sku, LicenseStatus.REJECTED, message)
        except OutcomeUnknown as exc:
            # The license stays counted as an unconfirmed removal, which the next sync settles.
            _record(item, held.sku, LicenseStatus.FAILED, exc.message, request_id=exc.request_id)
        except GraphRejected as exc:
            if retry_transient and isinstance(exc.__cause__, bulk.TRANSIENT_GRAPH_ERRORS):
                # Graph may have applied the removal before it failed, so the license stays in progress
                # and the next run asks Graph before sending anything again.
                logger.warning(
                    "Reclaim job %s (tenant %s): Graph unavailable for %s; the job will run again: %s",
                    job.pk, job.tenant.tenant_id, user.user_id, exc.graph_message,
                )
                raise bulk.TransientGraphFailure(exc.message) from exc
            _record(item, held.sku, LicenseStatus.FAILED, exc.message, request_id=exc.request_id)
        else:
            _record(
                item, held.sku, LicenseStatus.RECLAIMED, _("Reclaimed %(sku)s.") % {"sku": held.sku.name},
                request_id=event.graph_request_id,
            )
    _finish_from_licenses(item)


def _member(job: BulkJob, item: BulkJobItem) -> DirectoryUser | None:
    if item.user_id is None:
        return None
    return (
        DirectoryUser.objects.filter(pk=item.user_id, is_deleted=False, pool_id__in=job.pool.subtree_ids())
        .select_related("pool")
        .first()
    )


def _record(
    item: BulkJobItem, sku: Sku, status: str, message: str, *, request_id: str = "", reasons: list[str] | None = None
) -> None:
    """Set the outcome of one SKU in the item's license list and save the list at once."""
    entry = {
        "skuId": str(sku.sku_id), "partNumber": sku.part_number, "name": sku.name, "status": status,
        "message": message, "graphRequestId": request_id or "",
    }
    if reasons is not None:
        entry["reasons"] = reasons
    item.licenses = [other for other in item.licenses if other["skuId"] != entry["skuId"]] + [entry]
    BulkJobItem.objects.filter(pk=item.pk).update(licenses=item.licenses)


def _finish(item: BulkJobItem, status: str, message: str, request_id: str = "") -> None:
    BulkJobItem.objects.filter(pk=item.pk).update(
        status=status, message=message, graph_request_id=request_id, finished_at=timezone.now()
    )


def _finish_from_licenses(item: BulkJobItem) -> None:
    """Finish the item from its license outcomes: failed if Graph failed one, done if one was reclaimed."""
    statuses = {entry["status"] for entry in item.licenses}
    if LicenseStatus.FAILED in statuses:
        status = BulkItemStatus.FAILED
    elif LicenseStatus.RECLAIMED in statuses:
        status = BulkItemStatus.DONE
    else:
        status = BulkItemStatus.REJECTED
    message = " ".join(entry["message"] for entry in item.licenses if entry["message"])
    if not item.licenses:
        message = _("The user has no license that a reclaim could free.")
    request_ids = [entry["graphRequestId"] for entry in item.licenses if entry["graphRequestId"]]
    # The item keeps the last request ID; each license entry keeps its own.
    _finish(item, status, message, request_ids[-1] if request_ids else "")


# Resuming after a dead runner


def reconcile_item(job: BulkJob, item: BulkJobItem) -> None:
    """Settle the license a dead runner left in progress from what Graph holds, then queue the item again.

    Raises TransientGraphFailure when Graph cannot be reached, so the item stays in progress until then.
    """
    entry = next((entry for entry in item.licenses if entry["status"] == LicenseStatus.IN_PROGRESS), None)
    user = _member(job, item) if item.user_id else None
    if entry is not None and user is not None:
        sku = Sku.objects.filter(tenant=job.tenant, sku_id=entry["skuId"]).first()
        try:
            removed = sku is not None and not _holds_directly(job, user, sku)
        except GraphNotFoundError:
            removed = False  # The user is gone from Entra ID; processing again reports Graph's own message.
        except GraphError as exc:
            logger.warning(
                "Reclaim job %s (tenant %s): cannot check user %s in Graph (%s); the job stops here",
                job.pk, job.tenant.tenant_id, user.user_id, exc,
            )
            raise bulk.TransientGraphFailure(str(exc)) from exc
        if removed:
            _confirm_removal(job, item, user, sku, entry)
        else:
            item.licenses = [other for other in item.licenses if other is not entry]
            BulkJobItem.objects.filter(pk=item.pk).update(licenses=item.licenses)
    BulkJobItem.objects.filter(pk=item.pk).update(status=BulkItemStatus.PENDING)
    logger.info("Reclaim job %s: item %s queued again after its runner stopped", job.pk, item.position)


def _holds_directly(job: BulkJob, user: DirectoryUser, sku: Sku) -> bool:
    body = GraphClient(job.tenant).get(f"users/{user.user_id}", params={"$select": "id,licenseAssignmentStates"})
    sku_id = str(sku.sku_id).lower()
    return any(
        str(state.get("skuId", "")).lower() == sku_id and not state.get("assignedByGroup")
        for state in body.get("licenseAssignmentStates") or []
    )


def _confirm_removal(job: BulkJob, item: BulkJobItem, user: DirectoryUser, sku: Sku, entry: dict) -> None:
    """Record a removal that Graph applied before the runner died, unless the runner recorded it already."""
    message = _("Found removed in Microsoft Graph when the bulk job resumed after its worker stopped.")
    with transaction.atomic():
        direct = UserLicense.objects.filter(user=user, sku=sku, assigned_by_group="").first()
        if direct is not None:
            services.release_unit(direct)
            if not UserLicense.objects.filter(user=user, sku=sku).exclude(state="Error").exists():
                close_interval(user, sku)
            record_event(
                acting_user=job.created_by, action=AuditAction.LICENSE_RECLAIMED, tenant=job.tenant, pool=job.pool,
                user=user, sku=sku, message=message,
                before={"skuId": str(sku.sku_id), "disabledPlans": direct.disabled_plans, "reasons": entry.get("reasons", [])},
            )
        _record(item, sku, LicenseStatus.RECLAIMED, _("Reclaimed %(sku)s (confirmed in Microsoft Graph after the worker "
                                                     "stopped).") % {"sku": sku.name})
    logger.info(
        "Reclaim job %s: %s of user %s was removed in Graph before the worker stopped", job.pk, sku.part_number,
        user.user_id,
    )
