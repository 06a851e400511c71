"""Seat reservations and the tenant's count of consumed units.

An assignment reserves its seat in the mirror before it calls Graph. ``reserve_seat`` checks every
quota and inserts a pending license while it holds the SKU's row lock, so two delegates racing for the
last seat cannot both win.
"""
from __future__ import annotations

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from graphsync.choices import LicenseState
from graphsync.models import DirectoryUser, Sku, UserLicense

from . import stock
from .exceptions import AssignmentRejected
from .models import Allotment, Pool


def occupies_seat(user: DirectoryUser, sku: Sku) -> bool:
    """Tell whether the user uses a unit of the SKU: directly, through a group, or by a pending reservation."""
    return UserLicense.objects.filter(user=user, sku=sku).exclude(state__in=stock.SEAT_FREE_STATES).exists()


def take_unit(user: DirectoryUser, sku: Sku) -> None:
    """Count a unit of the SKU as consumed unless the user already uses one; call before adding their row.

    ``Sku.consumed_units`` is Graph's count from the last sync, kept current between syncs by the
    portal's own changes under the SKU row lock, so checking the tenant's stock needs no count query.
    NOTE: an assignment that completes while a sync is between reading Graph and writing the mirror
    is missing from the count until the next sync; Graph itself still rejects a tenant that is full.
    """
    if not occupies_seat(user, sku):
        Sku.objects.filter(pk=sku.pk).update(consumed_units=F("consumed_units") + 1)


def release_unit(license: UserLicense) -> None:
    """Delete a reservation or direct license row, and return its unit unless the user still uses one."""
    license.delete()
    if not occupies_seat(license.user, license.sku):
        Sku.objects.filter(pk=license.sku_id, consumed_units__gt=0).update(consumed_units=F("consumed_units") - 1)


def quota_chain(pool: Pool, user: DirectoryUser) -> list[Pool] | None:
    """Return the pools whose allotments limit the user: their own pool, then its parent if it has one.

    Returns None when the user is in neither ``pool`` nor one of its level-2 pools.
    """
    if user.pool_id == pool.pk:
        return [pool, pool.parent] if pool.parent_id else [pool]
    child = Pool.objects.filter(pk=user.pool_id, parent=pool).first()
    if child is None:
        return None
    # The parent is already loaded, so naming the level-2 pool in a message needs no query.
    child.parent = pool
    return [child, pool]


def reserve_seat(*, chain: list[Pool], user: DirectoryUser, sku: Sku, disabled_plans: list[str]) -> UserLicense:
    """Check every quota under the SKU's row lock and insert a pending license; commit before calling Graph.

    ``chain`` comes from ``quota_chain``. Raises AssignmentRejected naming the quota that is used up.
    """
    # When the committed rows already leave no seat, the attempt is rejected without waiting for the lock,
    # so only attempts that may succeed queue for it. A seat freed after this read is missed, as it would
    # be if the attempt had come a moment earlier.
    _check_quotas(chain, user, sku, _quota_usage(sku, user, chain))

    reservation = UserLicense(
        tenant_id=sku.tenant_id, user=user, sku=sku, assigned_by_group="", state=LicenseState.PENDING,
        disabled_plans=disabled_plans, reserved_at=timezone.now(),
    )
    if connection.vendor == "postgresql":
        return _reserve_in_one_round_trip(chain, user, sku, reservation)

    with transaction.atomic():
        # Every reservation of this SKU waits here, so two delegates cannot both take the last seat. The
        # checks read again once the lock is granted, so they see every reservation committed before it.
        Sku.objects.select_for_update(no_key=True).filter(pk=sku.pk).values_list("pk", flat=True).get()
        usage = _quota_usage(sku, user, chain)
        _check_quotas(chain, user, sku, usage)
        if not usage["occupies_seat"]:
            # See take_unit: the count moves with the portal's own changes between syncs.
            Sku.objects.filter(pk=sku.pk).update(consumed_units=F("consumed_units") + 1)
        reservation.save(force_insert=True)
        return reservation


