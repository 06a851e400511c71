"""Staging a full sync's users page by page on PostgreSQL: repeated users, unknown SKUs, both ways out."""
import uuid

import pytest
from django.db import transaction
from django.utils import timezone

from graphsync.models import DirectoryUser, Sku, UserLicense
from graphsync.staging import UserStage

pytestmark = pytest.mark.usefixtures("require_postgresql")

E3 = "05e9a617-0261-4cee-bb44-138d3ef5d965"
E5 = "06ebc4ee-1bb5-47dd-8120-11324bc54e06"
UNLISTED = "11111111-2222-3333-4444-555555555555"
ALICE = "6e7b768e-07e2-4810-8459-485f84f8f204"
BOB = "87d349ed-44d7-43e1-9a83-5f2406dee5bd"


@pytest.fixture
def skus(tenant):
    return {
        sku_id: Sku.objects.create(tenant=tenant, sku_id=sku_id, part_number=part_number, enabled_units=10)
        for sku_id, part_number in [(E3, "SPE_E3"), (E5, "SPE_E5")]
    }


def graph_user(user_id, upn, *licenses, department="Sales", **properties):
    return {
        "id": user_id,
        "userPrincipalName": upn,
        "displayName": upn.split("@")[0].title(),
        "accountEnabled": True,
        "department": department,
        "country": None,
        "onPremisesExtensionAttributes": {"extensionAttribute1": "Tab\there", "extensionAttribute2": None},
        "createdDateTime": "2024-03-01T08:00:00Z",
        "licenseAssignmentStates": [
            {"skuId": sku_id, "assignedByGroup": None, "state": "Active", "error": "None", "disabledPlans": []}
            for sku_id in licenses
        ],
        **properties,
    }


def held(tenant):
    return sorted(
        (str(user_id), part_number)
        for user_id, part_number in UserLicense.objects.filter(tenant=tenant).values_list("user__user_id", "sku__part_number")
    )


def staged(tenant, skus):
    stage = UserStage(tenant, known_sku_ids={sku_id for sku_id in skus})
    stage.create()
    return stage


def test_first_sync_keeps_later_repeat(tenant, skus):
    stage = staged(tenant, skus)
    with transaction.atomic():
        stage.add_page([graph_user(ALICE, "alice@contoso.com", E3, E5), graph_user(BOB, "bob@contoso.com", E3)])
        stage.insert_page(timezone.now(), new_user_pool_id=None)
        stage.add_page([graph_user(ALICE, "alice@contoso.com", E5, department="Finance")])
        stage.insert_page(timezone.now(), new_user_pool_id=None)
    stage.drop()

    assert stage.users_count == 2
    assert held(tenant) == sorted([(ALICE, "SPE_E5"), (BOB, "SPE_E3")])
    alice = DirectoryUser.objects.get(tenant=tenant, user_id=ALICE)
    assert alice.department == "Finance"
    assert alice.country == ""
    assert alice.extension_attributes == {"extensionAttribute1": "Tab\there"}


def test_merge_keeps_later_repeat(tenant, skus):
    stage = staged(tenant, skus)
    with transaction.atomic():
        stage.add_page([graph_user(ALICE, "alice@contoso.com", E3), graph_user(BOB, "bob@contoso.com", E3)])
        stage.merge(timezone.now(), timezone.now(), timezone.now(), new_user_pool_id=None)
    stage.create()
    with transaction.atomic():
        stage.add_page([graph_user(ALICE, "alice@contoso.com", E3, E5), graph_user(ALICE, "alice@contoso.com", E5)])
        stage.merge(timezone.now(), timezone.now(), timezone.now(), new_user_pool_id=None)
    stage.drop()

    assert held(tenant) == [(ALICE, "SPE_E5")]


def test_merge_marks_missing_users_deleted(tenant, skus):
    stage = staged(tenant, skus)
    with transaction.atomic():
        stage.add_page([graph_user(ALICE, "alice@contoso.com"), graph_user(BOB, "bob@contoso.com")])
        stage.merge(timezone.now(), timezone.now(), timezone.now(), new_user_pool_id=None)
    stage.create()
    with transaction.atomic():
        stage.add_page([graph_user(ALICE, "alice@contoso.com")])
        stage.merge(timezone.now(), timezone.now(), timezone.now(), new_user_pool_id=None)
    stage.drop()

    assert DirectoryUser.objects.get(tenant=tenant, user_id=BOB).is_deleted
    assert not DirectoryUser.objects.get(tenant=tenant, user_id=ALICE).is_deleted


def test_merge_skips_unchanged_users(tenant, skus):
    stage = staged(tenant, skus)
    first = timezone.now()
    with transaction.atomic():
        stage.add_page([graph_user(ALICE, "alice@contoso.com", E3), graph_user(BOB, "bob@contoso.com")])
        stage.merge(first, first, first, new_user_pool_id=None)
    stage.create()
    second = timezone.now()
    with transaction.atomic():
        stage.add_page([graph_user(ALICE, "alice@contoso.com", E3), graph_user(BOB, "bob@contoso.com", jobTitle="CFO")])
        stage.merge(second, second, second, new_user_pool_id=None)
    stage.drop()

    synced = dict(DirectoryUser.objects.filter(tenant=tenant).values_list("user_principal_name", "synced_at"))
    assert synced == {"alice@contoso.com": first, "bob@contoso.com": second}


def test_unlisted_skus_skipped(tenant, skus):
    stage = staged(tenant, skus)
    with transaction.atomic():
        stage.add_page([graph_user(ALICE, "alice@contoso.com", E3, UNLISTED), graph_user(BOB, "bob@contoso.com", UNLISTED)])
        stage.merge(timezone.now(), timezone.now(), timezone.now(), new_user_pool_id=None)
    stage.drop()

    assert held(tenant) == [(ALICE, "SPE_E3")]
    assert stage.unknown_skus == {UNLISTED: 2}


def test_awkward_text_survives_copy(tenant, skus):
    awkward = 'Sales, "EMEA"\nline two\\ and a tab\t'
    stage = staged(tenant, skus)
    with transaction.atomic():
        stage.add_page([graph_user(str(uuid.uuid4()), "carol@contoso.com", department=awkward, jobTitle="")])
        stage.insert_page(timezone.now(), new_user_pool_id=None)
    stage.drop()

    carol = DirectoryUser.objects.get(tenant=tenant, user_principal_name="carol@contoso.com")
    assert carol.department == awkward
    assert carol.job_title == ""
    assert carol.created_at_graph.isoformat() == "2024-03-01T08:00:00+00:00"
