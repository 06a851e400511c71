"""Pool schemes in depth: every attribute, portal values, aliases, merges, renames and the scheme preview."""
import copy

import pytest
import requests
from guardian.shortcuts import assign_perm, get_groups_with_perms, get_users_with_perms
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.db import IntegrityError, connection, transaction
from django.urls import reverse

from graphsync.models import DirectoryUser, Sku, UserLicense
from pools import scheme_impacts, stock
from pools.choices import AlertKind, AuditAction, Outcome, PoolAttribute, RequestStatus
from pools.exceptions import AllotmentError
from pools.models import Alert, Allotment, AuditEvent, Pool, PoolAlias, PoolScheme, PortalValue, SeatRequest
from pools.normalization import normalize_value
from pools.pool_names import PoolNameError
from pools.schemes import (
    PortalValueImportError, SchemeError, StalePreview, add_alias, apply_scheme, import_portal_values, merge_pools,
    preview_scheme, remove_alias, set_portal_value,
)
from pools.services import rename_pool, set_allotment, set_scheme
from rbac import scoping
from rbac.choices import Action, Role
from rbac.models import Grant
from rbac.services import grant_role

from conftest import sync_now

CONTROL_HEADERS = {"X-Emulator-Control": "test-control-token"}
EMPLOYEE_TYPES = ["Employee", "Contractor", " employee", None, "Intern"]
VERTRIEB_SPELLINGS = ["Vertrieb", " vertrieb", "VERTRIEB"]


@pytest.fixture
def emulator_snapshot():
    """A generated tenant whose users also carry employee types, extension attributes 3-15 and "Vertrieb"."""
    from graphsync.emulator.generator import generate_tenant

    snapshot = copy.deepcopy(generate_tenant(users=200, seed=11))
    for index, user in enumerate(snapshot["users"]):
        user["employeeType"] = EMPLOYEE_TYPES[index % len(EMPLOYEE_TYPES)]
        extensions = user.setdefault("onPremisesExtensionAttributes", {})
        for number in range(3, 16):
            extensions[f"extensionAttribute{number}"] = None if index % 4 == 0 else f"Value {(index + number) % 3}"
        if index % 20 == 7:
            user["department"] = VERTRIEB_SPELLINGS[index % 3]
    return snapshot


@pytest.fixture
def admin(make_portal_user, synced_tenant):
    return make_portal_user("admin", role="tenant_admin", tenant=synced_tenant)


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


def control(emulator, method: str, path: str, **kwargs) -> requests.Response:
    response = requests.request(
        method, f"{emulator.base_url}/_emulator/{path}", headers=CONTROL_HEADERS, verify=emulator.ca_path,
        timeout=10, **kwargs
    )
    assert response.status_code < 300, response.text
    return response


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def graph_value(user: dict, attribute: str) -> str:
    """Read an attribute from the snapshot's Graph JSON, independently of the portal's mirror."""
    if attribute == PoolAttribute.UPN_DOMAIN:
        return user["userPrincipalName"].rpartition("@")[2]
    if attribute.startswith("extensionAttribute"):
        return (user.get("onPremisesExtensionAttributes") or {}).get(attribute) or ""
    return user.get(attribute) or ""


def active_level1(tenant) -> dict[str, Pool]:
    return {pool.key: pool for pool in Pool.objects.filter(tenant=tenant, parent=None, is_active=True, is_unassigned=False)}


def unassigned(tenant) -> Pool:
    return Pool.objects.get(tenant=tenant, is_unassigned=True)


def directory_attributes() -> list[str]:
    return [value for value in PoolAttribute.values if value != PoolAttribute.PORTAL_VALUE]


def pool_of(user_id) -> Pool:
    return DirectoryUser.objects.select_related("pool").get(user_id=user_id).pool


# Every attribute at both levels


def test_every_attribute_as_level1(synced_tenant, admin, emulator_snapshot):
    users = emulator_snapshot["users"]
    for attribute in directory_attributes():
        set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=attribute)

        expected = {normalize_value(graph_value(user, attribute)) for user in users} - {""}
        assert set(active_level1(synced_tenant)) == expected, attribute
        blanks = sum(1 for user in users if not normalize_value(graph_value(user, attribute)))
        assert unassigned(synced_tenant).members.count() == blanks, attribute
        for user in users[:25]:
            key = normalize_value(graph_value(user, attribute))
            assert pool_of(user["id"]).key == key, (attribute, user["userPrincipalName"])


def test_every_attribute_as_level2(synced_tenant, admin, emulator_snapshot):
    users = emulator_snapshot["users"]
    for attribute in directory_attributes():
        level1 = PoolAttribute.COMPANY_NAME if attribute != PoolAttribute.COMPANY_NAME else PoolAttribute.UPN_DOMAIN
        set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=level1, level2_attribute=attribute)

        expected = {
            (normalize_value(graph_value(user, level1)), normalize_value(graph_value(user, attribute)))
            for user in users
        }
        expected = {pair for pair in expected if pair[0] and pair[1]}
        children = Pool.objects.filter(tenant=synced_tenant, parent__isnull=False, is_active=True).select_related("parent")
        assert {(child.parent.key, child.key) for child in children} == expected, attribute
        assert {child.attribute for child in children} == {attribute}
        for user in users[:25]:
            key2 = normalize_value(graph_value(user, attribute))
            pool = pool_of(user["id"])
            assert pool.key == (key2 or normalize_value(graph_value(user, level1))), (attribute, user["userPrincipalName"])


def test_portal_value_scheme(synced_tenant, admin):
    users = list(DirectoryUser.objects.filter(tenant=synced_tenant, is_deleted=False).order_by("user_principal_name")[:3])
    set_portal_value(acting_user=admin, user=users[0], value="Project Alpha")
    set_portal_value(acting_user=admin, user=users[1], value=" project  ALPHA")
    set_portal_value(acting_user=admin, user=users[2], value="Beta")

    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.PORTAL_VALUE)

    pools = active_level1(synced_tenant)
    assert set(pools) == {"project alpha", "beta"}
    assert pools["project alpha"].display_name == "Project Alpha"
    assert set(pools["project alpha"].members.values_list("pk", flat=True)) == {users[0].pk, users[1].pk}
    total = DirectoryUser.objects.filter(tenant=synced_tenant, is_deleted=False).count()
    assert unassigned(synced_tenant).members.count() == total - 3


def test_portal_value_as_level2(synced_tenant, admin):
    user = DirectoryUser.objects.filter(tenant=synced_tenant, is_deleted=False).exclude(company_name="").first()
    set_portal_value(acting_user=admin, user=user, value="Gamma")

    set_scheme(
        acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.COMPANY_NAME,
        level2_attribute=PoolAttribute.PORTAL_VALUE,
    )

    user.refresh_from_db()
    assert (user.pool.parent.key, user.pool.key) == (normalize_value(user.company_name), "gamma")
    assert Pool.objects.filter(tenant=synced_tenant, parent__isnull=False, is_active=True).count() == 1


