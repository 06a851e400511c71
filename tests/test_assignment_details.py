"""Disabled service plans and usage locations on assignment, against the Graph emulator over HTTPS."""
import pytest
import requests
from django.urls import reverse

from graphsync.models import DirectoryUser, Sku, UserLicense
from pools.choices import AuditAction, Outcome, PoolAttribute
from pools.exceptions import AssignmentRejected, PoolsError
from pools.forms_bulk import service_plan_choices
from pools.models import AuditEvent, Pool
from pools.services import assign_license, set_allotment, set_scheme
from pools.usage_location import (
    ISO_3166_COUNTRIES, default_usage_location, set_default_usage_location, usage_location_from_country,
)

from conftest import sync_now

CONTROL_HEADERS = {"X-Emulator-Control": "test-control-token"}
UNKNOWN_PLAN = "00000000-0000-4000-8000-00000000abcd"


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


def graph_states(emulator, tenant, user: DirectoryUser) -> dict[str, list[str]]:
    """Map each directly assigned SKU id to its sorted disabled plans, as the emulator holds them."""
    return {
        state["skuId"].lower(): sorted(plan.lower() for plan in state["disabledPlans"])
        for state in graph_user(emulator, tenant, user)["licenseAssignmentStates"]
        if not state.get("assignedByGroup")
    }


def graph_writes(emulator, user: DirectoryUser) -> list[tuple[str, str]]:
    entries = control(emulator, "GET", "requests").json()["value"]
    return [(entry["method"], entry["path"].rsplit("/", 1)[-1]) for entry in entries if str(user.user_id) in entry["path"]]


@pytest.fixture
def admin(make_portal_user, synced_tenant):
    return make_portal_user("admin", role="tenant_admin", tenant=synced_tenant)


@pytest.fixture
def pool(synced_tenant, admin):
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.UPN_DOMAIN)
    return Pool.objects.filter(tenant=synced_tenant, parent=None, is_unassigned=False).order_by("-pk").first()


@pytest.fixture
def sku(synced_tenant):
    return Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")


@pytest.fixture
def manager(make_portal_user, pool):
    return make_portal_user("manager", role="pool_manager", pool=pool)


def free_users(pool: Pool, count: int) -> list[DirectoryUser]:
    holders = UserLicense.objects.values("user_id")
    # A disabled account makes the assign pages ask for confirmation first, which these tests do not cover.
    users = list(
        pool.members_queryset()
        .filter(account_enabled=True)
        .exclude(usage_location="")
        .exclude(pk__in=holders)
        .order_by("user_principal_name")[:count]
    )
    assert len(users) == count
    return users


def allot_spare(admin, pool: Pool, sku: Sku, spare: int) -> None:
    consumption = pool.members_queryset().filter(licenses__sku=sku).exclude(licenses__state="Error").distinct().count()
    set_allotment(acting_user=admin, pool=pool, sku=sku, seats=consumption + spare)


def plan_id(sku: Sku, name: str) -> str:
    return next(plan["servicePlanId"].lower() for plan in sku.service_plans if plan["servicePlanName"] == name)


def without_usage_location(emulator, tenant, user: DirectoryUser, country: str | None) -> DirectoryUser:
    """Clear the user's usage location and set the country in the emulator, then sync the mirror."""
    control(emulator, "PATCH", f"tenants/{tenant.tenant_id}/users/{user.user_id}",
            json={"usageLocation": None, "country": country})
    sync_now(tenant)
    user.refresh_from_db()
    assert user.usage_location == ""
    return user


# Disabled service plans


def test_disabled_plans_leave_other_sku(emulator, synced_tenant, admin, pool, sku, manager):
    ems = Sku.objects.get(tenant=synced_tenant, part_number="EMS")
    discovery = plan_id(ems, "ADALLOM_S_DISCOVERY")
    user = free_users(pool, 1)[0]
    control(emulator, "POST", f"tenants/{synced_tenant.tenant_id}/users/{user.user_id}/licenses",
            json={"addLicenses": [{"skuId": str(ems.sku_id), "disabledPlans": [discovery]}], "removeLicenses": []})
    sync_now(synced_tenant)
    allot_spare(admin, pool, sku, 1)
    disabled = sorted([plan_id(sku, "MESH_AVATARS_FOR_TEAMS"), plan_id(sku, "GRAPH_CONNECTORS_SEARCH_INDEX")])

    license = assign_license(acting_user=manager, pool=pool, user=user, sku=sku, disabled_plans=disabled)

    states = graph_states(emulator, synced_tenant, user)
    assert states[str(sku.sku_id)] == disabled
    assert states[str(ems.sku_id)] == [discovery]
    assert sorted(license.disabled_plans) == disabled
    assert UserLicense.objects.get(user=user, sku=ems).disabled_plans == [discovery]
    event = AuditEvent.objects.get(action=AuditAction.LICENSE_ASSIGNED, target_user=user)
    assert sorted(event.after["disabledPlans"]) == disabled


