"""Keep LicenseInterval rows in step with who holds which SKU in which pool."""
from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from graphsync.choices import LicenseState
from graphsync.models import DirectoryUser, Sku, Tenant, UserLicense

from .models import LicenseInterval

# States in which a user does not occupy a seat: a reservation not yet confirmed by Graph, and a
# group assignment that failed (for example CountViolation).
NOT_HOLDING_STATES = [LicenseState.PENDING, LicenseState.ERROR]


def open_interval(user: DirectoryUser, sku: Sku, at: datetime | None = None) -> LicenseInterval:
    """Start an interval for the user and SKU unless one is already open."""
    interval = LicenseInterval.objects.filter(user=user, sku=sku, ended_at__isnull=True).first()
    if interval is not None:
        return interval
    return LicenseInterval.objects.create(
        tenant_id=user.tenant_id, user=user, sku=sku, pool_id=user.pool_id, started_at=at or timezone.now()
    )


def close_interval(user: DirectoryUser, sku: Sku, at: datetime | None = None) -> None:
    LicenseInterval.objects.filter(user=user, sku=sku, ended_at__isnull=True).update(ended_at=at or timezone.now())


def record_license_history(tenant: Tenant, at: datetime | None = None) -> None:
    """Open, close and split intervals so that open ones match the mirror at time ``at``.

    A user who moved to another pool gets their interval closed and a new one opened in the new pool,
    so chargeback switches pools on the day of the move.
    """
    at = at or timezone.now()
    holdings = {
        (user_pk, sku_pk): pool_pk
        for user_pk, sku_pk, pool_pk in UserLicense.objects.filter(tenant=tenant, user__is_deleted=False)
        .exclude(state__in=NOT_HOLDING_STATES)
        .values_list("user_id", "sku_id", "user__pool_id")
        .distinct()
    }
    open_intervals = {
        (interval.user_id, interval.sku_id): interval
        for interval in LicenseInterval.objects.filter(tenant=tenant, ended_at__isnull=True)
    }

    to_close = []
    to_open = []
    for key, interval in open_intervals.items():
        if key not in holdings:
            to_close.append(interval.pk)
        elif holdings[key] != interval.pool_id:
            to_close.append(interval.pk)
            to_open.append(key)
    to_open.extend(key for key in holdings if key not in open_intervals)

    LicenseInterval.objects.filter(pk__in=to_close).update(ended_at=at)
    LicenseInterval.objects.bulk_create(
        [
            LicenseInterval(tenant=tenant, user_id=user_pk, sku_id=sku_pk, pool_id=holdings[(user_pk, sku_pk)], started_at=at)
            for user_pk, sku_pk in to_open
        ],
        batch_size=2000,
    )