def test_portal_value_change_moves_user(synced_tenant, admin):
    user = DirectoryUser.objects.filter(tenant=synced_tenant, is_deleted=False).first()
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.PORTAL_VALUE)

    set_portal_value(acting_user=admin, user=user, value="Delta")
    user.refresh_from_db()
    assert user.pool.key == "delta"

    set_portal_value(acting_user=admin, user=user, value="")
    user.refresh_from_db()
    assert user.pool.is_unassigned
    assert not PortalValue.objects.filter(user=user).exists()
    events = AuditEvent.objects.filter(action=AuditAction.PORTAL_VALUE_SET, target_user=user).order_by("pk")
    assert [(event.before, event.after) for event in events] == [
        ({"value": ""}, {"value": "Delta"}),
        ({"value": "Delta"}, {"value": ""}),
    ]


def test_portal_value_too_long(synced_tenant, admin):
    user = DirectoryUser.objects.filter(tenant=synced_tenant, is_deleted=False).first()

    with pytest.raises(SchemeError) as caught:
        set_portal_value(acting_user=admin, user=user, value="x" * 301)

    assert caught.value.message == (
        f"The value for {user.user_principal_name} is 301 characters long; at most 300 are allowed."
    )
    assert not PortalValue.objects.filter(user=user).exists()


# Portal values from CSV


def upns(tenant, count: int) -> list[str]:
    return list(
        DirectoryUser.objects.filter(tenant=tenant, is_deleted=False)
        .order_by("user_principal_name")
        .values_list("user_principal_name", flat=True)[:count]
    )


def test_csv_import_with_bom(synced_tenant, admin):
    first, second, third = upns(synced_tenant, 3)
    set_portal_value(acting_user=admin, user=DirectoryUser.objects.get(user_principal_name=third), value="Old")
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.PORTAL_VALUE)
    data = f"userPrincipalName,value\r\n{first.upper()},Sales\r\n{second},\"Ventes – Île-de-France\"\r\n{third},\r\n"

    result = import_portal_values(acting_user=admin, tenant=synced_tenant, data=b"\xef\xbb\xbf" + data.encode())

    assert (result.set, result.cleared, result.unchanged) == (2, 1, 0)
    values = dict(PortalValue.objects.filter(tenant=synced_tenant).values_list("user__user_principal_name", "value"))
    assert values == {first: "Sales", second: "Ventes – Île-de-France"}
    assert pool_of(DirectoryUser.objects.get(user_principal_name=second).user_id).display_name == "Ventes – Île-de-France"
    assert pool_of(DirectoryUser.objects.get(user_principal_name=third).user_id).is_unassigned
    assert AuditEvent.objects.filter(action=AuditAction.PORTAL_VALUE_SET, actor=admin).count() == 4


def test_csv_import_without_bom(synced_tenant, admin):
    (first,) = upns(synced_tenant, 1)

    result = import_portal_values(acting_user=admin, tenant=synced_tenant, data=f"userPrincipalName,value\n{first},R&D\n".encode())

    assert (result.set, result.cleared, result.unchanged) == (1, 0, 0)
    assert PortalValue.objects.get(user__user_principal_name=first).value == "R&D"


def test_csv_errors_change_nothing(synced_tenant, admin):
    first, second = upns(synced_tenant, 2)
    data = (
        "userPrincipalName,value\n"
        f"{first},Sales\n"
        "nobody@example.invalid,Sales\n"
        f"{first.upper()},Marketing\n"
        f"{second},a,b\n"
        f"{second},{'x' * 301}\n"
        ",Sales\n"
    )

    with pytest.raises(PortalValueImportError) as caught:
        import_portal_values(acting_user=admin, tenant=synced_tenant, data=data.encode())

    assert caught.value.message == "The file has 5 errors, so no value was changed. Fix them and upload the file again."
    assert caught.value.errors == [
        (3, "No user nobody@example.invalid in this tenant. Check the spelling, or run a sync if the user is new."),
        (4, f"{first.upper()} appears again; it is already on line 2. Keep one line per user."),
        (5, "Expected 2 columns (userPrincipalName,value), found 3."),
        (6, f"The value for {second} is 301 characters long; at most 300 are allowed."),
        (7, "The userPrincipalName is blank."),
    ]
    assert not PortalValue.objects.filter(tenant=synced_tenant).exists()
    assert not AuditEvent.objects.filter(action=AuditAction.PORTAL_VALUE_SET).exists()


def test_csv_wrong_header(synced_tenant, admin):
    with pytest.raises(PortalValueImportError) as caught:
        import_portal_values(acting_user=admin, tenant=synced_tenant, data=b"upn;value\na@b;c\n")

    assert caught.value.message == "The first line must be the header userPrincipalName,value; found upn;value."


def test_csv_not_utf8(synced_tenant, admin):
    with pytest.raises(PortalValueImportError) as caught:
        import_portal_values(acting_user=admin, tenant=synced_tenant, data="userPrincipalName,value\na,Café\n".encode("cp1252"))

    assert caught.value.message == (
        "The file is not UTF-8 text: line 2 contains an invalid byte. Save it as CSV UTF-8 and upload it again."
    )


def test_csv_upload_lists_errors(admin_client, synced_tenant):
    from django.core.files.uploadedfile import SimpleUploadedFile

    (first,) = upns(synced_tenant, 1)
    upload = SimpleUploadedFile("values.csv", f"userPrincipalName,value\n{first},A\nghost@example.invalid,B\n".encode())
    url = reverse("pools:portal_values_upload", kwargs={"tenant_pk": synced_tenant.pk})

    response = admin_client.post(url, {"file": upload})

    assert response.status_code == 400
    assert messages_of(response) == ["The file has 1 error, so no value was changed. Fix it and upload the file again."]
    assert "Line 3: No user ghost@example.invalid in this tenant." in response.content.decode()
    assert not PortalValue.objects.filter(tenant=synced_tenant).exists()


def test_csv_upload_succeeds(admin_client, synced_tenant):
    from django.core.files.uploadedfile import SimpleUploadedFile

    first, second = upns(synced_tenant, 2)
    upload = SimpleUploadedFile("values.csv", f"\ufeffuserPrincipalName,value\n{first},A\n{second},B\n".encode())
    url = reverse("pools:portal_values_upload", kwargs={"tenant_pk": synced_tenant.pk})

    response = admin_client.post(url, {"file": upload}, follow=True)

    assert messages_of(response) == ["Imported the file. Values set: 2. Values cleared: 0. Unchanged: 0."]
    assert PortalValue.objects.filter(tenant=synced_tenant).count() == 2


# Aliases


@pytest.fixture
def department_scheme(synced_tenant, admin):
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.DEPARTMENT)
    return synced_tenant


def vertrieb_users(tenant) -> set[int]:
    return set(
        DirectoryUser.objects.filter(tenant=tenant, is_deleted=False, department__iregex=r"^\s*vertrieb\s*$").values_list(
            "pk", flat=True
        )
    )


