"""Synchronisation of a tenant's directory into the local mirror, full or through the users delta link.

Everything is read from Graph first and written in one transaction, so the portal never shows a
half-synced tenant: a run that fails part-way, or whose worker is killed, leaves the previous mirror as
it was. A lock per tenant keeps two runs of one tenant from overlapping.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import catalog
from .bulk_upsert import upsert
from .choices import UNCONFIRMED_STATES, LicenseState, SyncKind, SyncStatus
from .client import GraphClient, forget_user_count
from .errors import GraphError, GraphPermissionError
from .locks import tenant_sync_lock
from .models import DeltaState, DirectoryGroup, DirectoryUser, Sku, Subscription, SyncRun, Tenant, UserLicense
from .read_ahead import read_ahead
from .staging import SIGN_IN_PROPERTIES, TEXT_PROPERTIES, PageConverter, UserStage

logger = logging.getLogger(__name__)

USER_SELECT = ",".join(
    [
        "id", "userPrincipalName", "displayName", "accountEnabled", "department", "companyName", "country",
        "city", "officeLocation", "usageLocation", "jobTitle", "employeeId", "employeeType", "createdDateTime",
        "onPremisesExtensionAttributes", "assignedLicenses", "licenseAssignmentStates",
    ]
)
GROUP_SELECT = "id,displayName,assignedLicenses"
PAGE_SIZE = 999
# Graph returns signInActivity only to Entra ID P1/P2 tenants and apps with AuditLog.Read.All, and with it
# selected allows at most 500 users per page.
SIGN_IN_SELECT = "signInActivity"
SIGN_IN_PAGE_SIZE = 500

# A reservation still pending this long after it was made belongs to a process that died between
# reserving the seat and calling Graph; Graph's own state then decides.
STALE_RESERVATION_AGE = timedelta(minutes=15)

USER_FIELDS = [
    "user_principal_name", "display_name", "account_enabled", "department", "company_name", "country", "city",
    "office_location", "usage_location", "job_title", "employee_id", "employee_type", "extension_attributes",
    "created_at_graph", "is_deleted", "deletion_reason", "synced_at",
    "last_interactive_sign_in_at", "last_non_interactive_sign_in_at", "last_successful_sign_in_at",
]
SKU_FIELDS = [
    "part_number", "display_name", "applies_to", "capability_status", "consumed_units", "enabled_units",
    "warning_units", "suspended_units", "locked_out_units", "service_plans",
]
SUBSCRIPTION_FIELDS = [
    "commerce_subscription_id", "sku_id", "part_number", "status", "total_licenses", "is_trial",
    "created_at_graph", "next_lifecycle_at",
]


@dataclass
class TenantDirectory:
    """Everything a full sync reads from Graph, before it is written."""

    skus: list[dict] = field(default_factory=list)
    subscriptions: list[dict] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)
    users: list[dict] = field(default_factory=list)
    users_delta_link: str = ""
    # Whether the user listing carried signInActivity; None when the users were not listed.
    sign_in_activity_available: bool | None = None


class SyncProgress:
    """Pages and users read so far in a run, stored on the SyncRun after every page."""

    def __init__(self, run: SyncRun | None, callback: Callable[[SyncRun | None, int, int], None] | None = None) -> None:
        self.run = run
        self.callback = callback
        self.pages = 0
        self.users = 0

    def page(self, users: int = 0) -> None:
        """Count one page of Graph results, ``users`` of which were users."""
        self.pages += 1
        self.users += users
        if self.run is not None:
            SyncRun.objects.filter(pk=self.run.pk).update(pages_count=self.pages, users_count=self.users)
            self.run.pages_count = self.pages
            self.run.users_count = self.users
        if self.callback is not None:
            self.callback(self.run, self.pages, self.users)


def fetch_catalog(client: GraphClient, directory: TenantDirectory, progress: SyncProgress) -> None:
    """Read SKUs, commerce subscriptions and groups into ``directory``."""
    directory.skus = client.get("subscribedSkus")["value"]
    progress.page()
    directory.subscriptions = client.get("directory/subscriptions")["value"]
    progress.page()
    for page in client.iter_pages("groups", {"$select": GROUP_SELECT, "$top": PAGE_SIZE}):
        directory.groups.extend(page)
        progress.page()


def fetch_directory(client: GraphClient, run: SyncRun | None = None, progress: SyncProgress | None = None) -> TenantDirectory:
    from .delta import latest_users_delta_link

    progress = progress or SyncProgress(run)
    directory = TenantDirectory()
    fetch_catalog(client, directory, progress)
    # The delta link is taken before the users are read, so a change made while they are read comes
    # back in the next incremental sync instead of being lost. Applying such a change twice does no harm.
    directory.users_delta_link = latest_users_delta_link(client, run)
    directory.users, directory.sign_in_activity_available = list_users(client, USER_SELECT, progress, count_users=True)
    return directory


# Yielded by ``user_pages`` when Graph refused signInActivity: the pages before it are void.
RESTART_LISTING = object()


def user_pages(client: GraphClient, select: str) -> Iterator:
    """Yield ``(page, with_sign_in)`` for every page of users with ``select`` plus signInActivity.

    Graph returns 403 Authentication_RequestFromNonPremiumTenantOrB2CTenant when the tenant lacks Entra
    ID P1/P2 or the app lacks AuditLog.Read.All. Any 403 of this listing yields ``RESTART_LISTING`` and
    starts over without signInActivity, so such a tenant still syncs completely. A 403 of the repeated
    listing is raised.
    """
    try:
        top = min(PAGE_SIZE, SIGN_IN_PAGE_SIZE)
        for page in client.iter_pages("users", {"$select": f"{select},{SIGN_IN_SELECT}", "$top": top}):
            yield page, True
        return
    except GraphPermissionError as exc:
        logger.warning(
            "Tenant %s: Graph rejected signInActivity (%s: %s), so users are listed without sign-in data",
            client.tenant.tenant_id, exc.code, exc.message,
        )
    yield RESTART_LISTING
    for page in client.iter_pages("users", {"$select": select, "$top": PAGE_SIZE}):
        yield page, False


def list_users(
    client: GraphClient, select: str, progress: SyncProgress, *, count_users: bool = False
) -> tuple[list[dict], bool]:
    """List every user with ``select``, and signInActivity where Graph returns it (see ``user_pages``).

    Returns the users and whether signInActivity was returned.
    """
    users: list[dict] = []
    with_sign_in = True
    for item in user_pages(client, select):
        if item is RESTART_LISTING:
            users = []
            continue
        page, with_sign_in = item
        users.extend(page)
        progress.page(len(page) if count_users else 0)
    return users, with_sign_in


def _text(value) -> str:
    return "" if value is None else str(value)


def _datetime(value):
    return parse_datetime(value) if value else None


def _extension_attributes(value) -> dict:
    return {key: item for key, item in (value or {}).items() if item}


def _account_enabled(value) -> bool:
    return True if value is None else bool(value)


# Graph user property -> (DirectoryUser field, conversion of Graph's value).
USER_PROPERTY_FIELDS = {
    **{property_name: (field_name, _text) for property_name, field_name in TEXT_PROPERTIES},
    "accountEnabled": ("account_enabled", _account_enabled),
    "onPremisesExtensionAttributes": ("extension_attributes", _extension_attributes),
    "createdDateTime": ("created_at_graph", _datetime),
}


def sign_in_fields(activity: dict | None) -> dict:
    """Return the three sign-in fields of a Graph ``signInActivity`` object; None gives three empty ones.

    lastSuccessfulSignInDateTime is recorded only since December 2023, so it may be empty when the others are not.
    """
    activity = activity or {}
    return {field_name: _datetime(activity.get(property_name)) for property_name, field_name in SIGN_IN_PROPERTIES}


def user_fields_from_graph(data: dict) -> dict:
    """Return the DirectoryUser fields of the Graph properties present in ``data``."""
    fields = {
        field_name: convert(data[property_name])
        for property_name, (field_name, convert) in USER_PROPERTY_FIELDS.items()
        if property_name in data
    }
    if "signInActivity" in data:
        fields.update(sign_in_fields(data["signInActivity"]))
    return fields


def user_row_from_graph(tenant: Tenant, data: dict, synced_at) -> dict:
    """Return a DirectoryUser's field values, keyed by attribute name, from a Graph user object."""
    fields = {field_name: convert(None) for field_name, convert in USER_PROPERTY_FIELDS.values()}
    fields.update(sign_in_fields(None))
    fields.update(user_fields_from_graph(data))
    return {
        "tenant_id": tenant.pk, "user_id": data["id"], "is_deleted": False, "deletion_reason": "",
        "synced_at": synced_at, **fields,
    }