def test_unknown_plan_rejected_before_graph(emulator, synced_tenant, admin, pool, sku, manager):
    allot_spare(admin, pool, sku, 1)
    user = free_users(pool, 1)[0]

    with pytest.raises(AssignmentRejected) as caught:
        assign_license(acting_user=manager, pool=pool, user=user, sku=sku, disabled_plans=[UNKNOWN_PLAN])

    assert caught.value.message == (
        f'"{UNKNOWN_PLAN}" is not a service plan of Microsoft 365 E3 that applies to users, so it cannot be '
        "disabled. Choose among the service plans listed for Microsoft 365 E3, or run a sync if its plans "
        "changed recently."
    )
    assert graph_writes(emulator, user) == []
    assert not UserLicense.objects.filter(user=user, sku=sku).exists()
    assert AuditEvent.objects.get(action=AuditAction.LICENSE_ASSIGNED, target_user=user).outcome == Outcome.REJECTED


def test_plan_of_other_sku_rejected(synced_tenant, admin, pool, sku, manager):
    visio = Sku.objects.get(tenant=synced_tenant, part_number="VISIOCLIENT")
    allot_spare(admin, pool, sku, 1)
    user = free_users(pool, 1)[0]
    foreign = plan_id(visio, "VISIOONLINE")

    with pytest.raises(AssignmentRejected) as caught:
        assign_license(acting_user=manager, pool=pool, user=user, sku=sku, disabled_plans=[foreign])

    assert caught.value.message.startswith(f'"{foreign}" is not a service plan of Microsoft 365 E3')


def test_plan_change_is_update(emulator, synced_tenant, admin, pool, sku, manager):
    allot_spare(admin, pool, sku, 1)
    user = free_users(pool, 1)[0]
    assign_license(acting_user=manager, pool=pool, user=user, sku=sku, disabled_plans=[])
    consumed = emulator.state(str(synced_tenant.tenant_id)).consumed_units(str(sku.sku_id))
    mesh = plan_id(sku, "MESH_AVATARS_FOR_TEAMS")

    license = assign_license(acting_user=manager, pool=pool, user=user, sku=sku, disabled_plans=[mesh.upper()])

    assert graph_states(emulator, synced_tenant, user)[str(sku.sku_id)] == [mesh]
    assert emulator.state(str(synced_tenant.tenant_id)).consumed_units(str(sku.sku_id)) == consumed
    assert license.disabled_plans == [mesh]
    assert UserLicense.objects.filter(user=user, sku=sku).count() == 1
    update = AuditEvent.objects.filter(action=AuditAction.LICENSE_ASSIGNED, target_user=user).order_by("pk").last()
    assert update.before == {"skuId": str(sku.sku_id), "disabledPlans": []}
    assert update.after == {"skuId": str(sku.sku_id), "disabledPlans": [mesh]}
    assert update.message == "Changed the disabled service plans; the user keeps the same seat."
    assert update.graph_request_id


def test_same_plans_again_rejected(emulator, synced_tenant, admin, pool, sku, manager):
    allot_spare(admin, pool, sku, 2)
    user = free_users(pool, 1)[0]
    assign_license(acting_user=manager, pool=pool, user=user, sku=sku, disabled_plans=[])

    with pytest.raises(AssignmentRejected) as caught:
        assign_license(acting_user=manager, pool=pool, user=user, sku=sku, disabled_plans=[])

    assert caught.value.message == f"{user.user_principal_name} already has Microsoft 365 E3 assigned directly."