def test_alias_merges_value(department_scheme, admin):
    tenant = department_scheme
    sales = active_level1(tenant)["sales"]
    moving = vertrieb_users(tenant)
    assert moving

    alias = add_alias(acting_user=admin, pool=sales, value="  VERTRIEB ")

    assert (alias.alias_key, alias.spelling) == ("vertrieb", "VERTRIEB")
    assert moving <= set(sales.members.values_list("pk", flat=True))
    assert "vertrieb" not in active_level1(tenant)
    assert sales.display_name == Pool.objects.get(pk=sales.pk).display_name == "Sales"
    event = AuditEvent.objects.get(action=AuditAction.ALIAS_ADDED)
    assert event.pool == sales
    assert event.after["users_moved"] == len(moving)


def test_alias_survives_sync(department_scheme, admin):
    sales = active_level1(department_scheme)["sales"]
    add_alias(acting_user=admin, pool=sales, value="Vertrieb")

    sync_now(department_scheme)

    assert vertrieb_users(department_scheme) <= set(sales.members.values_list("pk", flat=True))
    assert "vertrieb" not in active_level1(department_scheme)


def test_alias_removed(department_scheme, admin):
    tenant = department_scheme
    sales = active_level1(tenant)["sales"]
    alias = add_alias(acting_user=admin, pool=sales, value="Vertrieb")

    moved = remove_alias(acting_user=admin, alias=alias)

    assert moved == len(vertrieb_users(tenant))
    vertrieb = active_level1(tenant)["vertrieb"]
    assert set(vertrieb.members.values_list("pk", flat=True)) == vertrieb_users(tenant)
    event = AuditEvent.objects.get(action=AuditAction.ALIAS_REMOVED)
    assert event.before == {"value": "Vertrieb", "attribute": "department", "pool": "Sales"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("   ", "Enter the value to merge into Sales."),
        (" SALES", "SALES is already the value of pool Sales."),
        ("x" * 301, "The value is 301 characters long; at most 300 are allowed."),
        ("\u202eSales", "The value contains the control character U+202E. Remove it and enter the value again."),
        ("Sa\x07les\x07", "The value contains the control character U+0007. Remove it and enter the value again."),
    ],
)
def test_alias_rejected(department_scheme, admin, value, message):
    sales = active_level1(department_scheme)["sales"]

    with pytest.raises(SchemeError) as caught:
        add_alias(acting_user=admin, pool=sales, value=value)

    assert caught.value.message == message
    assert not PoolAlias.objects.exists()


def test_alias_twice_rejected(department_scheme, admin):
    pools = active_level1(department_scheme)
    add_alias(acting_user=admin, pool=pools["sales"], value="Vertrieb")

    with pytest.raises(SchemeError) as same:
        add_alias(acting_user=admin, pool=pools["sales"], value="vertrieb")
    with pytest.raises(SchemeError) as other:
        add_alias(acting_user=admin, pool=pools["marketing"], value="Vertrieb")

    assert same.value.message == "Vertrieb is already merged into Sales."
    assert other.value.message == "Vertrieb is already merged into Sales. Remove that alias first to merge it into Marketing."


def test_alias_of_allotted_pool_rejected(department_scheme, admin):
    pools = active_level1(department_scheme)
    sku = Sku.objects.get(tenant=department_scheme, part_number="SPE_E3")
    set_allotment(acting_user=admin, pool=pools["vertrieb"], sku=sku, seats=2)

    with pytest.raises(SchemeError) as caught:
        add_alias(acting_user=admin, pool=pools["sales"], value="Vertrieb")

    assert caught.value.message == (
        f"Vertrieb has its own pool {pools['vertrieb']}, which holds allotments. Merge that pool into Sales instead, "
        "which moves its allotments too."
    )
    assert Pool.objects.get(pk=pools["vertrieb"].pk).is_active


def test_alias_on_unassigned_rejected(department_scheme, admin):
    with pytest.raises(SchemeError) as caught:
        add_alias(acting_user=admin, pool=unassigned(department_scheme), value="Sales")

    assert caught.value.message == (
        "Unassigned is not a pool of the current scheme, so values cannot be merged into it. Choose an active pool "
        "other than Unassigned."
    )


def test_alias_ui_add_and_remove(admin_client, department_scheme):
    sales = active_level1(department_scheme)["sales"]
    vertrieb = active_level1(department_scheme)["vertrieb"]
    url = reverse("pools:alias_add", kwargs={"tenant_pk": department_scheme.pk})

    response = admin_client.post(url, {"pool": sales.pk, "value": "Vertrieb"})

    moving = len(vertrieb_users(department_scheme))
    assert response.status_code == 200
    assert f"{vertrieb} is a pool of its own with {moving} users." in response.content.decode()
    assert not PoolAlias.objects.exists()
    assert Pool.objects.get(pk=vertrieb.pk).is_active

    response = admin_client.post(url, {"pool": sales.pk, "value": "Vertrieb", "confirmed": "1"}, follow=True)

    assert messages_of(response) == ["Users with the value Vertrieb now belong to Sales."]
    alias = PoolAlias.objects.get()
    assert "Remove alias Vertrieb" in response.content.decode()

    remove_url = reverse("pools:alias_remove", kwargs={"tenant_pk": department_scheme.pk, "alias_pk": alias.pk})
    response = admin_client.post(remove_url)

    moved = len(vertrieb_users(department_scheme))
    page = response.content.decode()
    assert response.status_code == 200
    assert f"{moved} users leave Sales, with their licenses." in page
    assert PoolAlias.objects.filter(pk=alias.pk).exists()

    response = admin_client.post(remove_url, {"confirmed": "1"}, follow=True)

    assert messages_of(response) == [f"Removed the alias Vertrieb of Sales. {moved} users changed pool."]
    assert not PoolAlias.objects.exists()


# Merging pools


def test_merge_moves_allotments(department_scheme, admin):
    tenant = department_scheme
    pools = active_level1(tenant)
    hr, human = pools["hr"], pools["human resources"]
    sku = Sku.objects.get(tenant=tenant, part_number="SPE_E3")
    set_allotment(acting_user=admin, pool=hr, sku=sku, seats=3)
    set_allotment(acting_user=admin, pool=human, sku=sku, seats=4)
    hr_members = set(hr.members.values_list("pk", flat=True))

    moved = merge_pools(acting_user=admin, source=hr, target=human)

    assert moved == len(hr_members)
    assert hr_members <= set(human.members.values_list("pk", flat=True))
    assert Allotment.objects.get(pool=human, sku=sku).seats == 7
    assert not Allotment.objects.filter(pool=hr).exists()
    assert not Pool.objects.get(pk=hr.pk).is_active
    alias = PoolAlias.objects.get(alias_key="hr")
    assert alias.pool == human
    deactivated = AuditEvent.objects.get(action=AuditAction.POOL_SETTINGS_CHANGED, pool=hr)
    assert deactivated.after["merged_into"] == "Human Resources"
    changes = AuditEvent.objects.filter(action=AuditAction.ALLOTMENT_CHANGED, actor=admin).order_by("pk")
    assert [(event.pool_id, event.after) for event in changes][-2:] == [(hr.pk, {"seats": None}), (human.pk, {"seats": 7})]

    sync_now(tenant)

    assert not Pool.objects.get(pk=hr.pk).is_active
    assert hr_members <= set(human.members.values_list("pk", flat=True))