def user_from_graph(tenant: Tenant, data: dict, synced_at) -> DirectoryUser:
    return DirectoryUser(**user_row_from_graph(tenant, data, synced_at))


def sku_from_graph(tenant: Tenant, data: dict) -> Sku:
    prepaid = data.get("prepaidUnits") or {}
    return Sku(
        tenant=tenant,
        sku_id=data["skuId"],
        part_number=_text(data.get("skuPartNumber")).strip(),
        display_name=catalog.product_name(data["skuId"]),
        applies_to=_text(data.get("appliesTo")) or "User",
        capability_status=_text(data.get("capabilityStatus")) or "Enabled",
        consumed_units=int(data.get("consumedUnits") or 0),
        enabled_units=int(prepaid.get("enabled") or 0),
        warning_units=int(prepaid.get("warning") or 0),
        suspended_units=int(prepaid.get("suspended") or 0),
        locked_out_units=int(prepaid.get("lockedOut") or 0),
        service_plans=data.get("servicePlans") or [],
    )


def subscription_from_graph(tenant: Tenant, data: dict) -> Subscription:
    return Subscription(
        tenant=tenant,
        subscription_id=data["id"],
        commerce_subscription_id=_text(data.get("commerceSubscriptionId")),
        sku_id=data["skuId"],
        part_number=_text(data.get("skuPartNumber")).strip(),
        status=_text(data.get("status")),
        total_licenses=int(data.get("totalLicenses") or 0),
        is_trial=bool(data.get("isTrial")),
        created_at_graph=_datetime(data.get("createdDateTime")),
        next_lifecycle_at=_datetime(data.get("nextLifecycleDateTime")),
    )