def _reserve_in_one_round_trip(
    chain: list[Pool], user: DirectoryUser, sku: Sku, reservation: UserLicense
) -> UserLicense:
    """Lock the SKU, check every quota and insert ``reservation`` in one request to PostgreSQL.

    The SKU lock is held from the first statement to the commit. Sent as separate statements, each
    round trip inside the lock waits for the worker process to be scheduled again; with many busy
    processes on few CPUs every lock holder then waits for a CPU, and every reservation of the SKU
    queues behind it. PostgreSQL runs the statements of one request in one transaction, or in the
    caller's when an atomic block is open, and commits it at the end of the request.

    The lock is FOR NO KEY UPDATE: it still excludes other reservations and allotment changes, but
    unlike FOR UPDATE it lets rows that refer to the SKU (audit events, licenses, intervals) be
    inserted meanwhile. The second statement takes a new snapshot once the lock is granted, so it
    sees every reservation committed before.
    """
    usage_sql, usage_params = _quota_usage_query(sku, user, chain)
    fields = [field for field in UserLicense._meta.concrete_fields if not field.primary_key]
    values = [field.get_db_prep_save(field.pre_save(reservation, True), connection) for field in fields]
    casts = ", ".join(f"%s::{field.cast_db_type(connection)}" for field in fields)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    sku_table = connection.ops.quote_name(Sku._meta.db_table)
    license_table = connection.ops.quote_name(UserLicense._meta.db_table)
    sql = (
        f"SELECT 1 FROM {sku_table} WHERE id = %s FOR NO KEY UPDATE; "
        f"WITH usage AS ({usage_sql}), "
        f"inserted AS (INSERT INTO {license_table} ({columns}) SELECT {casts} FROM usage"
        f" WHERE {_quotas_allow_sql(chain)} RETURNING id), "
        # See take_unit: the count moves with the portal's own changes between syncs.
        f"counted AS (UPDATE {sku_table} SET consumed_units = consumed_units + 1 WHERE id = %s"
        " AND EXISTS (SELECT 1 FROM inserted) AND NOT (SELECT occupies_seat FROM usage)) "
        "SELECT usage.*, (SELECT id FROM inserted) AS inserted_id FROM usage"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [sku.pk, *usage_params, *values, sku.pk])
        names = [column[0] for column in cursor.description]
        usage = dict(zip(names, cursor.fetchone()))
    inserted_id = usage.pop("inserted_id")
    if inserted_id is None:
        _check_quotas(chain, user, sku, usage)
        raise AssertionError(f"The quota rule in SQL rejected a seat that _check_quotas allows: {usage}")
    reservation.pk = inserted_id
    reservation._state.adding = False
    reservation._state.db = connection.alias
    return reservation


def _quotas_allow_sql(chain: list[Pool]) -> str:
    """Return ``_check_quotas`` as a condition on the columns of ``_quota_usage_query``.

    The two state one rule, so a change to one must be made in the other. A direct assignment is not
    repeated, and each pool of the chain keeps within its allotment (a level-2 pool without one draws
    on its parent's). A user who does not yet use a unit needs a free one in the tenant.
    """
    conditions = ["NOT has_direct", "(occupies_seat OR consumed_units + 1 <= enabled_units)"]
    for level_pool in chain:
        seats, used = f"seats_{level_pool.pk}", f"holders_{level_pool.pk}"
        if level_pool.parent_id:
            conditions.append(f"({seats} IS NULL OR {used} + 1 <= {seats})")
        else:
            conditions.append(f"{used} + 1 <= COALESCE({seats}, 0)")
    return " AND ".join(conditions)