def test_merge_repoints_aliases(department_scheme, admin):
    pools = active_level1(department_scheme)
    add_alias(acting_user=admin, pool=pools["sales"], value="Vertrieb")

    merge_pools(acting_user=admin, source=pools["sales"], target=pools["marketing"])

    assert dict(PoolAlias.objects.values_list("alias_key", "pool__key")) == {"vertrieb": "marketing", "sales": "marketing"}
    assert vertrieb_users(department_scheme) <= set(pools["marketing"].members.values_list("pk", flat=True))


def test_merge_level2_into_uncapped_rejected(synced_tenant, admin):
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute="country", level2_attribute="department")
    parent = active_level1(synced_tenant)["us"]
    children = {child.key: child for child in parent.children.filter(is_active=True)}
    sku = Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")
    set_allotment(acting_user=admin, pool=parent, sku=sku, seats=10)
    set_allotment(acting_user=admin, pool=children["hr"], sku=sku, seats=2)

    with pytest.raises(SchemeError) as caught:
        merge_pools(acting_user=admin, source=children["hr"], target=children["human resources"])

    assert caught.value.message == (
        "Cannot merge US / HR into US / Human Resources: US / HR has its own allotment of 2 seats of Microsoft 365 E3, "
        "but US / Human Resources draws on its parent's allotment without one. Give US / Human Resources an "
        "allotment of Microsoft 365 E3 first, or remove the allotment of US / HR."
    )
    assert Allotment.objects.get(pool=children["hr"], sku=sku).seats == 2
    assert Pool.objects.get(pk=children["hr"].pk).is_active
    assert not PoolAlias.objects.exists()


def test_merge_beyond_stock_rejected(department_scheme, admin):
    pools = active_level1(department_scheme)
    sku = Sku.objects.get(tenant=department_scheme, part_number="SPE_E3")
    set_allotment(acting_user=admin, pool=pools["hr"], sku=sku, seats=3)
    set_allotment(acting_user=admin, pool=pools["legal"], sku=sku, seats=sku.enabled_units - 3)
    # The tenant lost units after the allotments were made, so any allotment that grows is refused.
    Sku.objects.filter(pk=sku.pk).update(enabled_units=sku.enabled_units - 5)

    with pytest.raises(AllotmentError) as caught:
        merge_pools(acting_user=admin, source=pools["hr"], target=pools["human resources"])

    assert caught.value.message.startswith("Cannot merge HR into Human Resources: Cannot allot 3 seats of Microsoft 365 E3")
    assert Allotment.objects.get(pool=pools["hr"], sku=sku).seats == 3
    assert Pool.objects.get(pk=pools["hr"].pk).is_active
    assert not AuditEvent.objects.filter(action=AuditAction.POOL_SETTINGS_CHANGED).exists()


@pytest.mark.parametrize("case", ["same", "levels"])
def test_merge_rejected(synced_tenant, admin, case):
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute="country", level2_attribute="department")
    us = active_level1(synced_tenant)["us"]
    child = us.children.filter(is_active=True).order_by("key").first()
    source, target, message = {
        "same": (us, us, "Choose two different pools to merge."),
        "levels": (
            child, us,
            f"{child} and US are not on the same level of the same parent; only such pools can be merged.",
        ),
    }[case]

    with pytest.raises(SchemeError) as caught:
        merge_pools(acting_user=admin, source=source, target=target)

    assert caught.value.message == message


def test_merge_level1_moves_children(synced_tenant, admin):
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute="department", level2_attribute="country")
    pools = active_level1(synced_tenant)
    hr, human = pools["hr"], pools["human resources"]
    sku = Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")
    hr_child = hr.children.filter(is_active=True).order_by("key").first()
    set_allotment(acting_user=admin, pool=hr, sku=sku, seats=4)
    set_allotment(acting_user=admin, pool=human, sku=sku, seats=4)
    set_allotment(acting_user=admin, pool=hr_child, sku=sku, seats=2)
    sibling = human.children.filter(key=hr_child.key).first()
    sibling_seats = 0
    if sibling is not None:
        sibling_seats = 1
        set_allotment(acting_user=admin, pool=sibling, sku=sku, seats=sibling_seats)

    merge_pools(acting_user=admin, source=hr, target=human)

    sibling = Pool.objects.get(parent=human, key=hr_child.key)
    assert sibling.is_active
    assert Allotment.objects.get(pool=sibling, sku=sku).seats == 2 + sibling_seats
    assert Allotment.objects.get(pool=human, sku=sku).seats == 8
    assert not Allotment.objects.filter(pool__in=[hr, hr_child]).exists()
    assert not Pool.objects.filter(parent=hr, is_active=True).exists()


def test_merge_moves_grants(department_scheme, admin, make_portal_user):
    pools = active_level1(department_scheme)
    hr, human = pools["hr"], pools["human resources"]
    manager = make_portal_user("hr-manager", role=Role.POOL_MANAGER, pool=hr)
    finance = make_portal_user("hr-finance", role=Role.FINANCE, pool=hr)
    both = make_portal_user("both-manager", role=Role.POOL_MANAGER, pool=hr)
    grant_role(acting_user=admin, role=Role.POOL_MANAGER, tenant=department_scheme, user=both, pool=human)
    group = Group.objects.create(name="HR operators")
    grant_role(acting_user=admin, role=Role.LICENSE_OPERATOR, tenant=department_scheme, group=group, pool=hr)

    merge_pools(acting_user=admin, source=hr, target=human)

    assert not Grant.objects.filter(pool=hr).exists()
    assert set(Grant.objects.filter(pool=human).values_list("user__username", "group__name", "role")) == {
        ("hr-manager", None, Role.POOL_MANAGER),
        ("hr-finance", None, Role.FINANCE),
        ("both-manager", None, Role.POOL_MANAGER),
        (None, "HR operators", Role.LICENSE_OPERATOR),
    }
    assert Grant.objects.filter(user=both).count() == 1
    assert manager.has_perm("pools.manage_pool", human)
    assert finance.has_perm("pools.view_pool_chargeback", human)
    assert get_groups_with_perms(human, attach_perms=True) == {group: ["operate_pool"]}
    assert not get_users_with_perms(hr, with_group_users=False)
    assert not get_groups_with_perms(hr)
    assert scoping.get_pool_or_404(manager, Action.ASSIGN, pk=human.pk) == human

    events = AuditEvent.objects.filter(action=AuditAction.GRANT_MOVED).order_by("pk")
    assert [(event.target, event.pool_id, event.after["alreadyHeld"]) for event in events] == [
        ("hr-manager", human.pk, False),
        ("hr-finance", human.pk, False),
        ("both-manager", human.pk, True),
        ("HR operators", human.pk, False),
    ]
    assert events[0].before == {"role": Role.POOL_MANAGER, "scope": "HR", "poolId": hr.pk}
    assert events[0].message == "Moved from HR because it was merged into Human Resources."
    assert events[2].message == (
        "Removed from HR, which was merged into Human Resources, where this role was held already."
    )
    assert Pool.objects.get(pk=hr.pk).merged_into_id == human.pk