def write_mirror(tenant: Tenant, directory: TenantDirectory, started_at) -> None:
    """Replace the tenant's mirror with ``directory``; call inside a transaction."""
    now = timezone.now()
    write_catalog(tenant, directory)

    upsert(
        DirectoryUser,
        [user_row_from_graph(tenant, data, now) for data in directory.users],
        unique_fields=["tenant", "user_id"],
        update_fields=USER_FIELDS,
    )
    seen_user_ids = {data["id"].lower() for data in directory.users}
    gone = [
        pk for pk, user_id in DirectoryUser.objects.filter(tenant=tenant, is_deleted=False).values_list("pk", "user_id")
        if str(user_id) not in seen_user_ids
    ]
    DirectoryUser.objects.filter(pk__in=gone).update(is_deleted=True, synced_at=now)

    write_licenses(tenant, directory.users, started_at)
    save_sign_in_availability(tenant, directory.sign_in_activity_available)


def save_sign_in_availability(tenant: Tenant, available: bool | None) -> None:
    """Store whether Graph returned signInActivity for the tenant; None, for users not listed, changes nothing."""
    if available is None:
        return
    Tenant.objects.filter(pk=tenant.pk).update(sign_in_activity_available=available)
    tenant.sign_in_activity_available = available


def write_sign_in_activity(tenant: Tenant, users: list[dict]) -> None:
    """Store the sign-in times of ``users`` that carry signInActivity, updating only the users whose times changed."""
    activity_by_user = {
        data["id"].lower(): sign_in_fields(data["signInActivity"]) for data in users if "signInActivity" in data
    }
    if not activity_by_user:
        return
    changed = []
    for user in DirectoryUser.objects.filter(tenant=tenant).only("pk", "user_id", *sign_in_fields(None)):
        fields = activity_by_user.get(str(user.user_id))
        if fields is None or all(getattr(user, name) == value for name, value in fields.items()):
            continue
        for name, value in fields.items():
            setattr(user, name, value)
        changed.append(user)
    DirectoryUser.objects.bulk_update(changed, list(sign_in_fields(None)), batch_size=1000)