def _check_quotas(chain: list[Pool], user: DirectoryUser, sku: Sku, usage: dict) -> None:
    """Raise AssignmentRejected when ``usage`` from ``_quota_usage`` leaves no seat for the user.

    ``_quotas_allow_sql`` states the same rule in SQL; a change here must be made there too.
    """
    if usage["has_direct"]:
        raise AssignmentRejected(
            _("%(user)s already has %(sku)s assigned directly.") % {"user": user.user_principal_name, "sku": sku.name}
        )

    for level_pool in chain:
        seats = usage[f"seats_{level_pool.pk}"]
        if seats is None and level_pool.parent_id:
            continue  # A level-2 pool without its own allotment draws on its parent's.
        seats = seats or 0
        used = usage[f"holders_{level_pool.pk}"]
        if used + 1 > seats:
            raise AssignmentRejected(
                _("Pool %(pool)s has no spare seat of %(sku)s: %(seats)s allotted, %(used)s in use, %(spare)s "
                  "spare. Revoke a license in this pool or ask a tenant administrator to raise its allotment.")
                % {"pool": str(level_pool), "sku": sku.name, "seats": seats, "used": used, "spare": seats - used}
            )

    # A user who already gets the SKU from a group uses no further unit for a direct assignment.
    consumed = usage["consumed_units"]
    enabled = usage["enabled_units"]
    if not usage["occupies_seat"] and consumed + 1 > enabled:
        raise AssignmentRejected(
            _("The tenant has no free seat of %(sku)s: %(enabled)s enabled units, %(used)s in use. Buy more seats "
              "in the Microsoft 365 admin center, then run a sync.")
            % {"sku": sku.name, "enabled": enabled, "used": consumed}
        )


def _quota_usage(sku: Sku, user: DirectoryUser, chain: list[Pool]) -> dict:
    """Read in one statement what the quota checks need.

    The result contains the SKU's ``consumed_units`` and ``enabled_units`` and the user's ``has_direct``
    and ``occupies_seat``. For each pool of ``chain`` the result contains its allotment ``seats_<pk>``,
    None without one. It also contains ``holders_<pk>``: the users of the pool and its level-2 pools who
    hold or reserve the SKU, counted as ``stock.holders`` counts them.
    """
    sql, params = _quota_usage_query(sku, user, chain)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column[0] for column in cursor.description]
        usage = dict(zip(names, cursor.fetchone()))
    # SQLite returns EXISTS as 0 or 1.
    usage["has_direct"] = bool(usage["has_direct"])
    usage["occupies_seat"] = bool(usage["occupies_seat"])
    return usage


def _quota_usage_query(sku: Sku, user: DirectoryUser, chain: list[Pool]) -> tuple[str, list]:
    """Return the statement and parameters of ``_quota_usage``.

    Plain SQL, because compiling this statement through the ORM took about 2 ms of CPU per call on the
    5,000-user tenant of bench/concurrent_assign.py, and while one process holds the lock the others wait.
    """
    tables = {
        "sku": Sku._meta.db_table,
        "license": UserLicense._meta.db_table,
        "user": DirectoryUser._meta.db_table,
        "allotment": Allotment._meta.db_table,
        "pool": Pool._meta.db_table,
    }
    # Lists are spelled out as IN (%s, ...) because SQLite, the embedded default, has no arrays.
    free = list(stock.SEAT_FREE_STATES)
    free_placeholders = ", ".join(["%s"] * len(free))
    columns = [
        "consumed_units",
        "enabled_units",
        "EXISTS (SELECT 1 FROM {license} WHERE sku_id = %s AND user_id = %s AND assigned_by_group = '')"
        " AS has_direct",
        f"EXISTS (SELECT 1 FROM {{license}} WHERE sku_id = %s AND user_id = %s AND state NOT IN ({free_placeholders}))"
        " AS occupies_seat",
    ]
    params: list = [sku.pk, user.pk, sku.pk, user.pk, *free]
    for pool_pk in (level_pool.pk for level_pool in chain):
        columns.append(f"(SELECT seats FROM {{allotment}} WHERE pool_id = %s AND sku_id = %s) AS seats_{pool_pk}")
        # The pool's level-2 pools are read here, not before, to save a round trip. Syncs and scheme
        # changes create and move pools without the SKU lock, so either read is as fresh.
        columns.append(
            "(SELECT COUNT(DISTINCT held.user_id) FROM {license} held JOIN {user} holder ON holder.id = held.user_id"
            f" WHERE held.sku_id = %s AND held.state NOT IN ({free_placeholders}) AND NOT holder.is_deleted"
            " AND holder.pool_id IN (SELECT id FROM {pool} WHERE id = %s OR parent_id = %s)) AS holders_" + str(pool_pk)
        )
        params += [pool_pk, sku.pk, sku.pk, *free, pool_pk, pool_pk]
    params.append(sku.pk)
    select = ", ".join(column.format(**tables) for column in columns)
    return f"SELECT {select} FROM {tables['sku']} WHERE id = %s", params