def test_merge_moves_object_permissions(department_scheme, admin, make_portal_user):
    pools = active_level1(department_scheme)
    hr, human = pools["hr"], pools["human resources"]
    direct = make_portal_user("direct")
    assign_perm("pools.manage_pool", direct, hr)

    merge_pools(acting_user=admin, source=hr, target=human)

    direct = type(direct).objects.get(pk=direct.pk)
    assert direct.has_perm("pools.manage_pool", human)
    assert not direct.has_perm("pools.manage_pool", hr)
    event = AuditEvent.objects.get(action=AuditAction.GRANT_MOVED)
    assert event.target == "direct"
    assert event.after == {"permission": "pools.manage_pool", "scope": "Human Resources", "poolId": human.pk}


def test_merge_level1_moves_child_grants(synced_tenant, admin, make_portal_user):
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute="department", level2_attribute="country")
    pools = active_level1(synced_tenant)
    hr, human = pools["hr"], pools["human resources"]
    hr_child = hr.children.filter(is_active=True).order_by("key").first()
    manager = make_portal_user("child-manager", role=Role.POOL_MANAGER, pool=hr_child)

    merge_pools(acting_user=admin, source=hr, target=human)

    sibling = Pool.objects.get(parent=human, key=hr_child.key)
    assert Grant.objects.get(user=manager).pool == sibling
    assert scoping.get_pool_or_404(manager, Action.ASSIGN, pk=sibling.pk) == sibling
    assert Pool.objects.get(pk=hr_child.pk).merged_into_id == sibling.pk


def test_merge_ui(admin_client, department_scheme):
    pools = active_level1(department_scheme)
    moving = pools["hr"].members.count()

    url = reverse("pools:pool_merge", kwargs={"tenant_pk": department_scheme.pk})
    data = {"source": pools["hr"].pk, "target": pools["human resources"].pk}

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert f"{moving} users of HR move to Human Resources with their licenses." in response.content.decode()
    assert Pool.objects.get(pk=pools["hr"].pk).is_active

    response = admin_client.post(url, {**data, "confirmed": "1"}, follow=True)

    assert messages_of(response) == [f"Merged HR into Human Resources. {moving} users changed pool."]


def test_merge_impact_lists_consequences(department_scheme, admin, make_portal_user):
    tenant = department_scheme
    pools = active_level1(tenant)
    hr, human = pools["hr"], pools["human resources"]
    e3 = Sku.objects.get(tenant=tenant, part_number="SPE_E3")
    ems = Sku.objects.get(tenant=tenant, part_number="EMS")
    set_allotment(acting_user=admin, pool=hr, sku=e3, seats=3)
    make_portal_user("hr-manager", role=Role.POOL_MANAGER, pool=hr)
    SeatRequest.objects.create(tenant=tenant, pool=human, sku=e3, quantity=3, reason="Interns")
    withdrawn = SeatRequest.objects.create(tenant=tenant, pool=hr, sku=e3, quantity=2, reason="New hires")
    moving = SeatRequest.objects.create(tenant=tenant, pool=hr, sku=ems, quantity=1, reason="Mobile devices")
    members = hr.members.filter(is_deleted=False)

    impact = scheme_impacts.merge_impact(hr, human)

    assert impact.users == members.count()
    assert impact.licenses == UserLicense.objects.filter(user__in=members).values("user", "sku").distinct().count()
    assert [(allotment.pool, allotment.sku, allotment.seats) for allotment in impact.allotments] == [(hr, e3, 3)]
    assert [(grant.user.username, grant.role) for grant in impact.grants] == [("hr-manager", Role.POOL_MANAGER)]
    assert [(fate.request, fate.withdrawn) for fate in impact.requests] == [(withdrawn, True), (moving, False)]
    assert Allotment.objects.get(pool=hr, sku=e3).seats == 3
    assert Pool.objects.get(pk=hr.pk).is_active