def write_catalog(tenant: Tenant, directory: TenantDirectory) -> None:
    """Replace the tenant's SKUs, subscriptions and groups with those in ``directory``."""
    Sku.objects.bulk_create(
        [sku_from_graph(tenant, data) for data in directory.skus],
        update_conflicts=True, unique_fields=["tenant", "sku_id"], update_fields=SKU_FIELDS,
    )
    Subscription.objects.bulk_create(
        [subscription_from_graph(tenant, data) for data in directory.subscriptions],
        update_conflicts=True, unique_fields=["tenant", "subscription_id"], update_fields=SUBSCRIPTION_FIELDS,
    )
    Subscription.objects.filter(tenant=tenant).exclude(
        subscription_id__in=[data["id"] for data in directory.subscriptions]
    ).delete()

    DirectoryGroup.objects.bulk_create(
        [
            DirectoryGroup(
                tenant=tenant,
                group_id=data["id"],
                display_name=_text(data.get("displayName")),
                assigned_licenses=data.get("assignedLicenses") or [],
            )
            for data in directory.groups
        ],
        update_conflicts=True, unique_fields=["tenant", "group_id"], update_fields=["display_name", "assigned_licenses"],
        batch_size=1000,
    )
    DirectoryGroup.objects.filter(tenant=tenant).exclude(group_id__in=[data["id"] for data in directory.groups]).delete()


def save_delta_link(tenant: Tenant, link: str, *, licenses_listed: bool = True) -> None:
    """Store the users delta link and, when this run listed every user's licenses, the time it did."""
    defaults = {"users_delta_link": link}
    if licenses_listed:
        defaults["licenses_listed_at"] = timezone.now()
    DeltaState.objects.update_or_create(tenant=tenant, defaults=defaults)


def write_licenses(tenant: Tenant, users: list[dict], started_at, *, only_listed_users: bool = False) -> None:
    """Make the tenant's UserLicense rows match the ``licenseAssignmentStates`` of ``users``.

    ``users`` lists every user Graph returned and rows of other users are removed, unless
    ``only_listed_users`` is set: then only the rows of the listed users change. Rows the portal
    reserved or confirmed after this run began are kept: Graph was read before they were made. Rows in
    ``UNCONFIRMED_STATES`` are kept as they are, for the next run's settlement to audit.
    """
    user_pks = dict(DirectoryUser.objects.filter(tenant=tenant).values_list("user_id", "pk"))
    sku_pks = dict(Sku.objects.filter(tenant=tenant).values_list("sku_id", "pk"))
    user_pks = {str(key): value for key, value in user_pks.items()}
    sku_pks = {str(key): value for key, value in sku_pks.items()}

    # A new row gets first_seen_at now. The upsert below leaves it, and the portal's origin and drift
    # resolution, as they are on rows that already exist, so drift keeps the time it was first detected.
    first_seen_at = timezone.now()
    wanted: dict[tuple[int, int, str], dict] = {}
    for data in users:
        user_pk = user_pks.get(data["id"].lower())
        if user_pk is None:
            # Created after this run read the users delta; the next run adds the user and licenses.
            logger.info("Tenant %s: licenses of user %s not yet in the mirror are skipped", tenant.tenant_id, data["id"])
            continue
        for state in data.get("licenseAssignmentStates") or []:
            sku_pk = sku_pks.get(str(state.get("skuId", "")).lower())
            if sku_pk is None:
                logger.warning(
                    "Tenant %s: user %s holds SKU %s that subscribedSkus does not list; skipped",
                    tenant.tenant_id, data["id"], state.get("skuId"),
                )
                continue
            source = (state.get("assignedByGroup") or "").lower()
            wanted[(user_pk, sku_pk, source)] = {
                "tenant_id": tenant.pk,
                "user_id": user_pk,
                "sku_id": sku_pk,
                "assigned_by_group": source,
                "state": _text(state.get("state")) or LicenseState.ACTIVE,
                "error": _text(state.get("error")) or "None",
                "disabled_plans": state.get("disabledPlans") or [],
                "last_updated": _datetime(state.get("lastUpdatedDateTime")),
                "first_seen_at": first_seen_at,
            }

    existing = UserLicense.objects.filter(tenant=tenant)
    if only_listed_users:
        existing = existing.filter(user_id__in=[user_pks[data["id"].lower()] for data in users if data["id"].lower() in user_pks])
    existing = existing.values_list(
        "pk", "user_id", "sku_id", "assigned_by_group", "state", "reserved_at"
    )
    stale_before = started_at - STALE_RESERVATION_AGE
    to_delete = []
    for pk, user_pk, sku_pk, source, state, reserved_at in existing:
        if state in UNCONFIRMED_STATES:
            wanted.pop((user_pk, sku_pk, source), None)
            continue
        if (user_pk, sku_pk, source) in wanted:
            continue
        if reserved_at and reserved_at >= started_at:
            continue
        if state == LicenseState.PENDING and reserved_at and reserved_at >= stale_before:
            continue
        to_delete.append(pk)
    UserLicense.objects.filter(pk__in=to_delete).delete()

    upsert(
        UserLicense,
        list(wanted.values()),
        unique_fields=["user", "sku", "assigned_by_group"],
        update_fields=["state", "error", "disabled_plans", "last_updated"],
        batch_size=2000,
    )


