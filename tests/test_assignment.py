"""Quota-enforced assignment and revocation against the Graph emulator over HTTPS."""
import threading

import pytest
import requests
from django.db import connection

from chargeback.models import LicenseInterval
from graphsync.choices import LicenseState
from graphsync.client import GraphClient
from graphsync.errors import GraphError
from graphsync.models import DirectoryGroup, DirectoryUser, Sku, UserLicense
from pools.choices import AuditAction, Outcome, PoolAttribute
from pools.exceptions import AssignmentRejected, GraphRejected
from pools.graph_messages import describe_graph_error
from pools.models import AuditEvent, Pool
from pools.services import assign_license, revoke_license, set_allotment, set_scheme

from conftest import sync_now

CONTROL_HEADERS = {"X-Emulator-Control": "test-control-token"}


@pytest.fixture
def emulator_snapshot():
    from graphsync.emulator.generator import generate_tenant

    return generate_tenant(users=200, seed=11)


def control(emulator, method: str, path: str, **kwargs) -> requests.Response:
    response = requests.request(
        method, f"{emulator.base_url}/_emulator/{path}", headers=CONTROL_HEADERS, verify=emulator.ca_path,
        timeout=10, **kwargs
    )
    assert response.status_code < 300, response.text
    return response


def graph_user(emulator, tenant, user: DirectoryUser) -> dict:
    return control(emulator, "GET", f"tenants/{tenant.tenant_id}/users/{user.user_id}").json()


def graph_sku_ids(emulator, tenant, user: DirectoryUser) -> set[str]:
    return {item["skuId"].lower() for item in graph_user(emulator, tenant, user)["assignedLicenses"]}


@pytest.fixture
def admin(make_portal_user, synced_tenant):
    return make_portal_user("admin", role="tenant_admin", tenant=synced_tenant)


@pytest.fixture
def pool(synced_tenant, admin):
    """One pool holding every user: the scheme splits on the UPN domain, which all users share."""
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.UPN_DOMAIN)
    return Pool.objects.filter(tenant=synced_tenant, parent=None, is_unassigned=False).order_by("-pk").first()


@pytest.fixture
def sku(synced_tenant):
    return Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")


@pytest.fixture
def manager(make_portal_user, pool):
    return make_portal_user("manager", role="pool_manager", pool=pool)


def eligible_users(pool: Pool, sku: Sku, count: int) -> list[DirectoryUser]:
    """Members with a usage location and no license at all, so no service plan can conflict with ``sku``."""
    holders = UserLicense.objects.values("user_id")
    users = list(
        pool.members_queryset().exclude(usage_location="").exclude(pk__in=holders).order_by("user_principal_name")[:count]
    )
    assert len(users) == count, f"the pool has only {len(users)} users free for {sku.part_number}"
    return users


def holders(pool: Pool, sku: Sku) -> int:
    """Members of the pool or its level-2 pools who hold the SKU in any state but Error."""
    held = UserLicense.objects.filter(sku=sku, user__in=pool.members_queryset()).exclude(state="Error")
    return held.values("user_id").distinct().count()


def allot_spare(admin, pool: Pool, sku: Sku, spare: int) -> None:
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=holders(pool, sku) + spare)


def test_assign_within_allotment(emulator, synced_tenant, admin, pool, sku, manager):
    allot_spare(admin, pool, sku, 1)
    user = eligible_users(pool, sku, 1)[0]

    license = assign_license(acting_user=manager, pool=pool, user=user, sku=sku)

    assert license.state == LicenseState.ACTIVE
    assert str(sku.sku_id) in graph_sku_ids(emulator, synced_tenant, user)
    assert LicenseInterval.objects.filter(user=user, sku=sku, ended_at__isnull=True).count() == 1
    event = AuditEvent.objects.get(action=AuditAction.LICENSE_ASSIGNED, target_user=user)
    assert event.outcome == Outcome.SUCCEEDED
    assert event.actor == manager
    assert event.pool == pool
    assert event.graph_request_id


def test_assign_beyond_allotment_rejected(emulator, synced_tenant, admin, pool, sku, manager):
    allot_spare(admin, pool, sku, 1)
    first, second = eligible_users(pool, sku, 2)
    assign_license(acting_user=manager, pool=pool, user=first, sku=sku)
    seats = pool.allotments.get(sku=sku).seats

    with pytest.raises(AssignmentRejected) as caught:
        assign_license(acting_user=manager, pool=pool, user=second, sku=sku)

    assert caught.value.message == (
        f"Pool {pool} has no spare seat of Microsoft 365 E3: {seats} allotted, {seats} in use, 0 spare. "
        "Revoke a license in this pool or ask a tenant administrator to raise its allotment."
    )
    assert str(sku.sku_id) not in graph_sku_ids(emulator, synced_tenant, second)
    assert not UserLicense.objects.filter(user=second, sku=sku).exists()
    event = AuditEvent.objects.get(action=AuditAction.LICENSE_ASSIGNED, target_user=second)
    assert event.outcome == Outcome.REJECTED