def test_merge_confirm_page_lists_consequences(admin_client, department_scheme, admin, make_portal_user):
    pools = active_level1(department_scheme)
    hr, human = pools["hr"], pools["human resources"]
    e3 = Sku.objects.get(tenant=department_scheme, part_number="SPE_E3")
    set_allotment(acting_user=admin, pool=hr, sku=e3, seats=3)
    make_portal_user("hr-manager", role=Role.POOL_MANAGER, pool=hr)
    events_before = AuditEvent.objects.count()

    response = admin_client.post(
        reverse("pools:pool_merge", kwargs={"tenant_pk": department_scheme.pk}), {"source": hr.pk, "target": human.pk}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert f"<td>HR</td><td>{e3.name}</td><td class=\"number\">3</td>" in page
    assert "hr-manager: Pool manager · HR" in page
    assert '<input type="hidden" name="confirmed" value="1">' in page
    assert AuditEvent.objects.count() == events_before


def test_alias_removal_impact_lists_moves(department_scheme, admin):
    tenant = department_scheme
    sales = active_level1(tenant)["sales"]
    alias = add_alias(acting_user=admin, pool=sales, value="Vertrieb")
    moving = vertrieb_users(tenant)

    impact = scheme_impacts.alias_removal_impact(alias)

    assert impact.users == len(moving)
    assert {move.user.pk for move in impact.listed_moves} == moving
    assert impact.licenses == UserLicense.objects.filter(user__in=moving).values("user", "sku").distinct().count()
    assert PoolAlias.objects.filter(pk=alias.pk).exists()
    assert set(sales.members.values_list("pk", flat=True)) >= moving

    remove_alias(acting_user=admin, alias=alias)

    for move in impact.listed_moves:
        assert str(DirectoryUser.objects.get(pk=move.user.pk).pool) == move.pool_name


# Renaming


def test_rename_stable_across_syncs(emulator, department_scheme, admin, emulator_snapshot):
    tenant = department_scheme
    marketing = active_level1(tenant)["marketing"]
    rename_pool(acting_user=admin, pool=marketing, name="Brand & Communications")
    members = list(marketing.members.order_by("user_principal_name")[:3])
    # Make "MARKETING" the most common spelling of the value in the directory.
    total = marketing.members.count()
    for member in marketing.members.order_by("user_principal_name")[: total // 2 + 1]:
        control(emulator, "PATCH", f"tenants/{tenant.tenant_id}/users/{member.user_id}", json={"department": "MARKETING"})

    sync_now(tenant)

    marketing.refresh_from_db()
    assert marketing.is_active
    assert marketing.display_name == "MARKETING"
    assert marketing.name == "Brand & Communications"
    assert all(Pool.objects.get(members__pk=member.pk).pk == marketing.pk for member in members)

    rename_pool(acting_user=admin, pool=marketing, name="")
    marketing.refresh_from_db()
    assert marketing.name == "MARKETING"


def test_rename_cleans_name(department_scheme, admin):
    marketing = active_level1(department_scheme)["marketing"]

    rename_pool(acting_user=admin, pool=marketing, name="\u200b  Brand \u00ad&\t Communications\ufeff\n")

    marketing.refresh_from_db()
    assert marketing.name_override == "Brand & Communications"
    event = AuditEvent.objects.get(action=AuditAction.POOL_RENAMED)
    assert event.before == {"name": "Marketing"}
    assert event.after == {"name": "Brand & Communications"}


@pytest.mark.parametrize("name", ["Sales", "SALES", " sales ", "Sa\u200bles"])
def test_rename_duplicate_rejected(department_scheme, admin, name):
    pools = active_level1(department_scheme)
    marketing, sales = pools["marketing"], pools["sales"]

    with pytest.raises(PoolNameError) as caught:
        rename_pool(acting_user=admin, pool=marketing, name=name)

    shown = name.strip().replace("\u200b", "")
    assert caught.value.message == (
        f"Pool Sales (ID {sales.pk}) is already named “{shown}”. Two level-1 pools of a tenant cannot share a name, "
        "whatever the letter case, because pages and chargeback reports could not tell them apart. Choose another "
        "name."
    )
    marketing.refresh_from_db()
    assert marketing.name_override == ""
    refused = AuditEvent.objects.get(action=AuditAction.POOL_RENAMED)
    assert (refused.outcome, refused.after, refused.message) == (Outcome.REJECTED, {"name": name}, caught.value.message)


def test_rename_level2_duplicate(synced_tenant, admin):
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute="country", level2_attribute="department")
    level1 = active_level1(synced_tenant)
    us_children = {child.key: child for child in level1["us"].children.filter(is_active=True)}
    other_parent = next(pool for key, pool in level1.items() if key != "us" and pool.children.filter(is_active=True).exists())
    elsewhere = other_parent.children.filter(is_active=True).order_by("key").first()

    rename_pool(acting_user=admin, pool=us_children["hr"], name="People")
    rename_pool(acting_user=admin, pool=elsewhere, name="People")
    with pytest.raises(PoolNameError) as caught:
        rename_pool(acting_user=admin, pool=us_children["human resources"], name="people")

    assert caught.value.message == (
        f"Pool US / People (ID {us_children['hr'].pk}) is already named “people”. Two level-2 pools of US cannot "
        "share a name, whatever the letter case, because pages and chargeback reports could not tell them apart. "
        "Choose another name."
    )
    assert Pool.objects.get(pk=elsewhere.pk).name == "People"


@pytest.mark.parametrize(
    "name, message",
    [
        ("   ", "The name contains no visible character, only spaces or invisible characters (U+0020 U+0020 U+0020)."),
        ("\u200b\u200b", "The name contains no visible character, only spaces or invisible characters (U+200B U+200B)."),
        ("\u3164", "The name contains no visible character, only spaces or invisible characters (U+3164)."),
        ("\u200d\u2060 \u00a0", (
            "The name contains no visible character, only spaces or invisible characters (U+200D U+2060 U+0020 U+00A0)."
        )),
    ],
)
def test_rename_invisible_rejected(department_scheme, admin, name, message):
    marketing = active_level1(department_scheme)["marketing"]

    with pytest.raises(PoolNameError) as caught:
        rename_pool(acting_user=admin, pool=marketing, name=name)

    assert caught.value.message == (
        f"{message} Enter a name people can read, or leave the field empty to show the attribute value's spelling again."
    )
    assert Pool.objects.get(pk=marketing.pk).name_override == ""


@pytest.mark.parametrize(
    "name, message",
    [
        ("Sales\x07", "The name contains the control character U+0007 at position 6. Remove it and enter the name again."),
        ("Sales\x00EMEA", "The name contains the control character U+0000 at position 6. Remove it and enter the name again."),
        ("Sales\u202eAEME", (
            "The name contains the bidirectional control character U+202E at position 6, which can make the name "
            "display in a misleading order. Remove it and enter the name again."
        )),
        ("x" * 301, "The name has 301 characters, but at most 300 are allowed. Shorten it."),
    ],
)
def test_rename_malformed_rejected(department_scheme, admin, name, message):
    marketing = active_level1(department_scheme)["marketing"]

    with pytest.raises(PoolNameError) as caught:
        rename_pool(acting_user=admin, pool=marketing, name=name)

    assert caught.value.message == message
    assert Pool.objects.get(pk=marketing.pk).name_override == ""
    refused = AuditEvent.objects.get(action=AuditAction.POOL_RENAMED)
    assert refused.after == {"name": name.replace("\x00", "U+0000")}


def test_rename_clear_collision_rejected(department_scheme, admin):
    pools = active_level1(department_scheme)
    sales, marketing = pools["sales"], pools["marketing"]
    rename_pool(acting_user=admin, pool=sales, name="Revenue")
    rename_pool(acting_user=admin, pool=marketing, name="Sales")

    with pytest.raises(PoolNameError) as caught:
        rename_pool(acting_user=admin, pool=sales, name="")

    assert caught.value.message == (
        f"Pool Sales (ID {marketing.pk}) is named “Sales”, so this pool cannot show its attribute value's spelling "
        "“Sales” again. Rename that pool first, or enter another name for this one."
    )
    assert Pool.objects.get(pk=sales.pk).name == "Revenue"


def test_rename_keeps_inactive_names(department_scheme, admin):
    pools = active_level1(department_scheme)
    hr, human, legal = pools["hr"], pools["human resources"], pools["legal"]
    rename_pool(acting_user=admin, pool=hr, name="People Team")
    merge_pools(acting_user=admin, source=hr, target=human)

    with pytest.raises(PoolNameError) as caught:
        rename_pool(acting_user=admin, pool=legal, name="people team")

    assert caught.value.message == (
        f"The inactive pool People Team (ID {hr.pk}) keeps the name “People Team” and shows it again when it "
        "becomes active, so this pool cannot take it. Choose another name."
    )


def test_pool_names_unique_in_database(department_scheme):
    pools = active_level1(department_scheme)
    Pool.objects.filter(pk=pools["sales"].pk).update(name_override="Team")

    with pytest.raises(IntegrityError), transaction.atomic():
        Pool.objects.filter(pk=pools["marketing"].pk).update(name_override="TEAM")
    with pytest.raises(IntegrityError), transaction.atomic():
        Pool.objects.filter(pk=pools["marketing"].pk).update(name_override=" Padded")


def test_rename_ui_rejects_duplicate(admin_client, department_scheme):
    pools = active_level1(department_scheme)
    marketing = pools["marketing"]

    response = admin_client.post(
        reverse("pools:pool_rename", kwargs={"pool_pk": marketing.pk}), {"name": "sales"}, follow=True
    )

    assert response.status_code == 200
    assert messages_of(response) == [
        f"Pool Sales (ID {pools['sales'].pk}) is already named “sales”. Two level-1 pools of a tenant cannot share a "
        "name, whatever the letter case, because pages and chargeback reports could not tell them apart. Choose "
        "another name."
    ]
    assert Pool.objects.get(pk=marketing.pk).name == "Marketing"


def test_rename_ui_spaces_rejected(admin_client, department_scheme):
    marketing = active_level1(department_scheme)["marketing"]
    admin_client.post(reverse("pools:pool_rename", kwargs={"pool_pk": marketing.pk}), {"name": "Brand"})

    response = admin_client.post(
        reverse("pools:pool_rename", kwargs={"pool_pk": marketing.pk}), {"name": "  "}, follow=True
    )

    assert messages_of(response)[-1].startswith("The name contains no visible character")
    assert Pool.objects.get(pk=marketing.pk).name == "Brand"


# Level-2 allotments within the parent's, from the UI


def test_level2_allotment_limit_ui(admin_client, synced_tenant, admin):
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute="country", level2_attribute="department")
    parent = active_level1(synced_tenant)["us"]
    first, second = parent.children.filter(is_active=True).order_by("key")[:2]
    sku = Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")
    set_allotment(acting_user=admin, pool=parent, sku=sku, seats=5)
    set_allotment(acting_user=admin, pool=first, sku=sku, seats=3)

    response = admin_client.post(
        reverse("pools:pool_allot", kwargs={"pool_pk": second.pk}), {"sku": sku.pk, "seats": 3}, follow=True
    )

    assert messages_of(response) == [
        f"Cannot allot 3 seats of Microsoft 365 E3 to {second}: its parent US has 5 and the other level-2 pools "
        "hold 3. Raise the parent's allotment first."
    ]
    assert not Allotment.objects.filter(pool=second).exists()

    response = admin_client.post(
        reverse("pools:pool_allot", kwargs={"pool_pk": second.pk}), {"sku": sku.pk, "seats": 2}, follow=True
    )

    assert messages_of(response) == [f"Allotted 2 seats of Microsoft 365 E3 to {second}."]