ProgressCallback = Callable[[SyncRun | None, int, int], None]


def run_full_sync(run: SyncRun, progress_callback: ProgressCallback | None = None) -> SyncRun:
    """Read the whole tenant from Graph and replace its mirror, pool membership and license history."""
    if run.kind != SyncKind.FULL:
        run.kind = SyncKind.FULL
        run.save(update_fields=["kind"])
    return run_sync(run, progress_callback)


def run_sync(run: SyncRun, progress_callback: ProgressCallback | None = None) -> SyncRun:
    """Run ``run`` as a full or incremental sync, by its ``kind``, holding the tenant's sync lock.

    An incremental run without a usable delta link becomes a full one. A run that finds another run
    of the tenant holding the lock is marked skipped. ``progress_callback(run, pages, users)`` is called
    after each page read from Graph.
    """
    tenant = run.tenant
    with tenant_sync_lock(tenant.pk) as acquired:
        if not acquired:
            return _skip(run)
        _fail_abandoned_runs(run)
        run.status = SyncStatus.RUNNING
        run.started_at = timezone.now()
        run.pages_count = 0
        run.users_count = 0
        run.save(update_fields=["status", "started_at", "pages_count", "users_count"])
        logger.info("Sync run %s (%s) of tenant %s started", run.pk, run.kind, tenant.tenant_id)
        progress = SyncProgress(run, progress_callback)
        try:
            _settle_unconfirmed(run)
            if run.kind == SyncKind.INCREMENTAL:
                _run_incremental_or_full(run, progress)
            else:
                _run_full(run, progress)
        except GraphError as exc:
            _fail(run, str(exc))
            logger.error("Sync run %s of tenant %s failed: %s", run.pk, tenant.tenant_id, exc)
            return run
        except Exception as exc:
            _fail(run, f"Unexpected error: {exc!r}")
            logger.exception("Sync run %s of tenant %s failed with an unexpected error", run.pk, tenant.tenant_id)
            raise

    run.status = SyncStatus.SUCCEEDED
    run.finished_at = timezone.now()
    run.save()
    forget_user_count(tenant.pk)
    logger.info(
        "Sync run %s (%s) of tenant %s succeeded: %s users, %s groups, %s SKUs, %s pages in %.1f s",
        run.pk, run.kind, tenant.tenant_id, run.users_count, run.groups_count, run.skus_count, run.pages_count,
        (run.finished_at - run.started_at).total_seconds(),
    )
    return run


def _settle_unconfirmed(run: SyncRun) -> None:
    """Settle license changes whose outcome is unknown from Graph, before the run reads the tenant.

    When Graph cannot be read, the rows stay unconfirmed and this run leaves them as they are.
    """
    from pools.unconfirmed import settle_unconfirmed_licenses

    try:
        settled = settle_unconfirmed_licenses(run.tenant)
    except GraphError as exc:
        logger.warning(
            "Sync run %s of tenant %s: unconfirmed license changes could not be read back and stay unsettled: %s",
            run.pk, run.tenant.tenant_id, exc,
        )
        return
    if settled:
        logger.info("Sync run %s of tenant %s settled %s unconfirmed license changes", run.pk, run.tenant.tenant_id, settled)


def _run_incremental_or_full(run: SyncRun, progress: SyncProgress) -> None:
    from .delta import DeltaLinkExpired, run_incremental

    tenant = run.tenant
    state = DeltaState.objects.filter(tenant=tenant).first()
    if state is None or not state.users_delta_link:
        logger.info("Sync run %s of tenant %s: no users delta link yet, so a full sync runs", run.pk, tenant.tenant_id)
    else:
        try:
            run_incremental(run, state.users_delta_link, progress)
            return
        except DeltaLinkExpired as exc:
            logger.warning(
                "Sync run %s of tenant %s: Graph no longer accepts the users delta link (%s); a full sync runs",
                run.pk, tenant.tenant_id, exc,
            )
    run.kind = SyncKind.FULL
    run.save(update_fields=["kind"])
    _run_full(run, progress)


