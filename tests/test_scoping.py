"""Scoping: nobody reaches a pool or tenant outside their grants, in the HTML pages or the API.

Two tenants are served by one Graph emulator, so that a leak between tenants would show up here.
"""
from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Group
from django.db.models import Count, Q
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from conftest import sync_now
from graphsync.models import DirectoryUser, Sku, SyncRun, Tenant, UserLicense
from pools.models import Allotment, AuditEvent, Pool
from pools.services import set_allotment, set_scheme
from rbac.choices import Action, Role

FREE_SKU = "FLOW_FREE"
NOT_AUTHENTICATED = {"detail": "Authentication credentials were not provided."}
NOT_FOUND = {
    "tenant": {"detail": "Tenant not found."},
    "pool": {"detail": "Pool not found."},
}


@pytest.fixture
def two_tenants(db, require_postgresql, emulator_state_dir, make_portal_user):
    """Tenants X and Y from one emulator, each synced and split into pools by department."""
    from graphsync.emulator.generator import generate_tenant
    from graphsync.emulator.server import EmulatorServer
    from graphsync.services import connect_tenant

    snapshots = [generate_tenant(users=40, seed=21), generate_tenant(users=40, seed=22)]
    assert snapshots[0]["tenantId"] != snapshots[1]["tenantId"]
    server = EmulatorServer(snapshots, state_dir=emulator_state_dir, control_token="test-control-token")
    server.start()
    try:
        tenants = []
        for label, snapshot in zip(("X", "Y"), snapshots):
            client = snapshot["clients"][0]
            tenant = connect_tenant(
                acting_user=None, name=f"Tenant {label}", tenant_id=snapshot["tenantId"],
                client_id=client["clientId"], client_secret=client["clientSecret"], authority_host=server.base_url,
                graph_base_url=f"{server.base_url}/v1.0", ca_bundle=str(server.ca_path),
            )
            sync_now(tenant)
            admin = make_portal_user(f"admin-{label.lower()}", role=Role.TENANT_ADMIN, tenant=tenant)
            set_scheme(acting_user=admin, tenant=tenant, level1_attribute="department")
            tenants.append(tenant)
        yield server, tenants[0], tenants[1]
    finally:
        server.stop()


def largest_pools(tenant: Tenant) -> list[Pool]:
    return list(
        Pool.objects.filter(tenant=tenant, parent=None, is_unassigned=False)
        .annotate(size=Count("members", filter=Q(members__is_deleted=False)))
        .order_by("-size", "pk")
    )


@pytest.fixture
def setup(two_tenants):
    """Pools A and B of tenant X, a member of B holding the free SKU directly, and one who does not."""
    server, tenant_x, tenant_y = two_tenants
    pool_a, pool_b = largest_pools(tenant_x)[:2]
    sku = Sku.objects.get(tenant=tenant_x, part_number=FREE_SKU)
    admin = tenant_x.grants.get(role=Role.TENANT_ADMIN).user
    for pool in (pool_a, pool_b):
        set_allotment(acting_user=admin, pool=pool, sku=sku, seats=50)
    b_members = pool_b.members_queryset().exclude(usage_location="").order_by("user_principal_name")
    b_without = b_members.exclude(licenses__sku=sku).first()
    b_holder = b_members.filter(licenses__sku=sku, licenses__assigned_by_group="").first()
    if b_holder is None:
        # Give one member of B the SKU as tenant administrator, so that revoking it has a target.
        from pools.services import assign_license

        b_holder = b_without
        assign_license(acting_user=admin, pool=pool_b, user=b_holder, sku=sku)
        b_without = b_members.exclude(licenses__sku=sku).first()
    return {
        "server": server, "x": tenant_x, "y": tenant_y, "a": pool_a, "b": pool_b, "sku": sku,
        "b_holder": b_holder, "b_without": b_without, "admin": admin,
    }


def api_as(user) -> APIClient:
    api = APIClient()
    api.force_authenticate(user)
    return api


