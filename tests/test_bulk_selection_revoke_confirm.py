"""Revoking through the members ticked on the pool page asks for confirmation, with the licenses it affects."""
from __future__ import annotations

import pytest
from django.urls import reverse

from graphsync.models import DirectoryUser, Sku, UserLicense
from pools.choices import PoolAttribute
from pools.models import BulkJob, Pool
from pools.services import set_scheme
from rbac.choices import Role


@pytest.fixture
def sales(client, synced_tenant, make_portal_user, require_postgresql) -> tuple[Pool, Sku]:
    admin = make_portal_user("admin", role=Role.TENANT_ADMIN, tenant=synced_tenant)
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.DEPARTMENT)
    client.force_login(admin)
    pool = Pool.objects.get(tenant=synced_tenant, parent=None, key="sales")
    return pool, Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")


def selected_members(pool: Pool, sku: Sku) -> tuple[list[DirectoryUser], int]:
    """Return members to tick: up to two holding the SKU directly and one without it."""
    holders = list(
        pool.members_queryset().filter(licenses__sku=sku, licenses__assigned_by_group="").order_by("user_principal_name")[:2]
    )
    without = pool.members_queryset().exclude(licenses__sku=sku).order_by("user_principal_name").first()
    return [*holders, without], len(holders)


def test_selection_revoke_asks_confirmation(client, sales):
    pool, sku = sales
    users, holders = selected_members(pool, sku)

    response = client.post(
        reverse("pools:bulk_selection", args=[pool.pk]),
        {"kind": "revoke", "sku": sku.pk, "users": [user.pk for user in users]},
    )

    text = " ".join(response.content.decode().split())
    assert response.status_code == 200
    assert holders >= 1
    assert f"3 members of {pool.name} are selected." in text
    assert f"{holders} of them hold{'s' if holders == 1 else ''} {sku.name} directly" in text
    for user in users:
        assert f'name="users" value="{user.pk}"' in text
    assert 'name="confirmed" value="1"' in text
    assert not BulkJob.objects.exists()
    assert UserLicense.objects.filter(user=users[0], sku=sku).exists()


def test_selection_revoke_confirmed_starts_job(client, sales):
    pool, sku = sales
    users, _holders = selected_members(pool, sku)

    response = client.post(
        reverse("pools:bulk_selection", args=[pool.pk]),
        {"kind": "revoke", "sku": sku.pk, "users": [user.pk for user in users], "confirmed": "1"},
    )

    job = BulkJob.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("pools:bulk_job", args=[job.pk])
    assert (job.kind, job.sku) == ("revoke", sku)
    expected = sorted(user.user_principal_name for user in users)
    assert [item.user_principal_name for item in job.items.order_by("position")] == expected


def test_selection_assign_needs_no_confirmation(client, sales):
    pool, sku = sales
    member = pool.members_queryset().order_by("user_principal_name").first()

    response = client.post(
        reverse("pools:bulk_selection", args=[pool.pk]), {"kind": "assign", "sku": sku.pk, "users": [member.pk]}
    )

    assert response.status_code == 302
    assert BulkJob.objects.get().kind == "assign"