def test_plan_choices_use_friendly_names(synced_tenant, sku):
    choices = dict(service_plan_choices(sku))

    assert choices[plan_id(sku, "EXCHANGE_S_ENTERPRISE")] == "Exchange Online (Plan 2)"
    assert all(plan.get("appliesTo", "User") == "User" for plan in sku.service_plans if plan["servicePlanId"].lower() in choices)


# Usage location


def test_usage_location_from_country(emulator, synced_tenant, admin, pool, sku, manager):
    allot_spare(admin, pool, sku, 1)
    user = without_usage_location(emulator, synced_tenant, free_users(pool, 1)[0], "Deutschland")

    assign_license(acting_user=manager, pool=pool, user=user, sku=sku)

    assert graph_user(emulator, synced_tenant, user)["usageLocation"] == "DE"
    assert str(sku.sku_id) in graph_states(emulator, synced_tenant, user)
    assert graph_writes(emulator, user) == [("PATCH", str(user.user_id)), ("POST", "assignLicense")]
    user.refresh_from_db()
    assert user.usage_location == "DE"
    event = AuditEvent.objects.get(action=AuditAction.USAGE_LOCATION_SET, target_user=user)
    assert event.before == {"usageLocation": None}
    assert event.after == {"usageLocation": "DE", "source": "country"}
    assert event.message == 'Taken from the user\'s country "Deutschland".'
    assert event.actor == manager
    assert event.graph_request_id


def test_usage_location_from_pool_default(emulator, synced_tenant, admin, pool, sku, manager):
    allot_spare(admin, pool, sku, 1)
    user = without_usage_location(emulator, synced_tenant, free_users(pool, 1)[0], None)
    set_default_usage_location(acting_user=admin, pool=pool, code="fr")

    assign_license(acting_user=manager, pool=pool, user=user, sku=sku)

    assert graph_user(emulator, synced_tenant, user)["usageLocation"] == "FR"
    assert str(sku.sku_id) in graph_states(emulator, synced_tenant, user)
    event = AuditEvent.objects.get(action=AuditAction.USAGE_LOCATION_SET, target_user=user)
    assert event.after == {"usageLocation": "FR", "source": "pool"}
    assert event.message == f"Taken from the default usage location of pool {pool}."
    setting = AuditEvent.objects.get(action=AuditAction.POOL_SETTINGS_CHANGED, pool=pool)
    assert setting.before == {"defaultUsageLocation": None}
    assert setting.after == {"defaultUsageLocation": "FR"}


def test_no_usage_location_source_rejected(emulator, synced_tenant, admin, pool, sku, manager):
    allot_spare(admin, pool, sku, 1)
    user = without_usage_location(emulator, synced_tenant, free_users(pool, 1)[0], "Atlantis")

    with pytest.raises(AssignmentRejected) as caught:
        assign_license(acting_user=manager, pool=pool, user=user, sku=sku)

    assert caught.value.message == (
        f'{user.user_principal_name} has no usage location, and the portal cannot map the country "Atlantis" to '
        f"an ISO country code. Pool {pool} has no default usage location either. Set the user's usage location "
        "or country in the Microsoft 365 admin center or Entra ID and run a sync, or ask a tenant administrator "
        "to set the pool's default usage location, then try again."
    )
    assert graph_writes(emulator, user) == []
    assert not UserLicense.objects.filter(user=user, sku=sku).exists()


def test_no_usage_location_nor_country_rejected(emulator, synced_tenant, admin, pool, sku, manager):
    allot_spare(admin, pool, sku, 1)
    user = without_usage_location(emulator, synced_tenant, free_users(pool, 1)[0], None)

    with pytest.raises(AssignmentRejected) as caught:
        assign_license(acting_user=manager, pool=pool, user=user, sku=sku)

    assert caught.value.message == (
        f"{user.user_principal_name} has no usage location and no country, and pool {pool} has no default usage "
        "location. Set the user's usage location or country in the Microsoft 365 admin center or Entra ID and "
        "run a sync, or ask a tenant administrator to set the pool's default usage location, then try again."
    )


def test_default_usage_location_invalid(synced_tenant, admin, pool):
    with pytest.raises(PoolsError) as caught:
        set_default_usage_location(acting_user=admin, pool=pool, code="XX")

    assert caught.value.message == (
        '"XX" is not an ISO 3166-1 alpha-2 country code. Enter two letters such as DE, FR or US, or leave the '
        "field empty to remove the default."
    )
    pool.refresh_from_db()
    assert pool.default_usage_location == ""


