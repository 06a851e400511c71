"""Full synchronisation of a tenant's directory into the local mirror.

Everything is read from Graph first and written in one transaction, so the portal never shows a
half-synced tenant: a run that fails part-way leaves the previous mirror as it was.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from . import catalog
from .choices import LicenseState, SyncStatus
from .client import GraphClient
from .errors import GraphError
from .models import DirectoryGroup, DirectoryUser, Sku, Subscription, SyncRun, Tenant, UserLicense

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

# A reservation still pending this long after it was made belongs to a process that died between
# reserving the seat and calling Graph; Graph's own state then decides.
STALE_RESERVATION_AGE = timedelta(minutes=15)

USER_FIELDS = [
    "user_principal_name", "display_name", "account_enabled", "department", "company_name", "country", "city",
    "office_location", "usage_location", "job_title", "employee_id", "employee_type", "extension_attributes",
    "created_at_graph", "is_deleted", "synced_at",
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


def fetch_directory(client: GraphClient, run: SyncRun | None = None) -> TenantDirectory:
    directory = TenantDirectory()
    directory.skus = client.get("subscribedSkus")["value"]
    directory.subscriptions = client.get("directory/subscriptions")["value"]
    for page in client.iter_pages("groups", {"$select": GROUP_SELECT, "$top": PAGE_SIZE}):
        directory.groups.extend(page)
    for page in client.iter_pages("users", {"$select": USER_SELECT, "$top": PAGE_SIZE}):
        directory.users.extend(page)
        if run is not None:
            SyncRun.objects.filter(pk=run.pk).update(users_count=len(directory.users))
    return directory


def _text(value) -> str:
    return "" if value is None else str(value)


def _datetime(value):
    return parse_datetime(value) if value else None


def user_from_graph(tenant: Tenant, data: dict, synced_at) -> DirectoryUser:
    extensions = {key: value for key, value in (data.get("onPremisesExtensionAttributes") or {}).items() if value}
    return DirectoryUser(
        tenant=tenant,
        user_id=data["id"],
        user_principal_name=_text(data.get("userPrincipalName")),
        display_name=_text(data.get("displayName")),
        account_enabled=bool(data.get("accountEnabled", True)),
        department=_text(data.get("department")),
        company_name=_text(data.get("companyName")),
        country=_text(data.get("country")),
        city=_text(data.get("city")),
        office_location=_text(data.get("officeLocation")),
        usage_location=_text(data.get("usageLocation")),
        job_title=_text(data.get("jobTitle")),
        employee_id=_text(data.get("employeeId")),
        employee_type=_text(data.get("employeeType")),
        extension_attributes=extensions,
        created_at_graph=_datetime(data.get("createdDateTime")),
        is_deleted=False,
        synced_at=synced_at,
    )


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

    DirectoryUser.objects.bulk_create(
        [user_from_graph(tenant, data, now) for data in directory.users],
        update_conflicts=True, unique_fields=["tenant", "user_id"], update_fields=USER_FIELDS, batch_size=1000,
    )
    seen_user_ids = {data["id"].lower() for data in directory.users}
    gone = [
        pk for pk, user_id in DirectoryUser.objects.filter(tenant=tenant, is_deleted=False).values_list("pk", "user_id")
        if str(user_id) not in seen_user_ids
    ]
    DirectoryUser.objects.filter(pk__in=gone).update(is_deleted=True, synced_at=now)

    write_licenses(tenant, directory, started_at)


def write_licenses(tenant: Tenant, directory: TenantDirectory, started_at) -> None:
    """Make the tenant's UserLicense rows match each user's ``licenseAssignmentStates``.

    Rows the portal reserved or confirmed after this run began are kept: Graph was read before they
    were made.
    """
    user_pks = dict(DirectoryUser.objects.filter(tenant=tenant).values_list("user_id", "pk"))
    sku_pks = dict(Sku.objects.filter(tenant=tenant).values_list("sku_id", "pk"))
    user_pks = {str(key): value for key, value in user_pks.items()}
    sku_pks = {str(key): value for key, value in sku_pks.items()}

    wanted: dict[tuple[int, int, str], UserLicense] = {}
    for data in directory.users:
        user_pk = user_pks[data["id"].lower()]
        for state in data.get("licenseAssignmentStates") or []:
            sku_pk = sku_pks.get(str(state.get("skuId", "")).lower())
            if sku_pk is None:
                logger.warning(
                    "Tenant %s: user %s holds SKU %s that subscribedSkus does not list; skipped",
                    tenant.tenant_id, data["id"], state.get("skuId"),
                )
                continue
            source = (state.get("assignedByGroup") or "").lower()
            wanted[(user_pk, sku_pk, source)] = UserLicense(
                tenant=tenant,
                user_id=user_pk,
                sku_id=sku_pk,
                assigned_by_group=source,
                state=_text(state.get("state")) or LicenseState.ACTIVE,
                error=_text(state.get("error")) or "None",
                disabled_plans=state.get("disabledPlans") or [],
                last_updated=_datetime(state.get("lastUpdatedDateTime")),
            )

    existing = UserLicense.objects.filter(tenant=tenant).values_list(
        "pk", "user_id", "sku_id", "assigned_by_group", "state", "reserved_at"
    )
    stale_before = started_at - STALE_RESERVATION_AGE
    to_delete = []
    for pk, user_pk, sku_pk, source, state, reserved_at in existing:
        if (user_pk, sku_pk, source) in wanted:
            continue
        if reserved_at and reserved_at >= started_at:
            continue
        if state == LicenseState.PENDING and reserved_at and reserved_at >= stale_before:
            continue
        to_delete.append(pk)
    UserLicense.objects.filter(pk__in=to_delete).delete()

    UserLicense.objects.bulk_create(
        list(wanted.values()),
        update_conflicts=True,
        unique_fields=["user", "sku", "assigned_by_group"],
        update_fields=["state", "error", "disabled_plans", "last_updated"],
        batch_size=2000,
    )


def run_full_sync(run: SyncRun) -> SyncRun:
    """Read the whole tenant from Graph and replace its mirror, pool membership and license history."""
    # Imported here because pools and chargeback build on graphsync's models.
    from chargeback.history import record_license_history
    from pools.membership import recompute_membership

    tenant = run.tenant
    run.status = SyncStatus.RUNNING
    run.started_at = timezone.now()
    run.save(update_fields=["status", "started_at"])
    logger.info("Sync run %s of tenant %s started", run.pk, tenant.tenant_id)

    try:
        directory = fetch_directory(GraphClient(tenant), run)
        with transaction.atomic():
            # Holding the tenant row serialises syncs and assignments' reservations of this tenant.
            Tenant.objects.select_for_update().get(pk=tenant.pk)
            write_mirror(tenant, directory, run.started_at)
            recompute_membership(tenant)
            record_license_history(tenant)
            Tenant.objects.filter(pk=tenant.pk).update(last_synced_at=timezone.now())
    except GraphError as exc:
        run.status = SyncStatus.FAILED
        run.error_message = str(exc)
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error_message", "finished_at"])
        logger.error("Sync run %s of tenant %s failed: %s", run.pk, tenant.tenant_id, exc)
        return run

    run.status = SyncStatus.SUCCEEDED
    run.finished_at = timezone.now()
    run.users_count = len(directory.users)
    run.groups_count = len(directory.groups)
    run.skus_count = len(directory.skus)
    run.subscriptions_count = len(directory.subscriptions)
    run.save()
    logger.info(
        "Sync run %s of tenant %s succeeded: %s users, %s groups, %s SKUs in %.1f s",
        run.pk, tenant.tenant_id, run.users_count, run.groups_count, run.skus_count,
        (run.finished_at - run.started_at).total_seconds(),
    )
    return run
