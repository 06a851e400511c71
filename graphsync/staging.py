"""Stage a full sync's users in temporary tables while Graph is still being read, then merge them at once.

A full sync on PostgreSQL does not keep the tenant's users in memory. Each page Graph returns is
written with COPY into two temporary tables of the sync's own database session, one for users and one
for their ``licenseAssignmentStates``, while the next page is on its way. Temporary tables are visible
to that session only, so nothing of a half-read tenant shows; a worker that dies takes them with its
session. Once the last page is in, ``merge`` rewrites the mirror from them with a few set-based
statements inside the sync's transaction, writing only the rows that changed. On a tenant's first
sync, ``insert_page`` writes each page into the mirror as it arrives instead, inside that transaction.
"""
from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.utils import timezone

from .choices import UNCONFIRMED_STATES, LicenseOrigin, LicenseState
from .models import DirectoryUser, Sku, Tenant, UserLicense

logger = logging.getLogger(__name__)

STAGE_USERS = "stage_sync_users"
STAGE_LICENSES = "stage_sync_licenses"

# Graph user property -> mirror column, for the text properties copied as they come ("" for null).
# graphsync.sync builds its field map from these two lists too, so the SQLite and incremental syncs
# mirror the same properties.
TEXT_PROPERTIES = [
    ("userPrincipalName", "user_principal_name"),
    ("displayName", "display_name"),
    ("department", "department"),
    ("companyName", "company_name"),
    ("country", "country"),
    ("city", "city"),
    ("officeLocation", "office_location"),
    ("usageLocation", "usage_location"),
    ("jobTitle", "job_title"),
    ("employeeId", "employee_id"),
    ("employeeType", "employee_type"),
]
SIGN_IN_PROPERTIES = [
    ("lastSignInDateTime", "last_interactive_sign_in_at"),
    ("lastNonInteractiveSignInDateTime", "last_non_interactive_sign_in_at"),
    ("lastSuccessfulSignInDateTime", "last_successful_sign_in_at"),
]
USER_COLUMNS = [
    *(column for _property, column in TEXT_PROPERTIES),
    "account_enabled", "extension_attributes", "created_at_graph",
    *(column for _property, column in SIGN_IN_PROPERTIES),
]

TEXT_PROPERTY_NAMES = [name for name, _column in TEXT_PROPERTIES]
SIGN_IN_PROPERTY_NAMES = [name for name, _column in SIGN_IN_PROPERTIES]


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _csv(rows: list[list]) -> io.StringIO:
    """Render rows in COPY's CSV format: None as an unquoted empty field, which COPY reads as null.

    Graph's date-times are ISO 8601 in UTC, which PostgreSQL reads as they come.
    """
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    buffer.seek(0)
    return buffer


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _column(model, field_name: str) -> str:
    return _q(model._meta.get_field(field_name).column)


@dataclass
class StagedPage:
    """One page of Graph users rendered for COPY, with what the stage must know about repeats."""

    users_csv: io.StringIO
    licenses_csv: io.StringIO | None
    # Whether a user came twice within this page or since the converter started, and the users of this
    # page that an earlier page brought.
    repeated: bool
    seen_before: list[str]