def held_in_emulator(server, tenant: Tenant, user: DirectoryUser, sku: Sku) -> bool:
    held = server.state(str(tenant.tenant_id)).held_skus(str(user.user_id))
    return str(sku.sku_id).lower() in {sku_id.lower() for sku_id in held}


def pool_b_requests(setup) -> list[tuple[str, str, dict | None]]:
    """Every API request that reaches an object of pool B."""
    pool_b, sku, holder, without = setup["b"], setup["sku"], setup["b_holder"], setup["b_without"]
    base = f"/api/v1/pools/{pool_b.pk}"
    return [
        ("get", f"{base}/", None),
        ("get", f"{base}/users/", None),
        ("put", f"{base}/allotments/{sku.sku_id}/", {"seats": 1}),
        ("delete", f"{base}/allotments/{sku.sku_id}/", None),
        ("post", f"{base}/users/{without.user_id}/licenses/", {"skuId": str(sku.sku_id)}),
        ("delete", f"{base}/users/{holder.user_id}/licenses/{sku.sku_id}/", None),
    ]


def test_manager_html_other_pool_404(client, make_portal_user, setup):
    client.force_login(make_portal_user("manager-a", role=Role.POOL_MANAGER, pool=setup["a"]))

    assert client.get(f"/pools/{setup['a'].pk}/").status_code == 200
    assert client.get(f"/pools/{setup['b'].pk}/").status_code == 404


def test_manager_api_other_pool_404(make_portal_user, setup):
    api = api_as(make_portal_user("manager-a", role=Role.POOL_MANAGER, pool=setup["a"]))
    events_before = AuditEvent.objects.count()

    for method, url, body in pool_b_requests(setup):
        response = getattr(api, method)(url, body, format="json")

        assert response.status_code == 404, (method, url)
        assert response.json() == {"detail": "Pool not found."}, (method, url)

    assert AuditEvent.objects.count() == events_before
    assert Allotment.objects.get(pool=setup["b"], sku=setup["sku"]).seats == 50
    assert held_in_emulator(setup["server"], setup["x"], setup["b_holder"], setup["sku"])
    assert not held_in_emulator(setup["server"], setup["x"], setup["b_without"], setup["sku"])


def test_manager_lists_only_own_pool(make_portal_user, setup):
    api = api_as(make_portal_user("manager-a", role=Role.POOL_MANAGER, pool=setup["a"]))

    pools = api.get("/api/v1/pools/").json()["results"]
    users = api.get(f"/api/v1/pools/{setup['a'].pk}/users/").json()

    assert {item["id"] for item in pools} == set(setup["a"].subtree_ids())
    member_pools = DirectoryUser.objects.filter(user_id__in=[item["id"] for item in users["results"]])
    assert set(member_pools.values_list("pool_id", flat=True)) <= set(setup["a"].subtree_ids())


def test_manager_cannot_reach_b_member_via_a(make_portal_user, setup):
    api = api_as(make_portal_user("manager-a", role=Role.POOL_MANAGER, pool=setup["a"]))
    sku, holder, without = setup["sku"], setup["b_holder"], setup["b_without"]
    base = f"/api/v1/pools/{setup['a'].pk}"

    assigned = api.post(f"{base}/users/{without.user_id}/licenses/", {"skuId": str(sku.sku_id)}, format="json")
    revoked = api.delete(f"{base}/users/{holder.user_id}/licenses/{sku.sku_id}/")
    missing = api.delete(f"{base}/users/{uuid.uuid4()}/licenses/{sku.sku_id}/")

    # A member of pool B looks exactly like a user who does not exist.
    for response in (assigned, revoked, missing):
        assert response.status_code == 404
        assert response.json() == {"detail": "User not found."}
    assert not held_in_emulator(setup["server"], setup["x"], without, sku)
    assert held_in_emulator(setup["server"], setup["x"], holder, sku)