# Scheme preview


def writes_during(function):
    """Run ``function`` and return every INSERT, UPDATE or DELETE statement it sent."""
    statements = []

    def record(execute, sql, params, many, context):
        if sql.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        result = function()
    return result, statements


def test_preview_writes_nothing(department_scheme, admin):
    pools_before = list(Pool.objects.values_list("pk", "is_active", "display_name").order_by("pk"))
    users_before = list(DirectoryUser.objects.values_list("pk", "pool_id").order_by("pk"))

    preview, statements = writes_during(
        lambda: preview_scheme(acting_user=admin, tenant=department_scheme, level1_attribute="country", level2_attribute="city")
    )

    assert statements == []
    assert preview.users_moved > 0
    assert list(Pool.objects.values_list("pk", "is_active", "display_name").order_by("pk")) == pools_before
    assert list(DirectoryUser.objects.values_list("pk", "pool_id").order_by("pk")) == users_before
    assert PoolScheme.objects.get(tenant=department_scheme).level1_attribute == "department"


def held_skus(tenant) -> dict[int, set[int]]:
    result: dict[int, set[int]] = {}
    for user_pk, sku_pk in (
        UserLicense.objects.filter(tenant=tenant, user__is_deleted=False).exclude(state="Error").values_list("user_id", "sku_id")
    ):
        result.setdefault(user_pk, set()).add(sku_pk)
    return result


def test_preview_matches_applied_result(department_scheme, admin):
    tenant = department_scheme
    sku = Sku.objects.get(tenant=tenant, part_number="SPE_E3")
    legal = active_level1(tenant)["legal"]
    set_allotment(acting_user=admin, pool=legal, sku=sku, seats=4)
    before = dict(DirectoryUser.objects.filter(tenant=tenant, is_deleted=False).values_list("pk", "pool_id"))

    preview = preview_scheme(acting_user=admin, tenant=tenant, level1_attribute="country")

    disappearing = {pool.name: pool for pool in preview.disappearing}
    assert "Legal" in disappearing
    assert [(line.sku.part_number, line.allotment) for line in disappearing["Legal"].stranded_allotments] == [("SPE_E3", 4)]
    assert all(pool.members_after == 0 for pool in preview.disappearing)

    scheme = apply_scheme(acting_user=admin, tenant=tenant, level1_attribute="country", token=preview.token)

    assert scheme.level1_attribute == "country"
    after = dict(DirectoryUser.objects.filter(tenant=tenant, is_deleted=False).values_list("pk", "pool_id"))
    moved = [pk for pk in after if after[pk] != before[pk]]
    assert preview.users_moved == len(moved)
    held = held_skus(tenant)
    assert preview.licenses_moved == sum(len(held.get(pk, ())) for pk in moved)
    assert sum(move.users for move in preview.moves if move.source == "Legal") == len(
        [pk for pk in moved if before[pk] == legal.pk]
    )
    resulting = {pool.name: pool for pool in preview.pools if not pool.disappears}
    for pool in Pool.objects.filter(tenant=tenant, is_active=True):
        previewed = resulting.pop(str(pool))
        assert previewed.members_after == pool.members_queryset().count(), pool
        actual = {line.sku.pk: line.consumption for line in stock.pool_lines(pool) if line.consumption}
        assert {line.sku.pk: line.after for line in previewed.lines if line.after} == actual, pool
    assert resulting == {}
    event = AuditEvent.objects.filter(action=AuditAction.SCHEME_CHANGED, actor=admin).latest("pk")
    assert event.after == {"level1": "country", "level2": "", "users_moved": preview.users_moved}


def test_preview_spare_per_sku(department_scheme, admin):
    tenant = department_scheme
    sku = Sku.objects.get(tenant=tenant, part_number="SPE_E3")
    sales = active_level1(tenant)["sales"]
    set_allotment(acting_user=admin, pool=sales, sku=sku, seats=2)
    holders_now = stock.holders(tenant, sku, sales.subtree_ids())

    preview = preview_scheme(acting_user=admin, tenant=tenant, level1_attribute="department", level2_attribute="country")

    line = next(line for pool in preview.pools if pool.name == "Sales" for line in pool.lines if line.sku == sku)
    assert (line.allotment, line.before, line.after) == (2, holders_now, holders_now)
    assert (line.spare_before, line.spare_after) == (2 - holders_now, 2 - holders_now)
    assert line.over_allotment == (holders_now > 2)
    children = [pool for pool in preview.pools if pool.name.startswith("Sales / ")]
    assert children and all(pool.is_new and pool.level == 2 for pool in children)
    assert sum(pool.members_after for pool in children) <= next(p for p in preview.pools if p.name == "Sales").members_after


def test_stale_preview_not_applied(emulator, department_scheme, admin):
    tenant = department_scheme
    preview = preview_scheme(acting_user=admin, tenant=tenant, level1_attribute="country")
    user = DirectoryUser.objects.filter(tenant=tenant, is_deleted=False).exclude(country="").order_by("pk").first()
    control(emulator, "PATCH", f"tenants/{tenant.tenant_id}/users/{user.user_id}", json={"country": "Atlantis"})
    sync_now(tenant)

    with pytest.raises(StalePreview) as caught:
        apply_scheme(acting_user=admin, tenant=tenant, level1_attribute="country", token=preview.token)

    assert caught.value.message == (
        "The directory or the pools changed since your preview, so nothing was applied. Review the new preview below "
        "and confirm again."
    )
    assert caught.value.preview.token != preview.token
    assert "Atlantis" in {pool.name for pool in caught.value.preview.pools}
    assert PoolScheme.objects.get(tenant=tenant).level1_attribute == "department"


