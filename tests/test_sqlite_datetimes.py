"""Datetimes written on SQLite, the embedded default, by the sync's bulk and raw SQL writes.

SQLite has no datetime type: Django stores a DateTimeField as text, "YYYY-MM-DD HH:MM:SS[.ffffff]" in
UTC, and compares it as text. A write that stores another spelling of the same instant (a "+00:00"
suffix, a "T" separator) breaks equality with ORM-written values and can break ordering and ranges.
"""
import os
import re
import subprocess
import sys

import pytest
import requests
from django.apps import apps
from django.db import connection, models

from chargeback.models import LicenseInterval
from graphsync.models import UserLicense
from pools.choices import PoolAttribute
from pools.models import Pool
from pools.services import set_scheme

from conftest import ROOT, sync_now

ORM_DATETIME_TEXT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{6})?")


def stored_datetime_texts() -> dict[str, set[str]]:
    """Return the text of every non-null DateTimeField value in the database, keyed by "table.column"."""
    texts = {}
    with connection.cursor() as cursor:
        for model in apps.get_models():
            table = connection.ops.quote_name(model._meta.db_table)
            for field in model._meta.concrete_fields:
                if not isinstance(field, models.DateTimeField):
                    continue
                column = connection.ops.quote_name(field.column)
                # CAST keeps the sqlite3 module from converting the declared datetime column to a datetime.
                cursor.execute(f"SELECT DISTINCT CAST({column} AS TEXT) FROM {table} WHERE {column} IS NOT NULL")
                texts[f"{model._meta.db_table}.{field.column}"] = {row[0] for row in cursor.fetchall()}
    return texts


@pytest.fixture
def emulator_snapshot():
    from graphsync.emulator.generator import generate_tenant

    return generate_tenant(users=120, seed=11)


def test_sync_datetimes_in_orm_format(tenant, emulator, make_portal_user):
    if connection.vendor != "sqlite":
        pytest.skip("Checks SQLite's stored text; test_sqlite_run_of_module runs this module on SQLite.")
    sync_now(tenant)
    admin = make_portal_user("admin", role="tenant_admin", tenant=tenant)
    set_scheme(acting_user=admin, tenant=tenant, level1_attribute=PoolAttribute.DEPARTMENT)
    marketing = Pool.objects.get(tenant=tenant, parent=None, key="marketing")
    user_license = (
        UserLicense.objects.filter(user__pool=marketing, user__is_deleted=False, state="Active")
        .select_related("user")
        .order_by("user__user_principal_name", "sku__part_number")
        .first()
    )
    assert user_license is not None, "no member of the marketing pool holds an active license"
    user = user_license.user

    # A mover: the next sync closes the user's interval and opens one in the new pool at the same instant.
    response = requests.patch(
        f"{emulator.base_url}/_emulator/tenants/{tenant.tenant_id}/users/{user.user_id}",
        json={"department": "Finance"}, headers={"X-Emulator-Control": "test-control-token"},
        verify=emulator.ca_path, timeout=10,
    )
    assert response.status_code < 300, response.text
    sync_now(tenant)

    texts = stored_datetime_texts()
    for column in ("graphsync_userlicense.first_seen_at", "graphsync_directoryuser.synced_at",
                   "chargeback_licenseinterval.started_at", "chargeback_licenseinterval.ended_at"):
        assert texts[column], f"the syncs stored no value in {column}"
    for column, values in texts.items():
        misspelled = sorted(value for value in values if not ORM_DATETIME_TEXT.fullmatch(value))
        assert not misspelled, f"{column} contains datetimes in another format than the ORM's: {misspelled[:3]}"

    user.refresh_from_db()
    finance = Pool.objects.get(tenant=tenant, parent=None, key="finance")
    assert user.pool_id == finance.pk
    # The first sync ran without a scheme, so the user's history starts in the Unassigned pool.
    intervals = list(LicenseInterval.objects.filter(user=user, sku=user_license.sku).order_by("started_at"))[-2:]
    assert [interval.pool_id for interval in intervals] == [marketing.pk, finance.pk]
    # Compared in SQL, as text on SQLite, as the mover checks of pools.movers compare them.
    assert LicenseInterval.objects.filter(
        user=user, sku=user_license.sku, ended_at=intervals[1].started_at, pool=marketing
    ).exists()
    # A range in SQL, as chargeback.reports selects a month's intervals.
    assert not LicenseInterval.objects.filter(
        user=user, sku=user_license.sku, started_at__lt=intervals[1].started_at, ended_at__gt=intervals[1].started_at
    ).exists()


def test_sqlite_run_of_module(tmp_path):
    """Run this module on SQLite in a child pytest, because ``make test`` runs the suite on PostgreSQL."""
    if connection.vendor == "sqlite":
        pytest.skip("This session already runs on SQLite.")
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    # The embedded settings write their generated secret key and database file under this directory, not var/.
    env["LICENSEPOOLS_VAR_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:logging",
         f"{__file__}::test_sync_datetimes_in_orm_format"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout, result.stdout[-4000:]
