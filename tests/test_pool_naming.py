"""Names of pools created or renamed from attribute values: never a name another pool of the level has."""
import pytest
import requests

from graphsync.models import DirectoryUser
from pools.choices import AuditAction, PoolAttribute
from pools.membership import apply_plan, plan_membership, recompute_membership
from pools.models import AuditEvent, Pool
from pools.pool_names import MAX_NAME_LENGTH, distinct_name
from pools.schemes import add_alias, merge_pools, preview_scheme, remove_alias
from pools.services import rename_pool, set_scheme

from conftest import sync_now

CONTROL_HEADERS = {"X-Emulator-Control": "test-control-token"}


@pytest.fixture
def admin(make_portal_user, synced_tenant):
    return make_portal_user("admin", role="tenant_admin", tenant=synced_tenant)


@pytest.fixture
def department_scheme(synced_tenant, admin):
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.DEPARTMENT)
    return synced_tenant


def level1(tenant) -> dict[str, Pool]:
    return {pool.key: pool for pool in Pool.objects.filter(tenant=tenant, parent=None, is_active=True, is_unassigned=False)}


def naming_events(pool: Pool) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=AuditAction.POOL_RENAMED, pool=pool, actor=None).order_by("pk"))


def move_user(user: DirectoryUser, department: str) -> None:
    DirectoryUser.objects.filter(pk=user.pk).update(department=department)


def taken_message(name: str, value: str, holder: Pool) -> str:
    return (
        f"This pool is named “{name}” instead of its attribute value “{value}”, because pool {holder} (ID {holder.pk}) "
        "already has that name. Rename one of the two pools so that people can tell them apart."
    )


@pytest.mark.parametrize(
    "taken, expected",
    [
        (set(), "Sales"),
        ({"marketing"}, "Sales"),
        ({"sales"}, "Sales (2)"),
        ({"sales", "sales (2)"}, "Sales (3)"),
        ({"sales", "sales (3)"}, "Sales (2)"),
    ],
)
def test_distinct_name_numbers(taken, expected):
    assert distinct_name("Sales", taken) == expected


def test_distinct_name_shortens_long_name():
    name = "x" * (MAX_NAME_LENGTH - 2) + " y"

    result = distinct_name(name, {name})

    assert len(result) == MAX_NAME_LENGTH
    assert result == "x" * (MAX_NAME_LENGTH - 4) + " (2)"


def test_sync_avoids_custom_name(require_postgresql, emulator, department_scheme, admin):
    tenant = department_scheme
    marketing = level1(tenant)["marketing"]
    rename_pool(acting_user=admin, pool=marketing, name="Revenue")
    mover = DirectoryUser.objects.filter(tenant=tenant, is_deleted=False).exclude(pool=marketing).order_by("pk").first()
    response = requests.patch(
        f"{emulator.base_url}/_emulator/tenants/{tenant.tenant_id}/users/{mover.user_id}", json={"department": "Revenue"},
        headers=CONTROL_HEADERS, verify=emulator.ca_path, timeout=10,
    )
    assert response.status_code < 300, response.text

    sync_now(tenant)

    revenue = level1(tenant)["revenue"]
    assert revenue.name == "Revenue (2)"
    assert Pool.objects.get(pk=marketing.pk).name == "Revenue"
    assert list(revenue.members.values_list("pk", flat=True)) == [mover.pk]
    [event] = naming_events(revenue)
    assert event.actor_name == "system"
    assert event.before is None
    assert event.after == {
        "name": "Revenue (2)", "value": "Revenue", "name_taken_by": "Revenue", "name_taken_by_id": marketing.pk,
    }
    assert event.message == taken_message("Revenue (2)", "Revenue", marketing)


def test_plan_path_avoids_custom_name(department_scheme, admin):
    tenant = department_scheme
    marketing = level1(tenant)["marketing"]
    rename_pool(acting_user=admin, pool=marketing, name="Revenue")
    mover = DirectoryUser.objects.filter(tenant=tenant, is_deleted=False).exclude(pool=marketing).order_by("pk").first()
    move_user(mover, "REVENUE")

    apply_plan(plan_membership(tenant))

    revenue = level1(tenant)["revenue"]
    assert revenue.name == "REVENUE (2)"
    [event] = naming_events(revenue)
    assert event.message == taken_message("REVENUE (2)", "REVENUE", marketing)