def _run_full(run: SyncRun, progress: SyncProgress) -> None:
    tenant = run.tenant
    if connection.vendor == "postgresql":
        directory, rows_written = _run_full_staged(run, progress)
        # PostgreSQL's autovacuum re-estimates a table once a tenth of it changed; only a sync that
        # rewrote about that much needs fresh statistics at once.
        if rows_written * 10 >= max(run.users_count, 1):
            _refresh_planner_statistics_soon(run)
    else:
        directory = fetch_directory(GraphClient(tenant), run, progress)
        write_in_transaction(tenant, lambda: write_mirror(tenant, directory, run.started_at), directory.users_delta_link)
        run.users_count = len(directory.users)
    run.groups_count = len(directory.groups)
    run.skus_count = len(directory.skus)
    run.subscriptions_count = len(directory.subscriptions)


def _run_full_staged(run: SyncRun, progress: SyncProgress) -> tuple[TenantDirectory, int]:
    """Full sync for PostgreSQL: users are staged page by page while the next page is read.

    The listing runs in a background thread, so Graph's latency and the writing of each page overlap.
    A tenant whose mirror has users gets the stage merged once every page is in. On a tenant's first
    sync every user is new, so each page goes into the mirror as it arrives, inside one transaction that
    other sessions cannot see until it commits.
    """
    from .delta import latest_users_delta_link

    tenant = run.tenant
    client = GraphClient(tenant)
    directory = TenantDirectory()
    fetch_catalog(client, directory, progress)
    directory.users_delta_link = latest_users_delta_link(client, run)

    def count_page(item) -> None:
        if item is not RESTART_LISTING:
            progress.page(len(item[0]))

    stage = UserStage(tenant, known_sku_ids={str(data["skuId"]).lower() for data in directory.skus})
    stage.create()
    # Three stages at once: one thread reads pages from Graph, one renders them for COPY, and this
    # thread writes them to PostgreSQL.
    read = read_ahead(user_pages(client, USER_SELECT), name=f"sync-run-{run.pk}-read", on_read=count_page)
    pages = read_ahead(_converted(read, stage.converter), name=f"sync-run-{run.pk}-convert")
    try:
        if DirectoryUser.objects.filter(tenant=tenant).exists():
            _stage_then_merge(run, directory, stage, pages)
            rows_written = stage.rows_written
        else:
            _insert_first_sync(run, directory, stage, pages)
            rows_written = stage.users_count
        run.users_count = stage.users_count
    finally:
        pages.close()
        try:
            stage.drop()
        except DatabaseError:
            logger.warning("Sync run %s: the stage tables could not be dropped; they go with the session", run.pk)
    return directory, rows_written


def _converted(items: Iterator, converter: PageConverter) -> Iterator:
    """Yield ``user_pages`` items with each page rendered for COPY by ``converter``."""
    for item in items:
        if item is RESTART_LISTING:
            converter.restart()
            yield item
            continue
        page, with_sign_in = item
        yield converter.convert(page), with_sign_in


def _stage_then_merge(run: SyncRun, directory: TenantDirectory, stage: UserStage, pages: Iterator) -> None:
    tenant = run.tenant
    for item in pages:
        if item is RESTART_LISTING:
            stage.empty()
            continue
        page, directory.sign_in_activity_available = item
        stage.copy(page)

    def write() -> None:
        from pools.membership import unassigned_pool

        write_catalog(tenant, directory)
        # New users start in the Unassigned pool; the membership recompute that follows in the same
        # transaction moves those the scheme places elsewhere.
        stage.merge(
            run.started_at, run.started_at - STALE_RESERVATION_AGE, timezone.now(),
            new_user_pool_id=unassigned_pool(tenant).pk,
        )
        save_sign_in_availability(tenant, directory.sign_in_activity_available)

    write_in_transaction(tenant, write, directory.users_delta_link)


