"""Migrations that add constraints bring existing rows into line first, so an upgrade neither fails nor loses data."""
import datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from graphsync.models import Sku
from pools.models import AuditEvent, Pool, Purchase, SeatRequest

BEFORE_UNIQUE_RULES = ("pools", "0008_request_moved_action")


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


@pytest.mark.django_db(transaction=True)
def test_unique_rules_resolve_existing_duplicates(require_postgresql, synced_tenant, make_portal_user):
    tenant = synced_tenant
    sku = Sku.objects.filter(tenant=tenant).first()
    pool = Pool.objects.filter(tenant=tenant).first() or Pool.objects.create(
        tenant=tenant, attribute="department", key="sales", display_name="Sales"
    )
    requester = make_portal_user("requester")
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()

    migrate([BEFORE_UNIQUE_RULES])
    try:
        with connection.cursor() as cursor:
            for reference in ["PO-1", "po-1", "PO-1", "PO-2", ""]:
                cursor.execute(
                    "INSERT INTO pools_purchase (tenant_id, sku_id, quantity, purchased_on, unit_price, currency, term,"
                    " order_reference, pool_id, recorded_at) VALUES (%s, %s, 1, %s, 10, 'EUR', 'P1Y', %s, %s, now())",
                    [tenant.pk, sku.pk, datetime.date(2026, 1, 5), reference, pool.pk],
                )
            for quantity in [3, 5, 7]:
                cursor.execute(
                    "INSERT INTO pools_seatrequest (tenant_id, pool_id, sku_id, quantity, reason, status, requested_by_id,"
                    " requested_at, decision_reason) VALUES (%s, %s, %s, %s, 'more staff', 'pending', %s, now(), '')",
                    [tenant.pk, pool.pk, sku.pk, quantity, requester.pk],
                )
    finally:
        migrate(latest)

    references = list(Purchase.objects.filter(tenant=tenant).order_by("pk").values_list("pk", "order_reference"))
    first, second, third = references[0][0], references[1][0], references[2][0]
    assert [reference for _pk, reference in references] == [
        "PO-1", f"po-1 (duplicate, purchase #{second})", f"PO-1 (duplicate, purchase #{third})", "PO-2", "",
    ]
    requests = list(SeatRequest.objects.filter(pool=pool).order_by("pk"))
    assert [request.status for request in requests] == ["pending", "withdrawn", "withdrawn"]
    assert f"request #{requests[0].pk} for the same SKU is still pending" in requests[1].decision_reason
    events = AuditEvent.objects.filter(tenant=tenant, actor_name="system")
    assert events.filter(action="purchase.recorded").count() == 2
    assert f"already used by purchase #{first}" in events.filter(action="purchase.recorded").first().message
    assert events.filter(action="request.withdrawn").count() == 2