def test_manager_cannot_set_allotment(make_portal_user, setup):
    api = api_as(make_portal_user("manager-a", role=Role.POOL_MANAGER, pool=setup["a"]))

    response = api.put(f"/api/v1/pools/{setup['a'].pk}/allotments/{setup['sku'].sku_id}/", {"seats": 1}, format="json")

    # The manager may view pool A, so 403 hides nothing, and it names who can make the change.
    assert response.status_code == 403
    assert response.json()["detail"].startswith("Only tenant administrators change allotments")
    assert Allotment.objects.get(pool=setup["a"], sku=setup["sku"]).seats == 50


def test_tenant_x_sees_nothing_of_y(client, make_portal_user, setup):
    tenant_x, tenant_y = setup["x"], setup["y"]
    y_pool = largest_pools(tenant_y)[0]
    api = api_as(setup["admin"])
    client.force_login(setup["admin"])

    tenants = api.get("/api/v1/tenants/").json()["results"]
    pools = api.get("/api/v1/pools/").json()["results"]
    filtered = api.get("/api/v1/pools/", {"tenant": tenant_y.pk}).json()["results"]

    assert [item["id"] for item in tenants] == [tenant_x.pk]
    assert pools
    assert {item["tenant"] for item in pools} == {tenant_x.pk}
    assert filtered == []
    for url, body in [
        (f"/api/v1/tenants/{tenant_y.pk}/", NOT_FOUND["tenant"]),
        (f"/api/v1/tenants/{tenant_y.pk}/skus/", NOT_FOUND["tenant"]),
        (f"/api/v1/tenants/{tenant_y.pk}/chargeback/", NOT_FOUND["tenant"]),
        (f"/api/v1/pools/{y_pool.pk}/", NOT_FOUND["pool"]),
        (f"/api/v1/pools/{y_pool.pk}/users/", NOT_FOUND["pool"]),
    ]:
        response = api.get(url)
        assert response.status_code == 404, url
        assert response.json() == body, url
    synced = api.post(f"/api/v1/tenants/{tenant_y.pk}/sync/")
    assert synced.status_code == 404
    assert synced.json() == NOT_FOUND["tenant"]
    assert client.get(f"/tenants/{tenant_y.pk}/chargeback/").status_code == 404
    assert client.get(f"/tenants/{tenant_y.pk}/prices/").status_code == 404
    assert client.get(f"/pools/{y_pool.pk}/").status_code == 404


def test_y_member_not_reachable_from_x(setup):
    tenant_y = setup["y"]
    y_user = DirectoryUser.objects.filter(tenant=tenant_y, is_deleted=False).exclude(usage_location="").first()
    api = api_as(setup["admin"])

    response = api.post(
        f"/api/v1/pools/{setup['a'].pk}/users/{y_user.user_id}/licenses/", {"skuId": str(setup["sku"].sku_id)},
        format="json",
    )

    assert response.status_code == 404
    assert not UserLicense.objects.filter(user=y_user, sku__part_number=FREE_SKU, state="Pending").exists()


def test_finance_cannot_assign(make_portal_user, setup):
    finance = make_portal_user("finance", role=Role.FINANCE, tenant=setup["x"])
    api = api_as(finance)
    sku, holder, without = setup["sku"], setup["b_holder"], setup["b_without"]
    base = f"/api/v1/pools/{setup['b'].pk}"

    assigned = api.post(f"{base}/users/{without.user_id}/licenses/", {"skuId": str(sku.sku_id)}, format="json")
    revoked = api.delete(f"{base}/users/{holder.user_id}/licenses/{sku.sku_id}/")
    allotted = api.put(f"{base}/allotments/{sku.sku_id}/", {"seats": 1}, format="json")
    pools = api.get("/api/v1/pools/").json()["results"]
    report = api.get(f"/api/v1/tenants/{setup['x'].pk}/chargeback/")

    assert (assigned.status_code, revoked.status_code, allotted.status_code) == (404, 404, 404)
    assert pools == []
    assert report.status_code == 200
    assert not held_in_emulator(setup["server"], setup["x"], without, sku)
    assert held_in_emulator(setup["server"], setup["x"], holder, sku)


