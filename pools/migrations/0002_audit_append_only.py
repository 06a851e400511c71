"""Make the audit table append-only in PostgreSQL, whatever client connects."""
from django.db import migrations

CREATE_TRIGGER = """
CREATE OR REPLACE FUNCTION pools_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % on pools_auditevent is not allowed', TG_OP;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER pools_auditevent_append_only
    BEFORE UPDATE OR DELETE ON pools_auditevent
    FOR EACH ROW EXECUTE FUNCTION pools_auditevent_append_only();
"""

DROP_TRIGGER = """
DROP TRIGGER IF EXISTS pools_auditevent_append_only ON pools_auditevent;
DROP FUNCTION IF EXISTS pools_auditevent_append_only();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # params=None keeps the "%" of RAISE EXCEPTION from being read as a query parameter.
        schema_editor.execute(CREATE_TRIGGER, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_TRIGGER)


class Migration(migrations.Migration):
    dependencies = [("pools", "0001_initial")]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