@pytest.mark.parametrize(
    "typed, suggestion",
    [("UK", "GB (United Kingdom)"), ("USA", "US (United States)"), ("Germany", "DE (Germany)")],
)
def test_default_usage_location_suggests_code(synced_tenant, admin, pool, typed, suggestion):
    with pytest.raises(PoolsError) as caught:
        set_default_usage_location(acting_user=admin, pool=pool, code=typed)

    assert caught.value.message == (
        f'"{typed}" is not an ISO 3166-1 alpha-2 country code. Did you mean {suggestion}? Enter that code, or '
        "leave the field empty to remove the default."
    )


def test_default_usage_location_admin_only(synced_tenant, pool, manager):
    from django.http import Http404

    with pytest.raises(Http404):
        set_default_usage_location(acting_user=manager, pool=pool, code="DE")


def test_child_pool_uses_parent_default(synced_tenant, pool):
    pool.default_usage_location = "AT"
    pool.save()
    child = Pool.objects.create(tenant=synced_tenant, parent=pool, attribute="department", key="x", display_name="X")

    assert default_usage_location(child) == ("AT", pool)


@pytest.mark.parametrize(
    "country, code",
    [
        ("DE", "DE"), ("de", "DE"), ("Germany", "DE"), ("Deutschland", "DE"), ("United States", "US"),
        ("USA", "US"), ("U.S.A.", "US"), ("United States of America", "US"), ("UK", "GB"),
        ("United Kingdom", "GB"), ("Great Britain", "GB"), ("  the  Netherlands ", "NL"), ("Schweiz", "CH"),
        ("Côte d’Ivoire", "CI"), ("Korea, Republic of", "KR"), ("South Korea", "KR"), ("Türkiye", "TR"),
        ("Czech Republic", "CZ"), ("FRA", "FR"), ("Viet Nam", "VN"),
        ("Congo", ""), ("Korea", ""), ("XX", ""), ("Atlantis", ""), ("", ""),
    ],
)
def test_country_to_usage_location(country, code):
    assert usage_location_from_country(country) == code


def test_country_table_complete():
    assert len(ISO_3166_COUNTRIES) == 249
    assert all(len(code) == 2 and code.isupper() for code in ISO_3166_COUNTRIES)


# Pages


def test_details_page_lists_plans(client, synced_tenant, pool, sku, manager):
    user = free_users(pool, 1)[0]
    client.force_login(manager)

    response = client.get(reverse("pools:assign_details", args=[pool.pk, user.pk]), {"sku": sku.pk})

    assert response.status_code == 200
    assert "Exchange Online (Plan 2)" in response.content.decode()
    assert f'value="{plan_id(sku, "EXCHANGE_S_ENTERPRISE")}"' in response.content.decode()


def test_details_page_assigns_with_plans(client, emulator, synced_tenant, admin, pool, sku, manager):
    allot_spare(admin, pool, sku, 1)
    user = free_users(pool, 1)[0]
    mesh = plan_id(sku, "MESH_AVATARS_FOR_TEAMS")
    client.force_login(manager)

    response = client.post(
        reverse("pools:assign_details", args=[pool.pk, user.pk]), {"sku": sku.pk, "disabled_plans": [mesh]}
    )

    assert response.status_code == 302
    assert graph_states(emulator, synced_tenant, user)[str(sku.sku_id)] == [mesh]


def test_details_page_other_pool_404(client, synced_tenant, pool, make_portal_user):
    other = Pool.objects.get(tenant=synced_tenant, is_unassigned=True)
    outsider = make_portal_user("outsider", role="pool_manager", pool=other)
    user = free_users(pool, 1)[0]
    client.force_login(outsider)

    assert client.get(reverse("pools:assign_details", args=[pool.pk, user.pk])).status_code == 404


def test_pool_default_form(client, synced_tenant, admin, pool):
    client.force_login(admin)

    response = client.post(reverse("pools:pool_usage_location", args=[pool.pk]), {"default_usage_location": "ch"})

    assert response.status_code == 302
    pool.refresh_from_db()
    assert pool.default_usage_location == "CH"