def test_revoke_frees_seat(emulator, synced_tenant, admin, pool, sku, manager):
    allot_spare(admin, pool, sku, 1)
    first, second = eligible_users(pool, sku, 2)
    assign_license(acting_user=manager, pool=pool, user=first, sku=sku)

    revoke_license(acting_user=manager, pool=pool, user=first, sku=sku)
    assign_license(acting_user=manager, pool=pool, user=second, sku=sku)

    assert str(sku.sku_id) not in graph_sku_ids(emulator, synced_tenant, first)
    assert str(sku.sku_id) in graph_sku_ids(emulator, synced_tenant, second)
    assert LicenseInterval.objects.get(user=first, sku=sku).ended_at is not None


def test_pool_without_allotment_rejected(synced_tenant, pool, sku, manager):
    user = eligible_users(pool, sku, 1)[0]

    with pytest.raises(AssignmentRejected) as caught:
        assign_license(acting_user=manager, pool=pool, user=user, sku=sku)

    assert "0 allotted" in caught.value.message


def test_revoking_group_license_names_group(synced_tenant, pool, manager):
    inherited = UserLicense.objects.filter(tenant=synced_tenant, user__pool=pool).exclude(assigned_by_group="")
    inherited = inherited.exclude(user__licenses__assigned_by_group="").first()
    assert inherited is not None, "the generated tenant should license some users only through a group"
    group = DirectoryGroup.objects.get(tenant=synced_tenant, group_id=inherited.assigned_by_group)

    with pytest.raises(AssignmentRejected) as caught:
        revoke_license(acting_user=manager, pool=pool, user=inherited.user, sku=inherited.sku)

    assert caught.value.message == (
        f"{inherited.user.user_principal_name} gets {inherited.sku.name} from the group {group.display_name}, not "
        "directly. Remove the user from the group or the license from the group in Entra ID."
    )


def test_manager_of_other_pool_gets_404(synced_tenant, admin, pool, sku, make_portal_user):
    from django.http import Http404

    other = Pool.objects.get(tenant=synced_tenant, is_unassigned=True)
    outsider = make_portal_user("outsider", role="pool_manager", pool=other)
    user = eligible_users(pool, sku, 1)[0]

    with pytest.raises(Http404):
        assign_license(acting_user=outsider, pool=pool, user=user, sku=sku)


# Graph's own errors, reached through the product when the mirror is stale or a request is malformed.


def expect_graph_rejection(manager, pool, user, sku, *, revoke=False) -> GraphRejected:
    operation = revoke_license if revoke else assign_license
    with pytest.raises(GraphRejected) as caught:
        operation(acting_user=manager, pool=pool, user=user, sku=sku)
    return caught.value


def test_graph_usage_location_error(emulator, synced_tenant, admin, pool, sku, manager):
    allot_spare(admin, pool, sku, 1)
    user = eligible_users(pool, sku, 1)[0]
    control(emulator, "PATCH", f"tenants/{synced_tenant.tenant_id}/users/{user.user_id}", json={"usageLocation": None})

    error = expect_graph_rejection(manager, pool, user, sku)

    assert error.message.startswith(
        f"{user.user_principal_name} has no usage location in Microsoft 365. Set the user's usage location"
    )
    assert error.graph_message == "License assignment cannot be done for user with invalid usage location."
    assert error.request_id
    assert not UserLicense.objects.filter(user=user, sku=sku).exists(), "the reservation must be released"
    event = AuditEvent.objects.get(action=AuditAction.LICENSE_ASSIGNED, target_user=user)
    assert event.outcome == Outcome.FAILED
    assert event.graph_request_id == error.request_id


def test_graph_no_available_licenses(emulator, synced_tenant, admin, pool, sku, manager):
    allot_spare(admin, pool, sku, 1)
    user = eligible_users(pool, sku, 1)[0]
    consumed = emulator.state(str(synced_tenant.tenant_id)).consumed_units(str(sku.sku_id))
    control(emulator, "POST", f"tenants/{synced_tenant.tenant_id}/skus/{sku.sku_id}", json={"prepaidUnits": {"enabled": consumed}})

    error = expect_graph_rejection(manager, pool, user, sku)

    assert error.message.startswith("The tenant has no free Microsoft 365 E3 seat in Microsoft 365")
    assert error.graph_message == f"Subscription with SKU {sku.sku_id} does not have any available licenses."
    assert not UserLicense.objects.filter(user=user, sku=sku).exists()