class PageConverter:
    """Renders pages of Graph users for COPY; it touches no database, so it may run in its own thread."""

    def __init__(self, known_sku_ids: set[str]) -> None:
        self.known_sku_ids = known_sku_ids
        self.unknown_skus: dict[str, int] = {}
        self.rows = 0
        self.seen: set[str] = set()

    def restart(self) -> None:
        """Forget every page so far, as when Graph's listing starts over."""
        self.unknown_skus = {}
        self.rows = 0
        self.seen = set()

    def convert(self, users: list[dict]) -> StagedPage:
        user_rows = []
        license_rows = []
        page_ids: set[str] = set()
        repeated = False
        seen_before = []
        for data in users:
            self.rows += 1
            seq = self.rows
            user_id = str(data["id"]).lower()
            # Graph can return a user twice when the directory changes while it is paged; the later
            # copy wins.
            if user_id in page_ids:
                repeated = True
            elif user_id in self.seen:
                repeated = True
                seen_before.append(user_id)
            page_ids.add(user_id)
            self.seen.add(user_id)
            extension = data.get("onPremisesExtensionAttributes")
            activity = data.get("signInActivity") or {}
            user_rows.append([
                seq, user_id, *[data.get(name) for name in TEXT_PROPERTY_NAMES],
                "f" if data.get("accountEnabled") is False else "t",
                _json({key: value for key, value in extension.items() if value}) if extension else "{}",
                data.get("createdDateTime") or None,
                *[activity.get(name) or None for name in SIGN_IN_PROPERTY_NAMES],
            ])

            states = {}
            for state in data.get("licenseAssignmentStates") or []:
                sku_id = str(state.get("skuId") or "").lower()
                if sku_id not in self.known_sku_ids:
                    self.unknown_skus[sku_id] = self.unknown_skus.get(sku_id, 0) + 1
                    continue
                states[(sku_id, str(state.get("assignedByGroup") or "").lower())] = state
            for (sku_id, source), state in states.items():
                disabled_plans = state.get("disabledPlans")
                license_rows.append([
                    seq, user_id, sku_id, source, state.get("state") or LicenseState.ACTIVE,
                    state.get("error") or "None", _json(disabled_plans) if disabled_plans else "[]",
                    state.get("lastUpdatedDateTime") or None,
                ])
        return StagedPage(
            users_csv=_csv(user_rows), licenses_csv=_csv(license_rows) if license_rows else None,
            repeated=repeated, seen_before=seen_before,
        )


