"""Assigning a license to an account disabled in Entra ID goes ahead, but the portal warns about it."""
from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from graphsync.models import DirectoryUser, Sku, UserLicense
from pools.bulk import create_bulk_job, run_bulk_job
from pools.choices import BulkItemStatus, BulkJobKind, PoolAttribute
from pools.models import Pool
from pools.services import set_allotment, set_scheme
from rbac.choices import Role

# FLOW_FREE has 10,000 enabled units in generated tenants, so only pool allotments limit it.
FREE_SKU = "FLOW_FREE"


@pytest.fixture
def admin(synced_tenant, make_portal_user):
    return make_portal_user("admin", role=Role.TENANT_ADMIN, tenant=synced_tenant)


@pytest.fixture
def sales(synced_tenant, admin, require_postgresql) -> tuple[Pool, Sku]:
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.DEPARTMENT)
    pool = Pool.objects.get(tenant=synced_tenant, parent=None, key="sales")
    sku = Sku.objects.get(tenant=synced_tenant, part_number=FREE_SKU)
    consumption = pool.members_queryset().filter(licenses__sku=sku).distinct().count()
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=consumption + 2)
    return pool, sku


def unlicensed_members(pool: Pool, sku: Sku, count: int) -> list[DirectoryUser]:
    return list(
        pool.members_queryset().exclude(usage_location="").exclude(licenses__sku=sku).order_by("user_principal_name")[:count]
    )


def disable(user: DirectoryUser) -> DirectoryUser:
    """Mark ``user`` disabled as a sync would after accountEnabled turned false; Graph still accepts licenses."""
    DirectoryUser.objects.filter(pk=user.pk).update(account_enabled=False)
    user.refresh_from_db()
    return user


def warning_for(user: DirectoryUser) -> str:
    return f"{user.user_principal_name} is disabled in Entra ID; the seat will show as reclaimable."


def holds(user: DirectoryUser, sku: Sku) -> bool:
    return UserLicense.objects.filter(user=user, sku=sku, assigned_by_group="").exists()


def test_api_assign_disabled_warns(admin, sales):
    pool, sku = sales
    member = disable(unlicensed_members(pool, sku, 1)[0])
    api = APIClient()
    api.force_authenticate(admin)

    response = api.post(
        f"/api/v1/pools/{pool.pk}/users/{member.user_id}/licenses/", {"skuId": str(sku.sku_id)}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["warnings"] == [warning_for(member)]
    assert holds(member, sku)


def test_api_assign_enabled_no_warnings(admin, sales):
    pool, sku = sales
    member = unlicensed_members(pool, sku, 1)[0]
    api = APIClient()
    api.force_authenticate(admin)

    response = api.post(
        f"/api/v1/pools/{pool.pk}/users/{member.user_id}/licenses/", {"skuId": str(sku.sku_id)}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["warnings"] == []


def test_schema_documents_assign_warnings(client, admin):
    client.force_login(admin)

    schema = client.get("/api/schema/").content.decode()

    # The YAML renderer wraps long descriptions, so words are compared with single spaces.
    text = " ".join(schema.split())
    assert "AssignedLicense:" in schema
    assert "account is disabled in Entra ID (accountEnabled false at the last sync)" in text


def test_row_assign_disabled_asks_confirmation(client, admin, sales):
    pool, sku = sales
    member = disable(unlicensed_members(pool, sku, 1)[0])
    client.force_login(admin)

    response = client.post(reverse("pools:assign", args=[pool.pk]), {"user": member.pk, "sku": sku.pk, "q": "a"})

    text = " ".join(response.content.decode().split())
    assert response.status_code == 200
    assert f"{warning_for(member)} Assign anyway?" in text
    assert 'name="confirm_disabled" value="1"' in text
    assert f'name="user" value="{member.pk}"' in text
    assert 'name="q" value="a"' in text
    assert not holds(member, sku)


def test_row_assign_disabled_confirmed(client, admin, sales):
    pool, sku = sales
    member = disable(unlicensed_members(pool, sku, 1)[0])
    client.force_login(admin)

    response = client.post(
        reverse("pools:assign", args=[pool.pk]), {"user": member.pk, "sku": sku.pk, "confirm_disabled": "1"}
    )

    assert response.status_code == 302
    assert holds(member, sku)


def test_row_assign_enabled_needs_no_confirmation(client, admin, sales):
    pool, sku = sales
    member = unlicensed_members(pool, sku, 1)[0]
    client.force_login(admin)

    response = client.post(reverse("pools:assign", args=[pool.pk]), {"user": member.pk, "sku": sku.pk})

    assert response.status_code == 302
    assert holds(member, sku)


def test_details_assign_disabled_asks_confirmation(client, admin, sales):
    pool, sku = sales
    member = disable(unlicensed_members(pool, sku, 1)[0])
    client.force_login(admin)
    url = reverse("pools:assign_details", args=[pool.pk, member.pk]) + f"?sku={sku.pk}"

    warning_page = client.post(url, {"sku": sku.pk})

    text = " ".join(warning_page.content.decode().split())
    assert warning_page.status_code == 200
    assert f"{warning_for(member)} Assign anyway?" in text
    assert f'action="{url}"' in text
    assert not holds(member, sku)

    confirmed = client.post(url, {"sku": sku.pk, "confirm_disabled": "1"})

    assert confirmed.status_code == 302
    assert holds(member, sku)


def test_bulk_assign_marks_disabled(emulator, admin, sales):
    pool, sku = sales
    enabled, disabled = unlicensed_members(pool, sku, 2)
    disable(disabled)
    job = create_bulk_job(
        acting_user=admin, pool=pool, sku=sku, kind=BulkJobKind.ASSIGN,
        user_principal_names=[enabled.user_principal_name, disabled.user_principal_name],
    )

    run_bulk_job(job.pk)

    results = {item.user_principal_name: (item.status, item.message) for item in job.items.all()}
    assert results[enabled.user_principal_name] == (BulkItemStatus.DONE, f"Assigned {sku.name}.")
    assert results[disabled.user_principal_name] == (BulkItemStatus.DONE, f"Assigned {sku.name} (account disabled).")
    assert holds(disabled, sku)