def _insert_first_sync(run: SyncRun, directory: TenantDirectory, stage: UserStage, pages: Iterator) -> None:
    """Write each page into the mirror as it arrives, in one transaction with the rest of the sync.

    Foreign keys are checked as each page is written rather than all at commit, so the checks overlap
    the reading of the next page. No other session can lock these rows, because they are new and not yet
    visible.
    """
    from pools.membership import unassigned_pool

    from pools.models import PoolScheme

    tenant = run.tenant
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        write_catalog(tenant, directory)
        pool_id = unassigned_pool(tenant).pk
        # Without a scheme the users stay in the Unassigned pool, so each page can open its license
        # history at once; with one, the history waits for the membership recompute at the end.
        open_intervals = not PoolScheme.objects.filter(tenant=tenant).exclude(level1_attribute="").exists()
        synced_at = timezone.now()
        listing = transaction.savepoint()
        for item in pages:
            if item is RESTART_LISTING:
                transaction.savepoint_rollback(listing)
                stage.empty()
                continue
            page, directory.sign_in_activity_available = item
            stage.copy(page)
            stage.insert_page(synced_at, new_user_pool_id=pool_id, open_intervals=open_intervals)
        stage.log_unknown_skus()
        write_in_transaction(
            tenant, lambda: save_sign_in_availability(tenant, directory.sign_in_activity_available),
            directory.users_delta_link,
        )


def _refresh_planner_statistics_soon(run: SyncRun) -> None:
    """Queue the ANALYZE of the mirror tables, so the sync's result is not held up by it.

    Without a reachable broker it runs here instead.
    """
    if connection.vendor != "postgresql":
        return
    from kombu.exceptions import OperationalError

    from .tasks import refresh_planner_statistics_task

    try:
        refresh_planner_statistics_task.apply_async(queue=settings.CELERY_TASK_DEFAULT_QUEUE)
    except OperationalError as exc:
        logger.warning("Sync run %s: the statistics refresh could not be queued (%s); it runs now", run.pk, exc)
        refresh_planner_statistics()


def refresh_planner_statistics() -> None:
    """Let PostgreSQL re-estimate the mirror tables after a full sync rewrote them.

    Without fresh statistics the planner takes a freshly loaded table for empty and picks nested loops
    that make the per-pool seat counts of an assignment 10 times slower.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for model in (DirectoryUser, UserLicense):
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def write_in_transaction(
    tenant: Tenant, write: Callable[[], None], users_delta_link: str, *, licenses_listed: bool = True
) -> None:
    """Run ``write``, then recompute pools and license history and store the delta link, in one transaction."""
    # Imported here because pools and chargeback build on graphsync's models.
    from chargeback.history import record_license_history
    from pools.membership import recompute_membership
    from pools.movers import record_sync_moves

    with transaction.atomic():
        # Holding the tenant row serialises syncs and assignments' reservations of this tenant.
        Tenant.objects.select_for_update().get(pk=tenant.pk)
        write()
        recompute_membership(tenant)
        record_sync_moves(tenant)
        record_license_history(tenant)
        save_delta_link(tenant, users_delta_link, licenses_listed=licenses_listed)
        Tenant.objects.filter(pk=tenant.pk).update(last_synced_at=timezone.now())


def _skip(run: SyncRun) -> SyncRun:
    running = (
        SyncRun.objects.filter(tenant=run.tenant, status=SyncStatus.RUNNING).exclude(pk=run.pk).order_by("-started_at").first()
    )
    holder = f" (run {running.pk}, started {running.started_at:%Y-%m-%d %H:%M:%S %Z})" if running and running.started_at else ""
    run.status = SyncStatus.SKIPPED
    run.finished_at = timezone.now()
    run.error_message = f"Skipped: another sync of tenant {run.tenant.tenant_id} is running{holder}."
    run.save(update_fields=["status", "finished_at", "error_message"])
    logger.info("Sync run %s of tenant %s skipped: another sync is running%s", run.pk, run.tenant.tenant_id, holder)
    return run


def _fail_abandoned_runs(run: SyncRun) -> None:
    """Mark failed the runs still marked running: this run holds the lock, so their workers are gone."""
    abandoned = SyncRun.objects.filter(tenant=run.tenant, status=SyncStatus.RUNNING).exclude(pk=run.pk)
    for pk in abandoned.values_list("pk", flat=True):
        logger.warning("Sync run %s of tenant %s was abandoned by its worker; marked failed", pk, run.tenant.tenant_id)
    abandoned.update(
        status=SyncStatus.FAILED,
        finished_at=timezone.now(),
        error_message="The worker running this sync stopped before it finished; the mirror was left unchanged.",
    )


def _fail(run: SyncRun, message: str) -> None:
    run.status = SyncStatus.FAILED
    run.error_message = message
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error_message", "finished_at"])