def test_graph_sku_not_in_tenant(emulator, synced_tenant, admin, pool, manager):
    ghost = Sku.objects.create(
        tenant=synced_tenant, sku_id="00000000-0000-4000-8000-0000000000aa", part_number="GHOST_SKU",
        enabled_units=10,
    )
    set_allotment(acting_user=admin, pool=pool, sku=ghost, seats=1)
    user = eligible_users(pool, ghost, 1)[0]

    error = expect_graph_rejection(manager, pool, user, ghost)

    assert error.message.startswith("The tenant has no subscription for GHOST_SKU any more.")
    assert error.graph_message == f"License {ghost.sku_id} does not correspond to a valid company License."


def test_graph_user_not_found(emulator, synced_tenant, admin, pool, sku, manager):
    allot_spare(admin, pool, sku, 1)
    user = eligible_users(pool, sku, 1)[0]
    control(emulator, "DELETE", f"tenants/{synced_tenant.tenant_id}/users/{user.user_id}")

    error = expect_graph_rejection(manager, pool, user, sku)

    assert error.message.startswith(f"{user.user_principal_name} no longer exists in Entra ID.")
    assert error.graph_message == (
        f"Resource '{user.user_id}' does not exist or one of its queried reference-property objects are not present."
    )


def test_graph_removing_license_user_lacks(emulator, synced_tenant, admin, pool, sku, manager):
    allot_spare(admin, pool, sku, 1)
    user = eligible_users(pool, sku, 1)[0]
    assign_license(acting_user=manager, pool=pool, user=user, sku=sku)
    control(
        emulator, "POST", f"tenants/{synced_tenant.tenant_id}/users/{user.user_id}/licenses",
        json={"addLicenses": [], "removeLicenses": [str(sku.sku_id)]},
    )

    error = expect_graph_rejection(manager, pool, user, sku, revoke=True)

    assert error.message.startswith(f"{user.user_principal_name} no longer holds Microsoft 365 E3 in Microsoft 365;")
    assert error.graph_message == "User does not have a corresponding license."
    assert UserLicense.objects.filter(user=user, sku=sku).exists(), "a failed revocation keeps the mirror as it was"


def test_graph_group_inherited_removal(emulator, synced_tenant, pool, manager):
    inherited = UserLicense.objects.filter(tenant=synced_tenant, user__pool=pool).exclude(assigned_by_group="")
    inherited = inherited.exclude(user__licenses__assigned_by_group="").first()
    # The mirror believes the license is direct, as it would after someone moved it to a group.
    UserLicense.objects.create(tenant=synced_tenant, user=inherited.user, sku=inherited.sku, assigned_by_group="")

    error = expect_graph_rejection(manager, pool, inherited.user, inherited.sku, revoke=True)

    assert error.message.startswith(f"{inherited.user.user_principal_name} gets {inherited.sku.name} from a group.")
    assert error.graph_message == (
        "User license is inherited from a group membership and it cannot be removed directly from the user."
    )


@pytest.mark.parametrize(
    "body, graph_message, advice",
    [
        (
            {"addLicenses": [{"skuId": "not-a-guid", "disabledPlans": []}], "removeLicenses": []},
            "Cannot convert a primitive value to the expected type 'Edm.Guid'. See the inner exception for more details",
            "The SKU ID sent for E3 is not a GUID.",
        ),
        (
            {"removeLicenses": []},
            "One or more parameters of the operation 'assignLicense' are missing from the request payload. "
            "The missing parameters are: addLicenses.",
            "License Pools sent Graph an incomplete assignLicense request.",
        ),
    ],
    ids=["not-a-guid", "missing-array"],
)
def test_graph_malformed_request_advice(synced_tenant, body, graph_message, advice):
    user = DirectoryUser.objects.filter(tenant=synced_tenant).first()

    with pytest.raises(GraphError) as caught:
        GraphClient(synced_tenant).post(f"users/{user.user_id}/assignLicense", body)

    assert caught.value.status == 400
    assert caught.value.code == "Request_BadRequest"
    assert caught.value.message == graph_message
    assert describe_graph_error(caught.value, user=user.user_principal_name, sku="E3").startswith(advice)


