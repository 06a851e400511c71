"""A CSV upload that revokes licenses asks for confirmation, with the users and licenses it affects."""
from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
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


def revoke_names(pool: Pool, sku: Sku) -> tuple[list[str], int]:
    """Return a file's names: members holding the SKU directly, one member without it, one outsider."""
    holders = list(
        pool.members_queryset()
        .filter(licenses__sku=sku, licenses__assigned_by_group="")
        .order_by("user_principal_name")
        .values_list("user_principal_name", flat=True)[:2]
    )
    without = pool.members_queryset().exclude(licenses__sku=sku).order_by("user_principal_name").first()
    outsider = DirectoryUser.objects.filter(tenant=pool.tenant).exclude(pool=pool).order_by("pk").first()
    return [*holders, without.user_principal_name, outsider.user_principal_name], len(holders)


def test_revoke_upload_asks_confirmation(client, sales):
    pool, sku = sales
    names, holders = revoke_names(pool, sku)
    upload = SimpleUploadedFile("users.csv", "\n".join(names).encode(), content_type="text/csv")

    response = client.post(reverse("pools:bulk_upload", args=[pool.pk]), {"kind": "revoke", "sku": sku.pk, "file": upload})

    text = " ".join(response.content.decode().split())
    assert response.status_code == 200
    assert holders >= 1
    assert "The file lists 4 users." in text
    assert f"3 of them are members of {pool.name}." in text
    assert f"{holders} of them hold{'s' if holders == 1 else ''} {sku.name} directly" in text
    assert not BulkJob.objects.exists()
    assert UserLicense.objects.filter(user__user_principal_name=names[0], sku=sku).exists()


def test_revoke_confirmed_starts_job(client, sales):
    pool, sku = sales
    names, _holders = revoke_names(pool, sku)

    response = client.post(
        reverse("pools:bulk_upload", args=[pool.pk]), {"sku": sku.pk, "names": "\r\n".join(names), "confirmed": "1"}
    )

    job = BulkJob.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("pools:bulk_job", args=[job.pk])
    assert (job.kind, job.sku) == ("revoke", sku)
    assert [item.user_principal_name for item in job.items.order_by("position")] == names


def test_revoke_confirmation_without_names(client, sales):
    pool, sku = sales

    response = client.post(
        reverse("pools:bulk_upload", args=[pool.pk]), {"sku": sku.pk, "names": " \n ", "confirmed": "1"}, follow=True
    )

    assert [str(message) for message in response.context["messages"]] == [
        "The confirmation contains no user principal names. Upload the file again."
    ]
    assert not BulkJob.objects.exists()


def test_assign_upload_needs_no_confirmation(client, sales):
    pool, sku = sales
    name = pool.members_queryset().order_by("user_principal_name").first().user_principal_name
    upload = SimpleUploadedFile("users.csv", name.encode(), content_type="text/csv")

    response = client.post(reverse("pools:bulk_upload", args=[pool.pk]), {"kind": "assign", "sku": sku.pk, "file": upload})

    assert response.status_code == 302
    assert BulkJob.objects.get().kind == "assign"