def test_finance_pool_grant_rows(make_portal_user, setup):
    finance = make_portal_user("finance-a", role=Role.FINANCE, pool=setup["a"])
    api = api_as(finance)

    rows = api.get(f"/api/v1/tenants/{setup['x'].pk}/chargeback/").json()["rows"]
    tenants = api.get("/api/v1/tenants/").json()["results"]

    assert rows
    assert {row["pool"] for row in rows} == {setup["a"].pk}
    assert [item["id"] for item in tenants] == [setup["x"].pk]
    assert api.get(f"/api/v1/tenants/{setup['y'].pk}/chargeback/").status_code == 404


def test_operator_cannot_set_allotment_or_sync(make_portal_user, setup):
    api = api_as(make_portal_user("operator", role=Role.LICENSE_OPERATOR, tenant=setup["x"]))

    allotted = api.put(f"/api/v1/pools/{setup['a'].pk}/allotments/{setup['sku'].sku_id}/", {"seats": 1}, format="json")
    synced = api.post(f"/api/v1/tenants/{setup['x'].pk}/sync/")

    assert allotted.status_code == 403
    assert synced.status_code == 403
    assert synced.json()["detail"].startswith("Only tenant administrators start a sync")
    assert not SyncRun.objects.filter(tenant=setup["x"], status="queued").exists()


def test_anonymous_rejected(setup):
    api = APIClient()
    requests = [
        ("get", "/api/v1/tenants/", None),
        ("get", f"/api/v1/tenants/{setup['x'].pk}/", None),
        ("get", f"/api/v1/tenants/{setup['x'].pk}/skus/", None),
        ("post", f"/api/v1/tenants/{setup['x'].pk}/sync/", None),
        ("get", f"/api/v1/tenants/{setup['x'].pk}/chargeback/", None),
        ("get", "/api/v1/pools/", None),
        *pool_b_requests(setup),
    ]

    for method, url, body in requests:
        response = getattr(api, method)(url, body, format="json")

        assert response.status_code == 401, (method, url)
        assert response["WWW-Authenticate"] == "Token", (method, url)
        assert response.json() == NOT_AUTHENTICATED, (method, url)
    assert held_in_emulator(setup["server"], setup["x"], setup["b_holder"], setup["sku"])


@pytest.mark.parametrize("action", list(Action))
def test_can_on_pool_matches_pools_for(action, make_portal_user, synced_tenant):
    from rbac.scoping import can_on_pool, pools_for

    admin = make_portal_user("scheme-admin", role="tenant_admin", tenant=synced_tenant)
    set_scheme(acting_user=admin, tenant=synced_tenant, level1_attribute="country", level2_attribute="department")
    parent = Pool.objects.filter(tenant=synced_tenant, parent=None, children__isnull=False).first()
    child = parent.children.first()
    users = [
        admin,
        make_portal_user("parent-manager", role="pool_manager", pool=parent),
        make_portal_user("child-operator", role="license_operator", pool=child),
        make_portal_user("finance-wide", role="finance", tenant=synced_tenant),
        make_portal_user("auditor-wide", role="auditor", tenant=synced_tenant),
        make_portal_user("nobody"),
        make_portal_user("child-via-group"),
        make_portal_user("tenant-via-group"),
        make_portal_user("inactive-admin", role="tenant_admin", tenant=synced_tenant),
    ]
    # Grants to a group reach its members, as django-guardian's checks and querysets both count them.
    child_group = Group.objects.create(name="child operators")
    assign_perm("pools.operate_pool", child_group, child)
    users[-3].groups.add(child_group)
    tenant_group = Group.objects.create(name="finance team")
    assign_perm("graphsync.view_chargeback", tenant_group, synced_tenant)
    users[-2].groups.add(tenant_group)
    users[-1].is_active = False
    users[-1].save()

    for user in users:
        expected = set() if not user.is_active else set(pools_for(user, action).values_list("pk", flat=True))
        actual = {pool.pk for pool in Pool.objects.filter(tenant=synced_tenant) if can_on_pool(user, action, pool)}
        assert actual == expected, user.username