def test_preview_token_stable(department_scheme, admin):
    first = preview_scheme(acting_user=admin, tenant=department_scheme, level1_attribute="country")
    second = preview_scheme(acting_user=admin, tenant=department_scheme, level1_attribute="country")

    assert first.token == second.token
    assert first.token != preview_scheme(acting_user=admin, tenant=department_scheme, level1_attribute="city").token


def test_preview_rejects_bad_attribute(department_scheme, admin):
    with pytest.raises(SchemeError) as caught:
        preview_scheme(acting_user=admin, tenant=department_scheme, level1_attribute="manager")

    assert caught.value.message == "manager is not a pool attribute. Choose one of the listed attributes."


def test_preview_ui_flow(admin_client, department_scheme):
    tenant = department_scheme
    url = reverse("pools:scheme_preview", kwargs={"tenant_pk": tenant.pk})

    response = admin_client.get(url, {"level1_attribute": "country", "level2_attribute": "department"})

    assert response.status_code == 200
    preview = response.context["preview"]
    content = response.content.decode()
    assert "Preview of the scheme Country or region / Department" in content
    assert f'value="{preview.token}"' in content
    assert PoolScheme.objects.get(tenant=tenant).level1_attribute == "department"

    response = admin_client.post(
        reverse("pools:scheme_apply", kwargs={"tenant_pk": tenant.pk}),
        {"level1_attribute": "country", "level2_attribute": "department", "token": preview.token}, follow=True,
    )

    active = Pool.objects.filter(tenant=tenant, is_active=True).count()
    assert messages_of(response) == [
        f"Saved the pool scheme Country or region / Department. The tenant now has {active} pools."
    ]
    assert PoolScheme.objects.get(tenant=tenant).level2_attribute == "department"


def test_preview_ui_stale_token(admin_client, department_scheme):
    tenant = department_scheme

    response = admin_client.post(
        reverse("pools:scheme_apply", kwargs={"tenant_pk": tenant.pk}),
        {"level1_attribute": "country", "level2_attribute": "", "token": "0" * 64},
    )

    assert response.status_code == 409
    assert messages_of(response) == [
        "The directory or the pools changed since your preview, so nothing was applied. Review the new preview below "
        "and confirm again."
    ]
    assert response.context["preview"].token != "0" * 64
    assert PoolScheme.objects.get(tenant=tenant).level1_attribute == "department"


def test_preview_ui_same_levels(admin_client, department_scheme):
    url = reverse("pools:scheme_preview", kwargs={"tenant_pk": department_scheme.pk})

    response = admin_client.get(url, {"level1_attribute": "country", "level2_attribute": "country"})

    assert response.status_code == 400
    assert response.context["scheme_form"].errors == {
        "level2_attribute": ["Level 2 must use a different attribute than level 1, or none."]
    }


def test_scheme_pages_hidden_from_managers(client, department_scheme, make_portal_user):
    sales = active_level1(department_scheme)["sales"]
    manager = make_portal_user("manager", role="pool_manager", pool=sales)
    client.force_login(manager)
    tenant_pk = department_scheme.pk

    assert client.get(reverse("pools:scheme", kwargs={"tenant_pk": tenant_pk})).status_code == 404
    assert client.get(
        reverse("pools:scheme_preview", kwargs={"tenant_pk": tenant_pk}), {"level1_attribute": "country"}
    ).status_code == 404
    assert client.post(
        reverse("pools:alias_add", kwargs={"tenant_pk": tenant_pk}), {"pool": sales.pk, "value": "Vertrieb"}
    ).status_code == 404
    assert not PoolAlias.objects.exists()
    with pytest.raises(Exception) as caught:
        add_alias(acting_user=manager, pool=sales, value="Vertrieb")
    assert type(caught.value).__name__ == "Http404"


def test_tenant_page_links_scheme(admin_client, department_scheme):
    response = admin_client.get(reverse("pools:tenant", kwargs={"tenant_pk": department_scheme.pk}))

    assert reverse("pools:scheme", kwargs={"tenant_pk": department_scheme.pk}) in response.content.decode()


def test_invisible_characters_ignored(synced_tenant, admin):
    users = list(DirectoryUser.objects.filter(tenant=synced_tenant, is_deleted=False).order_by("pk")[:3])
    DirectoryUser.objects.filter(pk=users[0].pk).update(department="Sales")
    DirectoryUser.objects.filter(pk=users[1].pk).update(department="Sa\u200bles\u200b")
    DirectoryUser.objects.filter(pk=users[2].pk).update(department="\u200b\u2060\u3164")

    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.DEPARTMENT)

    pools = {user.pk: user.pool for user in DirectoryUser.objects.filter(pk__in=[user.pk for user in users])}
    assert pools[users[0].pk] == pools[users[1].pk]
    assert pools[users[0].pk].key == "sales"
    assert pools[users[2].pk].is_unassigned
    assert not Pool.objects.filter(tenant=synced_tenant, key="").exclude(is_unassigned=True).exists()


def test_merge_moves_pending_requests(department_scheme, admin):
    tenant = department_scheme
    pools = active_level1(tenant)
    hr, human = pools["hr"], pools["human resources"]
    sku = Sku.objects.get(tenant=tenant, part_number="SPE_E3")
    pending = SeatRequest.objects.create(tenant=tenant, pool=hr, sku=sku, quantity=2, reason="New hires")
    declined = SeatRequest.objects.create(
        tenant=tenant, pool=hr, sku=sku, quantity=9, reason="Too many", status=RequestStatus.DECLINED
    )
    alert = Alert.objects.create(tenant=tenant, pool=hr, kind=AlertKind.POOL_SPARE_LOW, dedup_key="hr-spare", message="Low")

    merge_pools(acting_user=admin, source=hr, target=human)

    assert SeatRequest.objects.get(pk=pending.pk).pool == human
    assert SeatRequest.objects.get(pk=declined.pk).pool == hr
    moved = AuditEvent.objects.get(action=AuditAction.REQUEST_MOVED)
    assert (moved.pool, moved.before["pool_id"], moved.after["pool_id"]) == (human, hr.pk, human.pk)
    assert Alert.objects.get(pk=alert.pk).resolved_at is not None


def test_merge_withdraws_duplicate_request(department_scheme, admin):
    tenant = department_scheme
    pools = active_level1(tenant)
    hr, human = pools["hr"], pools["human resources"]
    sku = Sku.objects.get(tenant=tenant, part_number="SPE_E3")
    kept = SeatRequest.objects.create(tenant=tenant, pool=human, sku=sku, quantity=3, reason="Interns")
    merged = SeatRequest.objects.create(tenant=tenant, pool=hr, sku=sku, quantity=2, reason="New hires")

    merge_pools(acting_user=admin, source=hr, target=human)

    merged.refresh_from_db()
    assert (merged.pool, merged.status) == (hr, RequestStatus.WITHDRAWN)
    assert merged.decision_reason == (
        f"Withdrawn when {hr} was merged into {human}, whose own request #{kept.pk} for {sku} is still pending."
    )
    assert SeatRequest.objects.get(pk=kept.pk).status == RequestStatus.PENDING
    assert AuditEvent.objects.filter(action=AuditAction.REQUEST_WITHDRAWN, target=str(merged)).exists()