def test_taken_name_stable_until_freed(require_postgresql, department_scheme, admin):
    tenant = department_scheme
    marketing = level1(tenant)["marketing"]
    rename_pool(acting_user=admin, pool=marketing, name="Revenue")
    mover = DirectoryUser.objects.filter(tenant=tenant, is_deleted=False).exclude(pool=marketing).order_by("pk").first()
    move_user(mover, "Revenue")
    recompute_membership(tenant)
    revenue = level1(tenant)["revenue"]

    recompute_membership(tenant)

    assert Pool.objects.get(pk=revenue.pk).name == "Revenue (2)"
    assert len(naming_events(revenue)) == 1

    rename_pool(acting_user=admin, pool=marketing, name="")
    recompute_membership(tenant)

    assert Pool.objects.get(pk=revenue.pk).name == "Revenue"
    assert len(naming_events(revenue)) == 1


def test_value_named_like_unassigned(require_postgresql, department_scheme):
    tenant = department_scheme
    mover = DirectoryUser.objects.filter(tenant=tenant, is_deleted=False).order_by("pk").first()
    move_user(mover, "unassigned")

    recompute_membership(tenant)

    pool = level1(tenant)["unassigned"]
    assert pool.name == "unassigned (2)"
    assert Pool.objects.get(tenant=tenant, is_unassigned=True).name == "Unassigned"


def test_level2_name_taken_per_parent(require_postgresql, synced_tenant, admin):
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute="country", level2_attribute="department")
    pools = level1(synced_tenant)
    us, other = pools["us"], next(pool for key, pool in pools.items() if key != "us")
    us_sales = us.children.get(key="sales", is_active=True)
    rename_pool(acting_user=admin, pool=us_sales, name="Support")
    for parent in (us, other):
        mover = DirectoryUser.objects.filter(pool_id__in=parent.subtree_ids(), is_deleted=False).order_by("pk").first()
        move_user(mover, "Support")

    recompute_membership(synced_tenant)

    assert us.children.get(key="support").name == "Support (2)"
    assert other.children.get(key="support").name == "Support"
    [event] = naming_events(us.children.get(key="support"))
    assert event.message == taken_message("Support (2)", "Support", us_sales)


def test_alias_removal_reactivates_with_free_name(department_scheme, admin):
    tenant = department_scheme
    pools = level1(tenant)
    sales, finance, marketing = pools["sales"], pools["finance"], pools["marketing"]
    alias = add_alias(acting_user=admin, pool=sales, value="Finance")
    rename_pool(acting_user=admin, pool=marketing, name="Finance")

    remove_alias(acting_user=admin, alias=alias)

    finance.refresh_from_db()
    assert finance.is_active
    assert finance.name == "Finance (2)"
    [event] = naming_events(finance)
    assert event.before == {"name": "Finance"}
    assert event.after["name"] == "Finance (2)"


def test_scheme_change_preview_and_apply(synced_tenant, admin):
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.COUNTRY)
    us = level1(synced_tenant)["us"]
    rename_pool(acting_user=admin, pool=us, name="Sales")

    preview = preview_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.DEPARTMENT)
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.DEPARTMENT)

    new_names = {pool.name for pool in preview.pools if pool.is_new}
    assert "Sales (2)" in new_names
    assert "Sales" not in new_names
    sales = level1(synced_tenant)["sales"]
    assert sales.name == "Sales (2)"
    [event] = naming_events(sales)
    assert event.after["name_taken_by_id"] == us.pk


def test_merge_creates_child_with_free_name(synced_tenant, admin):
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute="department", level2_attribute="country")
    pools = list(level1(synced_tenant).values())
    source, target, moving_child = next(
        (source, target, child)
        for source in pools for target in pools if source.pk != target.pk and target.children.filter(is_active=True).exists()
        for child in source.children.filter(is_active=True).order_by("key")
        if not target.children.filter(key=child.key).exists()
    )
    renamed = target.children.filter(is_active=True).order_by("key").first()
    rename_pool(acting_user=admin, pool=renamed, name=moving_child.display_name)

    merge_pools(acting_user=admin, source=source, target=target)

    created = Pool.objects.get(parent=target, key=moving_child.key)
    assert created.is_active
    assert created.name == f"{moving_child.display_name} (2)"
    assert Pool.objects.get(pk=renamed.pk).name == moving_child.display_name
    [event] = naming_events(created)
    assert event.after["name_taken_by_id"] == renamed.pk
