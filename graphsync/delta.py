"""Incremental sync through the users delta query.

``GET users/delta`` returns pages linked by ``@odata.nextLink``; the last page carries
``@odata.deltaLink``, which a later call follows to get only what changed since. A changed user may
come back with only the changed properties, so only the properties present are applied. A removed
user comes back as ``{"id": …, "@removed": {"reason": "changed" | "deleted"}}``: "changed" is
soft-deleted and restorable for 30 days, "deleted" is gone for good.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .batch import BatchRequest
from .client import GraphClient
from .errors import GraphBadRequestError, GraphError, GraphNotFoundError
from .models import DeltaState, DirectoryUser, SyncRun, Tenant
from .sync import (
    PAGE_SIZE,
    SyncProgress,
    TenantDirectory,
    fetch_catalog,
    list_users,
    save_sign_in_availability,
    user_fields_from_graph,
    user_from_graph,
    write_catalog,
    write_in_transaction,
    write_licenses,
    write_sign_in_activity,
)

logger = logging.getLogger(__name__)

# Every user property the mirror keeps, except licenseAssignmentStates: delta does not track it.
USER_DELTA_SELECT = ",".join(
    [
        "id", "userPrincipalName", "displayName", "accountEnabled", "department", "companyName", "country",
        "city", "officeLocation", "usageLocation", "jobTitle", "employeeId", "employeeType", "createdDateTime",
        "onPremisesExtensionAttributes",
    ]
)
LICENSE_SELECT = "id,assignedLicenses,licenseAssignmentStates"
# Up to this many changed users, $batch (1 request per 20 users) reads fewer pages than listing every
# user's licenses (1 request per 500 to 999 users) in tenants of 100,000 users.
TARGETED_LICENSE_REFRESH_LIMIT = 2000

# Error codes that mark a delta token as expired or unknown. A 410 Gone response is treated the same way.
EXPIRED_DELTA_CODES = frozenset(
    {"syncstatenotfound", "syncstateinvalid", "resyncrequired", "resyncapplicationrequired", "request_deltatokenexpired"}
)


class DeltaLinkExpired(GraphError):
    """Graph no longer accepts the stored delta link, so a full sync must replace it."""


@dataclass
class UsersDelta:
    """The users that changed or were removed since the previous delta link, by user id."""

    changed: dict[str, dict] = field(default_factory=dict)
    removed: dict[str, str] = field(default_factory=dict)
    delta_link: str = ""


@dataclass
class IncrementalChanges:
    """Everything an incremental sync reads from Graph, before it is written."""

    delta: UsersDelta
    directory: TenantDirectory
    license_users: list[dict] = field(default_factory=list)
    # False when license_users holds only the users the delta reported, read through $batch.
    license_users_complete: bool = True
    sign_in_activity_available: bool | None = None


def _is_expired(error: GraphError) -> bool:
    return error.status == 410 or error.code.lower() in EXPIRED_DELTA_CODES


def latest_users_delta_link(client: GraphClient, run: SyncRun | None = None) -> str:
    """Return a delta link for the users as they are now, or an empty string if Graph gives none.

    ``$deltatoken=latest`` skips the initial round that would list every user. A 400 or 404 (a Graph
    that does not serve users delta) leaves the tenant without a link, so its next sync is full.
    """
    try:
        body = client.get("users/delta", params={"$select": USER_DELTA_SELECT, "$deltatoken": "latest"})
        while isinstance(body, dict) and "@odata.deltaLink" not in body and body.get("@odata.nextLink"):
            body = client.get(body["@odata.nextLink"])
    except (GraphBadRequestError, GraphNotFoundError) as exc:
        logger.warning(
            "Sync run %s of tenant %s: no users delta link (%s); the next sync will be full",
            run.pk if run else None, client.tenant.tenant_id, exc,
        )
        return ""
    return str(body.get("@odata.deltaLink") or "") if isinstance(body, dict) else ""


def read_users_delta(client: GraphClient, link: str, progress: SyncProgress) -> UsersDelta:
    """Follow ``link`` to the new delta link, merging changes by user id in the order Graph sent them.

    Raises DeltaLinkExpired when Graph rejects the link as expired.
    """
    delta = UsersDelta()
    url: str | None = link
    while url:
        try:
            body = client.get(url)
        except GraphError as exc:
            if _is_expired(exc):
                raise DeltaLinkExpired(exc.message, status=exc.status, code=exc.code, request_id=exc.request_id) from exc
            raise
        if not isinstance(body, dict) or "value" not in body:
            raise GraphError(f"GET {url} returned no 'value' list.")
        for entry in body["value"]:
            user_id = str(entry["id"]).lower()
            removed = entry.get("@removed")
            if removed is not None:
                delta.changed.pop(user_id, None)
                delta.removed[user_id] = str((removed or {}).get("reason") or "deleted")
            else:
                delta.removed.pop(user_id, None)
                delta.changed[user_id] = {**delta.changed.get(user_id, {}), **entry}
        progress.page(len(body["value"]))
        url = body.get("@odata.nextLink")
        if not url:
            delta.delta_link = str(body.get("@odata.deltaLink") or "")
    if not delta.delta_link:
        raise GraphError("The users delta query ended without an @odata.deltaLink.")
    return delta


def fetch_changed_users_licenses(client: GraphClient, user_ids: list[str]) -> list[dict]:
    """Read the license properties of ``user_ids`` through $batch; users deleted since are left out."""
    requests = [
        BatchRequest(id=str(index), method="GET", url=f"users/{user_id}?$select={LICENSE_SELECT}")
        for index, user_id in enumerate(user_ids)
    ]
    users = []
    for result in client.batch(requests).values():
        if result.ok:
            users.append(result.body)
        elif not isinstance(result.error, GraphNotFoundError):
            raise result.error
    return users


def fetch_incremental(
    client: GraphClient, link: str, progress: SyncProgress, *, list_every_user: bool = False
) -> IncrementalChanges:
    delta = read_users_delta(client, link, progress)
    directory = TenantDirectory()
    fetch_catalog(client, directory, progress)
    # A user whose assignedLicenses changed comes back from delta, so reading those users' license
    # states through $batch keeps an incremental sync proportional to what changed. Delta does not
    # report a change of licenseAssignmentStates alone (a group assignment turning into an error) nor
    # new sign-in times: those arrive with the listing of every user, which an incremental sync makes
    # once GRAPH_LICENSE_LISTING_INTERVAL_MINUTES have passed since the last one, or when so many users
    # changed that paging costs fewer requests.
    if not list_every_user and len(delta.changed) <= TARGETED_LICENSE_REFRESH_LIMIT:
        license_users = fetch_changed_users_licenses(client, list(delta.changed))
        return IncrementalChanges(delta=delta, directory=directory, license_users=license_users, license_users_complete=False)
    license_users, sign_in_available = list_users(client, LICENSE_SELECT, progress)
    return IncrementalChanges(
        delta=delta, directory=directory, license_users=license_users, sign_in_activity_available=sign_in_available
    )


def apply_users_delta(tenant: Tenant, delta: UsersDelta) -> None:
    """Write changed, new and removed users to the mirror; call inside a transaction."""
    now = timezone.now()
    existing = {
        str(user_id): pk
        for user_id, pk in DirectoryUser.objects.filter(tenant=tenant, user_id__in=list(delta.changed) + list(delta.removed))
        .values_list("user_id", "pk")
    }
    new_users = []
    for user_id, data in delta.changed.items():
        pk = existing.get(user_id)
        if pk is None:
            new_users.append(user_from_graph(tenant, {**data, "id": user_id}, now))
            continue
        DirectoryUser.objects.filter(pk=pk).update(
            **user_fields_from_graph(data), is_deleted=False, deletion_reason="", synced_at=now
        )
    DirectoryUser.objects.bulk_create(new_users, batch_size=1000)

    for reason in {"changed", "deleted"} | set(delta.removed.values()):
        user_ids = [user_id for user_id, removed_reason in delta.removed.items() if removed_reason == reason]
        if user_ids:
            DirectoryUser.objects.filter(tenant=tenant, user_id__in=user_ids).update(
                is_deleted=True, deletion_reason=reason[:20], synced_at=now
            )


def run_incremental(run: SyncRun, link: str, progress: SyncProgress) -> None:
    """Apply the users' changes since ``link``, refresh licenses, SKUs and groups, and store the new link.

    Raises DeltaLinkExpired, before anything is written, when Graph rejects ``link``.
    """
    tenant = run.tenant
    state = DeltaState.objects.filter(tenant=tenant).first()
    interval = timedelta(minutes=settings.GRAPH_LICENSE_LISTING_INTERVAL_MINUTES)
    list_every_user = state is None or state.licenses_listed_at is None or (
        timezone.now() - state.licenses_listed_at >= interval
    )
    changes = fetch_incremental(GraphClient(tenant), link, progress, list_every_user=list_every_user)

    def write() -> None:
        write_catalog(tenant, changes.directory)
        apply_users_delta(tenant, changes.delta)
        write_licenses(
            tenant, changes.license_users, run.started_at, only_listed_users=not changes.license_users_complete
        )
        if changes.license_users_complete:
            write_sign_in_activity(tenant, changes.license_users)
            save_sign_in_availability(tenant, changes.sign_in_activity_available)

    write_in_transaction(
        tenant, write, changes.delta.delta_link, licenses_listed=changes.license_users_complete
    )
    run.users_count = len(changes.delta.changed) + len(changes.delta.removed)
    run.groups_count = len(changes.directory.groups)
    run.skus_count = len(changes.directory.skus)
    run.subscriptions_count = len(changes.directory.subscriptions)
    logger.info(
        "Sync run %s of tenant %s applied %s changed and %s removed users from the users delta",
        run.pk, tenant.tenant_id, len(changes.delta.changed), len(changes.delta.removed),
    )
