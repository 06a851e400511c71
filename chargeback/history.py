"""Keep LicenseInterval rows in step with who holds which SKU in which pool."""
from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.db.models import Exists, OuterRef
from django.utils import timezone

from graphsync.choices import LicenseState
from graphsync.models import DirectoryUser, Sku, Tenant, UserLicense

from .models import LicenseInterval

# States in which a user does not hold the license: a reservation not yet confirmed by Graph (pending,
# or unconfirmed after a lost response), and a group assignment that failed (for example CountViolation).
NOT_HOLDING_STATES = [LicenseState.PENDING, LicenseState.ASSIGNMENT_UNCONFIRMED, LicenseState.ERROR]


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
    so chargeback switches pools on the day of the move. Two set-based statements do the work, so the
    cost does not grow with Python objects per user.
    """
    at = at or timezone.now()
    holding_in_same_pool = (
        UserLicense.objects.filter(
            tenant=tenant,
            user_id=OuterRef("user_id"),
            sku_id=OuterRef("sku_id"),
            user__pool_id=OuterRef("pool_id"),
            user__is_deleted=False,
        )
        .exclude(state__in=NOT_HOLDING_STATES)
    )
    LicenseInterval.objects.filter(tenant=tenant, ended_at__isnull=True).exclude(Exists(holding_in_same_pool)).update(
        ended_at=at
    )

    interval_table = LicenseInterval._meta.db_table
    license_table = UserLicense._meta.db_table
    user_table = DirectoryUser._meta.db_table
    placeholders = ", ".join(["%s"] * len(NOT_HOLDING_STATES))
    # graphsync.staging opens a first sync's intervals page by page with the same rule: change both.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {interval_table} (tenant_id, user_id, sku_id, pool_id, started_at)
            SELECT DISTINCT license.tenant_id, license.user_id, license.sku_id, member.pool_id, %s
            FROM {license_table} AS license
            JOIN {user_table} AS member ON member.id = license.user_id
            WHERE license.tenant_id = %s
              AND NOT member.is_deleted
              AND license.state NOT IN ({placeholders})
              AND NOT EXISTS (
                  SELECT 1 FROM {interval_table} AS open_interval
                  WHERE open_interval.user_id = license.user_id
                    AND open_interval.sku_id = license.sku_id
                    AND open_interval.ended_at IS NULL
              )
            """,
            # Adapted as the ORM adapts a DateTimeField: given an aware datetime, SQLite would store a "+00:00"
            # suffix that the ORM's own writes lack, and the start would not compare equal to the end it follows.
            [connection.ops.adapt_datetimefield_value(at), tenant.pk, *NOT_HOLDING_STATES],
        )