class UserStage:
    """The users and licenses of one full sync, staged page by page in temporary tables.

    Two ways out of the stage: ``merge`` once every page is staged, for a tenant whose mirror has users;
    or ``insert_page`` after each page, for the first sync of a tenant, whose every user is new.
    """

    def __init__(self, tenant: Tenant, known_sku_ids: set[str]) -> None:
        self.tenant = tenant
        self.converter = PageConverter(known_sku_ids)
        # Whether a user is staged twice since the stage was last emptied, and the users of the
        # staged page that an earlier page already brought (``insert_page`` only).
        self._repeated = False
        self._seen_before: list[str] = []
        # Mirror rows ``merge`` inserted, changed or deleted.
        self.rows_written = 0

    @property
    def users_count(self) -> int:
        """Distinct users staged so far."""
        return len(self.converter.seen)

    @property
    def unknown_skus(self) -> dict[str, int]:
        return self.converter.unknown_skus

    def create(self) -> None:
        """Create the empty stage tables, replacing those of an earlier run in this session."""
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {STAGE_USERS}, {STAGE_LICENSES}")
            text_columns = ", ".join(f"{column} text NOT NULL" for _property, column in TEXT_PROPERTIES)
            sign_in_columns = ", ".join(f"{column} timestamptz" for _property, column in SIGN_IN_PROPERTIES)
            cursor.execute(
                f"CREATE TEMP TABLE {STAGE_USERS} (seq bigint NOT NULL, user_id uuid NOT NULL, {text_columns}, "
                f"account_enabled boolean NOT NULL, extension_attributes jsonb NOT NULL, "
                f"created_at_graph timestamptz, {sign_in_columns})"
            )
            cursor.execute(
                f"CREATE TEMP TABLE {STAGE_LICENSES} (seq bigint NOT NULL, user_id uuid NOT NULL, sku_id text NOT NULL, "
                "assigned_by_group text NOT NULL, state text NOT NULL, error text NOT NULL, "
                "disabled_plans jsonb NOT NULL, last_updated timestamptz)"
            )
        self._forget()

    def empty(self) -> None:
        """Empty the stage, as when Graph's listing starts over; the converter restarts on its own."""
        self._truncate()
        self._repeated = False
        self._seen_before = []

    def drop(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {STAGE_USERS}, {STAGE_LICENSES}")

    def _forget(self) -> None:
        self.converter.restart()
        self._repeated = False
        self._seen_before = []

    def _truncate(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {STAGE_USERS}, {STAGE_LICENSES}")

    def add_page(self, users: list[dict]) -> None:
        """Convert one page of Graph users and COPY it, with their license assignment states, into the stage."""
        self.copy(self.converter.convert(users))

    def copy(self, page: StagedPage) -> None:
        """COPY a page that ``converter`` rendered into the stage."""
        self._repeated = self._repeated or page.repeated
        self._seen_before.extend(page.seen_before)
        with connection.cursor() as cursor:
            cursor.cursor.copy_expert(_USERS_COPY, page.users_csv)
            if page.licenses_csv is not None:
                cursor.cursor.copy_expert(_LICENSES_COPY, page.licenses_csv)

    def log_unknown_skus(self) -> None:
        for sku_id, count in sorted(self.unknown_skus.items()):
            logger.warning(
                "Tenant %s: %s users hold SKU %s that subscribedSkus does not list; skipped",
                self.tenant.tenant_id, count, sku_id,
            )

    def merge(self, started_at: datetime, stale_before: datetime, now: datetime, *, new_user_pool_id: int | None) -> None:
        """Make the tenant's users and licenses match the stage; call inside the sync's transaction.

        Users missing from the stage are marked deleted. License rows missing from it are removed,
        except those the portal reserved after ``started_at`` (Graph was read before they were made)
        and pending reservations made after ``stale_before``. Rows in ``UNCONFIRMED_STATES`` are left
        as they are, for the next sync's settlement to audit.
        """
        with connection.cursor() as cursor:
            self._drop_repeats(cursor)
            # Fresh statistics let the planner hash-join the stage instead of looping over it.
            cursor.execute(f"ANALYZE {STAGE_USERS}")
            cursor.execute(f"ANALYZE {STAGE_LICENSES}")
            self._upsert_users(cursor, now, new_user_pool_id)
            self.rows_written += cursor.rowcount
            cursor.execute(
                f"UPDATE {_q(DirectoryUser._meta.db_table)} AS member SET is_deleted = true, synced_at = %s "
                f"WHERE member.tenant_id = %s AND NOT member.is_deleted "
                f"AND NOT EXISTS (SELECT 1 FROM {STAGE_USERS} AS stage WHERE stage.user_id = member.user_id)",
                [now, self.tenant.pk],
            )
            self.rows_written += cursor.rowcount
            self._merge_licenses(cursor, started_at, stale_before)
        self.log_unknown_skus()

    def insert_page(self, now: datetime, *, new_user_pool_id: int | None, open_intervals: bool = False) -> None:
        """Write the staged page into the mirror and empty the stage; only for a tenant's first sync.

        Call inside the sync's transaction. A user an earlier page brought is replaced, licenses included.
        With ``open_intervals``, for a tenant without a scheme, whose users all stay in their first pool,
        the page's held licenses also start their license history at ``now``.
        """
        # Only a user an earlier page brought can already have rows: the tenant had no users when the
        # sync began, and the sync lock keeps other syncs out. Plain INSERTs skip the conflict checks.
        replacing = bool(self._seen_before)
        tenant = self.tenant.pk
        with connection.cursor() as cursor:
            self._drop_repeats(cursor)
            self._upsert_users(cursor, now, new_user_pool_id, on_conflict=replacing)
            if replacing:
                cursor.execute(
                    f"DELETE FROM {_q(UserLicense._meta.db_table)} WHERE user_id IN "
                    f"(SELECT id FROM {_q(DirectoryUser._meta.db_table)} WHERE tenant_id = %s AND user_id = ANY(%s::uuid[]))",
                    [tenant, self._seen_before],
                )
            insert_licenses, license_params = self._licenses_insert(
                f"({_RESOLVED_LICENSES})", [tenant, tenant], now, on_conflict=False
            )
            if not open_intervals:
                cursor.execute(insert_licenses, license_params)
            else:
                # The rule of chargeback.history.record_license_history for users who are all new and all
                # in one pool; that function runs at the end of the sync all the same. A user an earlier
                # page brought already has open intervals, which their unique index keeps single.
                from chargeback.history import NOT_HOLDING_STATES
                from chargeback.models import LicenseInterval

                placeholders = ", ".join(["%s"] * len(NOT_HOLDING_STATES))
                cursor.execute(
                    f"WITH held AS ({insert_licenses} RETURNING held.user_id, held.sku_id, held.state) "
                    f"INSERT INTO {_q(LicenseInterval._meta.db_table)} (tenant_id, user_id, sku_id, pool_id, started_at) "
                    f"SELECT DISTINCT %s, held.user_id, held.sku_id, %s::bigint, %s FROM held "
                    f"WHERE held.state NOT IN ({placeholders}) "
                    "ON CONFLICT (user_id, sku_id) WHERE ended_at IS NULL DO NOTHING",
                    [*license_params, tenant, new_user_pool_id, now, *NOT_HOLDING_STATES],
                )
        self._truncate()
        self._repeated = False
        self._seen_before = []

    def _drop_repeats(self, cursor) -> None:
        if not self._repeated:
            return
        cursor.execute(
            f"DELETE FROM {STAGE_USERS} AS earlier USING {STAGE_USERS} AS later "
            "WHERE earlier.user_id = later.user_id AND earlier.seq < later.seq"
        )
        cursor.execute(
            f"DELETE FROM {STAGE_LICENSES} AS license WHERE NOT EXISTS "
            f"(SELECT 1 FROM {STAGE_USERS} AS member WHERE member.seq = license.seq)"
        )

    def _upsert_users(self, cursor, now: datetime, new_user_pool_id: int | None, *, on_conflict: bool = True) -> None:
        table = _q(DirectoryUser._meta.db_table)
        columns = [_column(DirectoryUser, name) for name in USER_COLUMNS]
        column_list = ", ".join(columns)
        stage_list = ", ".join(f"stage.{column}" for column in columns)
        excluded_list = ", ".join(f"EXCLUDED.{column}" for column in columns)
        sql = (
            f"INSERT INTO {table} AS member (tenant_id, user_id, {column_list}, is_deleted, deletion_reason, synced_at, pool_id) "
            f"SELECT %s, stage.user_id, {stage_list}, false, '', %s, %s FROM {STAGE_USERS} AS stage"
        )
        if on_conflict:
            # synced_at is the last time a sync changed the user's row; unchanged rows are not rewritten.
            sql += (
                f" ON CONFLICT (tenant_id, user_id) DO UPDATE SET ({column_list}, is_deleted, deletion_reason, synced_at) "
                f"= ({excluded_list}, false, '', EXCLUDED.synced_at) "
                f"WHERE ({', '.join(f'member.{column}' for column in columns)}, member.is_deleted, member.deletion_reason) "
                f"IS DISTINCT FROM ({excluded_list}, false, '')"
            )
        cursor.execute(sql, [self.tenant.pk, now, new_user_pool_id])

    def _merge_licenses(self, cursor, started_at: datetime, stale_before: datetime) -> None:
        tenant = self.tenant.pk
        cursor.execute(f"DROP TABLE IF EXISTS {STAGE_RESOLVED}")
        cursor.execute(f"CREATE TEMP TABLE {STAGE_RESOLVED} AS {_RESOLVED_LICENSES}", [tenant, tenant])
        cursor.execute(f"ANALYZE {STAGE_RESOLVED}")
        cursor.execute(
            f"DELETE FROM {_q(UserLicense._meta.db_table)} AS held WHERE held.tenant_id = %s "
            f"AND NOT EXISTS (SELECT 1 FROM {STAGE_RESOLVED} AS wanted WHERE wanted.user_pk = held.user_id "
            "AND wanted.sku_pk = held.sku_id AND wanted.assigned_by_group = held.assigned_by_group) "
            "AND NOT (held.reserved_at IS NOT NULL AND held.reserved_at >= %s) "
            "AND NOT (held.state = %s AND held.reserved_at IS NOT NULL AND held.reserved_at >= %s) "
            f"AND held.state NOT IN ({', '.join(['%s'] * len(UNCONFIRMED_STATES))})",
            [tenant, started_at, LicenseState.PENDING, stale_before, *UNCONFIRMED_STATES],
        )
        self.rows_written += cursor.rowcount
        cursor.execute(*self._licenses_insert(STAGE_RESOLVED, [], timezone.now()))
        self.rows_written += cursor.rowcount
        cursor.execute(f"DROP TABLE {STAGE_RESOLVED}")

    def _licenses_insert(self, source: str, params: list, now: datetime, *, on_conflict: bool = True) -> tuple[str, list]:
        """Return the INSERT of ``source``'s resolved licenses into the mirror, and its parameters."""
        # A new row gets first_seen_at ``now``. Existing rows keep it, with the portal's origin and drift
        # resolution, so drift keeps the time it was first detected.
        sql = (
            f"INSERT INTO {_q(UserLicense._meta.db_table)} AS held (tenant_id, user_id, sku_id, assigned_by_group, "
            "state, error, disabled_plans, last_updated, origin, first_seen_at, drift_resolution) "
            "SELECT %s, wanted.user_pk, wanted.sku_pk, wanted.assigned_by_group, wanted.state, wanted.error, "
            f"wanted.disabled_plans, wanted.last_updated, %s, %s, '' FROM {source} AS wanted"
        )
        if on_conflict:
            sql += (
                " ON CONFLICT (user_id, sku_id, assigned_by_group) DO UPDATE SET "
                "(state, error, disabled_plans, last_updated) = "
                "(EXCLUDED.state, EXCLUDED.error, EXCLUDED.disabled_plans, EXCLUDED.last_updated) "
                "WHERE (held.state, held.error, held.disabled_plans, held.last_updated) IS DISTINCT FROM "
                "(EXCLUDED.state, EXCLUDED.error, EXCLUDED.disabled_plans, EXCLUDED.last_updated) "
                f"AND held.state NOT IN ({', '.join(['%s'] * len(UNCONFIRMED_STATES))})"
            )
            params = [*params, *UNCONFIRMED_STATES]
        return sql, [self.tenant.pk, LicenseOrigin.EXTERNAL, now, *params]


STAGE_RESOLVED = "stage_sync_license_rows"
# The staged licenses with the mirror's user and SKU keys; parameters: the tenant's pk, twice.
_RESOLVED_LICENSES = (
    "SELECT member.id AS user_pk, sku.id AS sku_pk, license.assigned_by_group, license.state, license.error, "
    "license.disabled_plans, license.last_updated "
    f"FROM {STAGE_LICENSES} AS license "
    f"JOIN {DirectoryUser._meta.db_table} AS member ON member.tenant_id = %s AND member.user_id = license.user_id "
    f"JOIN {Sku._meta.db_table} AS sku ON sku.tenant_id = %s AND sku.sku_id::text = license.sku_id"
)

# Text columns read an empty field as "", not null: Graph's null text properties are kept as "".
_USERS_COPY = (
    f"COPY {STAGE_USERS} FROM STDIN WITH (FORMAT csv, "
    f"FORCE_NOT_NULL ({', '.join(column for _property, column in TEXT_PROPERTIES)}))"
)
_LICENSES_COPY = f"COPY {STAGE_LICENSES} FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (assigned_by_group))"