def race(manager, pool: Pool, users: list[DirectoryUser], sku: Sku) -> list[str]:
    """Let every user's assignment start at once, each in its own thread and connection; return the outcomes."""
    outcomes: list[str] = []
    barrier = threading.Barrier(len(users))

    def attempt(user: DirectoryUser) -> None:
        try:
            barrier.wait()
            assign_license(acting_user=manager, pool=pool, user=user, sku=sku)
            outcomes.append("assigned")
        except AssignmentRejected as exc:
            outcomes.append(exc.message)
        except Exception as exc:  # noqa: BLE001 - the test reports any other failure as an outcome
            outcomes.append(f"error: {exc!r}")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_concurrent_assignments_never_exceed_spare(require_postgresql, emulator, tenant, make_portal_user):
    sync_now(tenant)
    admin = make_portal_user("admin", role="tenant_admin", tenant=tenant)
    set_scheme(acting_user=admin, tenant=tenant, level1_attribute=PoolAttribute.UPN_DOMAIN)
    pool = Pool.objects.filter(tenant=tenant, parent=None, is_unassigned=False).first()
    sku = Sku.objects.get(tenant=tenant, part_number="SPE_E3")
    manager = make_portal_user("manager", role="pool_manager", pool=pool)
    allot_spare(admin, pool, sku, 5)
    users = eligible_users(pool, sku, 20)
    holders_before = UserLicense.objects.filter(sku=sku).values("user_id").distinct().count()

    outcomes = race(manager, pool, users, sku)

    assert outcomes.count("assigned") == 5, outcomes
    assert all("0 spare" in outcome for outcome in outcomes if outcome != "assigned"), outcomes
    in_graph = [user for user in users if str(sku.sku_id) in graph_sku_ids(emulator, tenant, user)]
    assert len(in_graph) == 5
    in_mirror = UserLicense.objects.filter(user__in=users, sku=sku, state=LicenseState.ACTIVE)
    assert in_mirror.count() == 5
    assert {item.user_id for item in in_mirror} == {user.pk for user in in_graph}
    assert UserLicense.objects.filter(sku=sku).values("user_id").distinct().count() == holders_before + 5


def test_consumed_units_follow_assign_and_revoke(emulator, synced_tenant, admin, pool, sku, manager):
    allot_spare(admin, pool, sku, 1)
    user = eligible_users(pool, sku, 1)[0]
    graph_consumed = emulator.state(str(synced_tenant.tenant_id)).consumed_units(str(sku.sku_id))
    sku.refresh_from_db()
    assert sku.consumed_units == graph_consumed

    assign_license(acting_user=manager, pool=pool, user=user, sku=sku)
    sku.refresh_from_db()
    assert sku.consumed_units == graph_consumed + 1

    revoke_license(acting_user=manager, pool=pool, user=user, sku=sku)
    sku.refresh_from_db()
    assert sku.consumed_units == graph_consumed


def test_tenant_without_free_unit_rejected(synced_tenant, admin, pool, sku, manager):
    allot_spare(admin, pool, sku, 1)
    user = eligible_users(pool, sku, 1)[0]
    Sku.objects.filter(pk=sku.pk).update(enabled_units=sku.consumed_units)
    sku.refresh_from_db()

    with pytest.raises(AssignmentRejected) as caught:
        assign_license(acting_user=manager, pool=pool, user=user, sku=sku)

    assert caught.value.message == (
        f"The tenant has no free seat of Microsoft 365 E3: {sku.enabled_units} enabled units, {sku.consumed_units} in "
        "use. Buy more seats in the Microsoft 365 admin center, then run a sync."
    )


def test_failed_assignment_returns_unit(emulator, synced_tenant, admin, pool, sku, manager):
    allot_spare(admin, pool, sku, 1)
    user = eligible_users(pool, sku, 1)[0]
    control(emulator, "DELETE", f"tenants/{synced_tenant.tenant_id}/users/{user.user_id}")
    sku.refresh_from_db()
    before = sku.consumed_units

    expect_graph_rejection(manager, pool, user, sku)

    sku.refresh_from_db()
    assert sku.consumed_units == before


def test_rejected_allotment_audited(synced_tenant, admin, pool, sku):
    from pools.exceptions import AllotmentError

    with pytest.raises(AllotmentError) as caught:
        set_allotment(acting_user=admin, pool=pool, sku=sku, seats=sku.enabled_units + 1)

    event = AuditEvent.objects.filter(action=AuditAction.ALLOTMENT_CHANGED).latest("pk")
    assert event.outcome == Outcome.REJECTED
    assert event.message == caught.value.message
    assert event.after == {"seats": sku.enabled_units + 1}
