"""The server-rendered pages through Django's test client, on PostgreSQL, against the Graph emulator."""
from __future__ import annotations

import time

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from graphsync.models import DirectoryUser, Sku, SyncRun, UserLicense
from pools import services, stock
from pools.choices import AuditAction, Outcome
from pools.models import Allotment, AuditEvent, Pool, PoolScheme
from rbac.choices import Role

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("require_postgresql")]

PASSWORD = "correct-horse-42"


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def find_room(tenant, *, users_needed: int) -> tuple[Pool, Sku, list[DirectoryUser]]:
    """Find a level-1 pool, an assignable SKU that no member of the pool holds, and members who can receive it."""
    candidates = Sku.objects.filter(tenant=tenant, applies_to="User", capability_status="Enabled").order_by("part_number")
    for pool in Pool.objects.filter(tenant=tenant, parent__isnull=True, is_active=True, is_unassigned=False).order_by("key"):
        for sku in candidates:
            if stock.holders(tenant, sku, pool.subtree_ids()) or sku.enabled_units - stock.holders(tenant, sku) < users_needed:
                continue
            users = list(
                pool.members_queryset()
                .exclude(usage_location="")
                .exclude(licenses__sku=sku)
                .order_by("user_principal_name")[:users_needed]
            )
            if len(users) == users_needed:
                return pool, sku, users
    raise AssertionError(f"No pool of the snapshot has {users_needed} users with a usage location and a free SKU.")


@pytest.fixture
def admin_user(synced_tenant, make_portal_user):
    return make_portal_user("alice-admin", role=Role.TENANT_ADMIN, tenant=synced_tenant)


@pytest.fixture
def country_scheme(synced_tenant, admin_user):
    services.set_scheme(acting_user=admin_user, tenant=synced_tenant, level1_attribute="country", level2_attribute="department")
    return synced_tenant


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_anonymous_redirected_to_login(client, synced_tenant):
    pool = Pool.objects.get(tenant=synced_tenant, is_unassigned=True)
    urls = [
        reverse("pools:home"),
        reverse("pools:tenant", kwargs={"tenant_pk": synced_tenant.pk}),
        reverse("pools:audit", kwargs={"tenant_pk": synced_tenant.pk}),
        reverse("pools:pool", kwargs={"pool_pk": pool.pk}),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"] == f"{reverse('login')}?next={url}"


def test_login_page_signs_in(client, admin_user):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert b'<label for="id_username">' in page.content

    response = client.post(reverse("login"), {"username": "alice-admin", "password": PASSWORD}, follow=True)

    assert response.redirect_chain[-1][0] == reverse("pools:home")
    assert b"alice-admin" in response.content


def test_scheme_form_previews_first(admin_client, synced_tenant):
    overview = admin_client.get(reverse("pools:tenant", kwargs={"tenant_pk": synced_tenant.pk})).content.decode()
    preview_url = reverse("pools:scheme_preview", kwargs={"tenant_pk": synced_tenant.pk})
    assert f'<form method="get" action="{preview_url}">' in overview

    response = admin_client.get(preview_url, {"level1_attribute": "country", "level2_attribute": "department"})

    assert response.status_code == 200
    assert not PoolScheme.objects.filter(tenant=synced_tenant).exists()
    token = response.context["preview"].token
    response = admin_client.post(
        reverse("pools:scheme_apply", kwargs={"tenant_pk": synced_tenant.pk}),
        {"level1_attribute": "country", "level2_attribute": "department", "token": token}, follow=True,
    )

    scheme = PoolScheme.objects.get(tenant=synced_tenant)
    assert (scheme.level1_attribute, scheme.level2_attribute) == ("country", "department")
    active = Pool.objects.filter(tenant=synced_tenant, is_active=True)
    level1 = active.filter(parent__isnull=True, is_unassigned=False)
    assert set(level1.values_list("key", flat=True)) >= {"de", "fr", "us"}
    assert active.filter(parent__isnull=False).exists()
    assert messages_of(response) == [
        f"Saved the pool scheme Country or region / Department. The tenant now has {active.count()} pools."
    ]


def test_tenant_page_does_not_save_scheme(admin_client, synced_tenant):
    url = reverse("pools:tenant", kwargs={"tenant_pk": synced_tenant.pk})

    response = admin_client.post(url, {"level1_attribute": "country", "level2_attribute": "department"})

    assert response.status_code == 405
    assert not PoolScheme.objects.filter(tenant=synced_tenant).exists()


def test_scheme_form_rejects_same_levels(admin_client, synced_tenant):
    url = reverse("pools:scheme_preview", kwargs={"tenant_pk": synced_tenant.pk})

    response = admin_client.get(url, {"level1_attribute": "country", "level2_attribute": "country"})

    assert response.status_code == 400
    assert response.context["scheme_form"].errors == {
        "level2_attribute": ["Level 2 must use a different attribute than level 1, or none."]
    }
    assert not PoolScheme.objects.filter(tenant=synced_tenant).exists()


def test_tenant_page_shows_stock(admin_client, country_scheme):
    response = admin_client.get(reverse("pools:tenant", kwargs={"tenant_pk": country_scheme.pk}))

    assert response.status_code == 200
    lines = {line.sku.part_number: line for line in response.context["stock"]}
    assert lines["SPE_E3"].sku.enabled_units == 93
    content = response.content.decode()
    assert "<code>PROJECTPROFESSIONAL</code>" in content
    assert "Sync now" in content


def test_sync_now_queues_run(admin_client, synced_tenant, admin_user):
    response = admin_client.post(reverse("pools:tenant_sync", kwargs={"tenant_pk": synced_tenant.pk}), follow=True)

    run = SyncRun.objects.filter(tenant=synced_tenant).order_by("-queued_at").first()
    assert run.requested_by == admin_user
    assert run.status == "queued"
    assert messages_of(response) == ["Sync queued. Reload this page to follow its progress."]


def test_allotment_beyond_enabled_units(admin_client, country_scheme):
    pool, sku, _users = find_room(country_scheme, users_needed=1)
    url = reverse("pools:pool_allot", kwargs={"pool_pk": pool.pk})
    seats = sku.enabled_units + 1

    response = admin_client.post(url, {"sku": sku.pk, "seats": seats}, follow=True)

    assert messages_of(response) == [
        f"Cannot allot {seats} seats of {sku.name} to {pool}: the tenant has {sku.enabled_units} enabled units and "
        f"other pools hold 0, so at most {sku.enabled_units} can go here. Buy more seats or lower another pool's "
        "allotment first."
    ]
    assert not Allotment.objects.filter(pool=pool, sku=sku).exists()


def test_allotment_saved_and_removed(admin_client, country_scheme):
    pool, sku, _users = find_room(country_scheme, users_needed=1)
    url = reverse("pools:pool_allot", kwargs={"pool_pk": pool.pk})

    response = admin_client.post(url, {"sku": sku.pk, "seats": "3"}, follow=True)

    assert messages_of(response) == [f"Allotted 3 seats of {sku.name} to {pool}."]
    assert Allotment.objects.get(pool=pool, sku=sku).seats == 3
    line = next(line for line in response.context["lines"] if line.sku == sku)
    assert (line.allotment, line.consumption, line.spare) == (3, 0, 3)

    response = admin_client.post(url, {"sku": sku.pk, "remove": "1", "confirm_remove": "1"}, follow=True)

    assert messages_of(response) == [f"Removed the allotment of {sku.name}."]
    assert not Allotment.objects.filter(pool=pool, sku=sku).exists()


def test_allotment_removal_needs_confirmation(admin_client, country_scheme):
    pool, sku, _users = find_room(country_scheme, users_needed=1)
    url = reverse("pools:pool_allot", kwargs={"pool_pk": pool.pk})
    admin_client.post(url, {"sku": sku.pk, "seats": "3"}, follow=True)
    events_before = AuditEvent.objects.count()

    response = admin_client.post(url, {"sku": sku.pk, "remove": "1"}, follow=True)

    assert messages_of(response) == [
        f"Allotment for {sku.name}: Without an allotment, {pool} cannot assign {sku.name}, and its seats return to "
        "the central reserve. Tick Confirm removal, then click Remove allotment again."
    ]
    assert Allotment.objects.get(pool=pool, sku=sku).seats == 3
    assert AuditEvent.objects.count() == events_before


def test_allotment_empty_field_refused(admin_client, country_scheme):
    pool, sku, _users = find_room(country_scheme, users_needed=1)
    url = reverse("pools:pool_allot", kwargs={"pool_pk": pool.pk})
    admin_client.post(url, {"sku": sku.pk, "seats": "3"}, follow=True)
    events_before = AuditEvent.objects.count()

    response = admin_client.post(url, {"sku": sku.pk, "seats": ""}, follow=True)

    assert messages_of(response) == [
        f"Allotment for {sku.name}: The field is empty, but the current allotment is 3. Enter 0 to allot no seats, "
        "or use Remove allotment to remove the allotment."
    ]
    assert Allotment.objects.get(pool=pool, sku=sku).seats == 3
    assert AuditEvent.objects.count() == events_before


def test_allotment_remove_control_shown(admin_client, country_scheme):
    pool, sku, _users = find_room(country_scheme, users_needed=1)
    url = reverse("pools:pool_allot", kwargs={"pool_pk": pool.pk})
    admin_client.post(url, {"sku": sku.pk, "seats": "3"})

    page = admin_client.get(reverse("pools:pool", kwargs={"pool_pk": pool.pk})).content.decode()

    assert page.count('name="remove" value="1"') == Allotment.objects.filter(pool=pool).count()
    assert page.count('name="confirm_remove" value="1"') == Allotment.objects.filter(pool=pool).count()
    assert f'id="confirm-remove-{sku.pk}" required' in page
    assert f'aria-label="Remove the allotment of {sku.name}"' in page


def test_allotment_not_a_number(admin_client, country_scheme):
    pool, sku, _users = find_room(country_scheme, users_needed=1)
    url = reverse("pools:pool_allot", kwargs={"pool_pk": pool.pk})

    response = admin_client.post(url, {"sku": sku.pk, "seats": "abc"}, follow=True)

    assert messages_of(response) == [f'Allotment for {sku.name}: "abc" is not a whole number.']
    assert not Allotment.objects.filter(pool=pool, sku=sku).exists()


def test_allotment_of_foreign_sku_is_404(admin_client, country_scheme):
    pool, _sku, _users = find_room(country_scheme, users_needed=1)
    response = admin_client.post(reverse("pools:pool_allot", kwargs={"pool_pk": pool.pk}), {"sku": 999999, "seats": 1})
    assert response.status_code == 404


def test_rename_pool(admin_client, country_scheme):
    pool, _sku, _users = find_room(country_scheme, users_needed=1)

    response = admin_client.post(reverse("pools:pool_rename", kwargs={"pool_pk": pool.pk}), {"name": "Einkauf/Beschaffung"}, follow=True)

    assert messages_of(response) == ["The pool is now called Einkauf/Beschaffung."]
    pool.refresh_from_db()
    assert pool.name == "Einkauf/Beschaffung"


def test_assign_and_revoke(client, country_scheme, admin_user, make_portal_user, emulated_tenant_state):
    pool, sku, (member, *_rest) = find_room(country_scheme, users_needed=1)
    services.set_allotment(acting_user=admin_user, pool=pool, sku=sku, seats=2)
    manager = make_portal_user("mona-manager", role=Role.POOL_MANAGER, pool=pool)
    client.force_login(manager)
    pool_url = reverse("pools:pool", kwargs={"pool_pk": pool.pk})

    response = client.post(
        reverse("pools:assign", kwargs={"pool_pk": pool.pk}), {"user": member.pk, "sku": sku.pk, "q": member.user_principal_name}
    )

    assert response.status_code == 302
    assert response["Location"] == f"{pool_url}?q={member.user_principal_name.replace('@', '%40')}#member-{member.pk}"
    assert messages_of(response) == [f"Assigned {sku.name} to {member.user_principal_name}."]
    license = UserLicense.objects.get(user=member, sku=sku, assigned_by_group="")
    assert license.state == "Active"
    assert str(sku.sku_id) in emulated_tenant_state.held_skus(str(member.user_id))

    page = client.get(pool_url, {"q": member.user_principal_name})
    assert f'aria-label="Revoke {sku.name} from {member.user_principal_name}"' in page.content.decode()

    response = client.post(reverse("pools:revoke", kwargs={"pool_pk": pool.pk}), {"user": member.pk, "sku": sku.pk})

    assert response.status_code == 302
    assert messages_of(response) == [f"Revoked {sku.name} from {member.user_principal_name}."]
    assert not UserLicense.objects.filter(user=member, sku=sku).exists()
    assert str(sku.sku_id) not in emulated_tenant_state.held_skus(str(member.user_id))


def test_assign_beyond_allotment_rejected(client, country_scheme, admin_user, make_portal_user):
    pool, sku, (first, second) = find_room(country_scheme, users_needed=2)
    services.set_allotment(acting_user=admin_user, pool=pool, sku=sku, seats=1)
    client.force_login(make_portal_user("mona-manager", role=Role.POOL_MANAGER, pool=pool))
    url = reverse("pools:assign", kwargs={"pool_pk": pool.pk})
    first_response = client.post(url, {"user": first.pk, "sku": sku.pk}, follow=True)
    assert messages_of(first_response) == [f"Assigned {sku.name} to {first.user_principal_name}."]

    response = client.post(url, {"user": second.pk, "sku": sku.pk}, follow=True)

    assert messages_of(response) == [
        f"Pool {pool} has no spare seat of {sku.name}: 1 allotted, 1 in use, 0 spare. Revoke a license in this pool "
        "or ask a tenant administrator to raise its allotment."
    ]
    assert not UserLicense.objects.filter(user=second, sku=sku).exists()
    event = AuditEvent.objects.filter(action=AuditAction.LICENSE_ASSIGNED, target_user=second).get()
    assert event.outcome == Outcome.REJECTED


def test_assign_without_sku_shows_error(client, country_scheme, make_portal_user):
    pool, _sku, (member,) = find_room(country_scheme, users_needed=1)
    client.force_login(make_portal_user("mona-manager", role=Role.POOL_MANAGER, pool=pool))

    response = client.post(reverse("pools:assign", kwargs={"pool_pk": pool.pk}), {"user": member.pk, "sku": ""}, follow=True)

    assert messages_of(response) == ["License: This field is required."]


def test_revoke_group_license_names_group(admin_client, country_scheme):
    group_license = (
        UserLicense.objects.filter(tenant=country_scheme, sku__part_number="SPE_E3", user__is_deleted=False)
        .exclude(assigned_by_group="")
        .exclude(user__pool__isnull=True)
        .select_related("user", "sku")
        .first()
    )
    assert group_license is not None, "The snapshot should give some users E3 through a group."
    member, sku = group_license.user, group_license.sku
    pool = member.pool.parent or member.pool
    if UserLicense.objects.filter(user=member, sku=sku, assigned_by_group="").exists():
        pytest.skip("This user also holds the SKU directly.")

    page = admin_client.get(reverse("pools:pool", kwargs={"pool_pk": pool.pk}), {"q": member.user_principal_name})
    assert "via group License - Microsoft 365 E3" in page.content.decode()

    response = admin_client.post(reverse("pools:revoke", kwargs={"pool_pk": pool.pk}), {"user": member.pk, "sku": sku.pk}, follow=True)

    assert messages_of(response) == [
        f"{member.user_principal_name} gets {sku.name} from the group License - Microsoft 365 E3, not directly. "
        "Remove the user from the group or the license from the group in Entra ID."
    ]


def test_manager_sees_only_own_pool(client, country_scheme, make_portal_user):
    pool, _sku, _users = find_room(country_scheme, users_needed=1)
    other = Pool.objects.filter(tenant=country_scheme, parent__isnull=True, is_active=True).exclude(pk=pool.pk).first()
    other_member = other.members_queryset().first()
    client.force_login(make_portal_user("mona-manager", role=Role.POOL_MANAGER, pool=pool))

    assert client.get(reverse("pools:pool", kwargs={"pool_pk": pool.pk})).status_code == 200
    assert client.get(reverse("pools:pool", kwargs={"pool_pk": other.pk})).status_code == 404
    assert client.get(reverse("pools:tenant", kwargs={"tenant_pk": country_scheme.pk})).status_code == 404
    assert client.get(reverse("pools:audit", kwargs={"tenant_pk": country_scheme.pk})).status_code == 404
    sku = Sku.objects.filter(tenant=country_scheme).first()
    assign_other = client.post(reverse("pools:assign", kwargs={"pool_pk": other.pk}), {"user": other_member.pk, "sku": sku.pk})
    assert assign_other.status_code == 404
    # A user of another pool posted to the manager's own pool is just as unknown.
    assign_outsider = client.post(reverse("pools:assign", kwargs={"pool_pk": pool.pk}), {"user": other_member.pk, "sku": sku.pk})
    assert assign_outsider.status_code == 404
    allot = client.post(reverse("pools:pool_allot", kwargs={"pool_pk": pool.pk}), {"sku": sku.pk, "seats": 1})
    assert allot.status_code == 404

    home = client.get(reverse("pools:home")).content.decode()
    assert reverse("pools:pool", kwargs={"pool_pk": pool.pk}) in home
    assert reverse("pools:pool", kwargs={"pool_pk": other.pk}) not in home
    assert reverse("pools:tenant", kwargs={"tenant_pk": country_scheme.pk}) not in home


def test_manager_page_has_no_admin_forms(client, country_scheme, make_portal_user):
    pool, _sku, _users = find_room(country_scheme, users_needed=1)
    client.force_login(make_portal_user("mona-manager", role=Role.POOL_MANAGER, pool=pool))

    content = client.get(reverse("pools:pool", kwargs={"pool_pk": pool.pk})).content.decode()

    assert reverse("pools:pool_allot", kwargs={"pool_pk": pool.pk}) not in content
    assert reverse("pools:pool_rename", kwargs={"pool_pk": pool.pk}) not in content
    assert reverse("pools:assign", kwargs={"pool_pk": pool.pk}) in content


def test_member_search_partial(client, country_scheme, make_portal_user):
    pool, _sku, (first, second) = find_room(country_scheme, users_needed=2)
    client.force_login(make_portal_user("mona-manager", role=Role.POOL_MANAGER, pool=pool))

    response = client.get(
        reverse("pools:pool", kwargs={"pool_pk": pool.pk}),
        {"q": first.user_principal_name.upper()},
        headers={"HX-Request": "true", "HX-Target": "members"},
    )

    content = response.content.decode()
    assert "<html" not in content
    assert f'id="member-{first.pk}"' in content
    assert f'id="member-{second.pk}"' not in content


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("a" * 301, "The search is too long: use at most 300 characters (it has 301)."),
        ("ali\x00ce", "The search contains a null character, which cannot be searched. Remove it and search again."),
    ],
    ids=["too-long", "null-character"],
)
def test_invalid_member_search_lists_none(client, country_scheme, make_portal_user, query, message):
    pool, _sku, _users = find_room(country_scheme, users_needed=1)
    client.force_login(make_portal_user("mona-manager", role=Role.POOL_MANAGER, pool=pool))

    response = client.get(reverse("pools:pool", kwargs={"pool_pk": pool.pk}), {"q": query})

    content = response.content.decode()
    assert response.status_code == 200
    assert message in content
    assert pool.members_queryset().exists()
    assert len(response.context["members"].object_list) == 0
    assert '<tr id="member-' not in content
    assert "\x00" not in content


def test_level2_delegate_sees_parent_unlinked(client, country_scheme, make_portal_user):
    child = Pool.objects.filter(tenant=country_scheme, parent__isnull=False, is_active=True).order_by("key").first()
    parent_url = reverse("pools:pool", kwargs={"pool_pk": child.parent_id})
    client.force_login(make_portal_user("lena-level2", role=Role.POOL_MANAGER, pool=child))

    content = client.get(reverse("pools:pool", kwargs={"pool_pk": child.pk})).content.decode()

    assert client.get(parent_url).status_code == 404
    assert child.parent.name in content
    assert f'href="{parent_url}"' not in content


def test_level1_manager_sees_parent_link(client, country_scheme, make_portal_user):
    child = Pool.objects.filter(tenant=country_scheme, parent__isnull=False, is_active=True).order_by("key").first()
    parent_url = reverse("pools:pool", kwargs={"pool_pk": child.parent_id})
    client.force_login(make_portal_user("mona-manager", role=Role.POOL_MANAGER, pool=child.parent))

    content = client.get(reverse("pools:pool", kwargs={"pool_pk": child.pk})).content.decode()

    assert f'href="{parent_url}"' in content


def test_members_paginated(admin_client, synced_tenant):
    pool = Pool.objects.get(tenant=synced_tenant, is_unassigned=True)
    total = pool.members_queryset().count()
    assert total > 50, "Without a scheme every user of the snapshot is in the Unassigned pool."

    first = admin_client.get(reverse("pools:pool", kwargs={"pool_pk": pool.pk}))
    second = admin_client.get(reverse("pools:pool", kwargs={"pool_pk": pool.pk}), {"page": 2})

    assert len(first.context["members"].object_list) == 50
    assert len(second.context["members"].object_list) == total - 50


def test_auditor_reads_audit_trail(client, country_scheme, make_portal_user):
    client.force_login(make_portal_user("ada-auditor", role=Role.AUDITOR, tenant=country_scheme))

    response = client.get(reverse("pools:audit", kwargs={"tenant_pk": country_scheme.pk}))

    assert response.status_code == 200
    content = response.content.decode()
    assert "Pool scheme changed" in content
    assert "alice-admin" in content
    assert client.get(reverse("pools:tenant", kwargs={"tenant_pk": country_scheme.pk})).status_code == 404


def test_finance_cannot_open_pools(client, country_scheme, make_portal_user):
    pool, _sku, _users = find_room(country_scheme, users_needed=1)
    client.force_login(make_portal_user("fiona-finance", role=Role.FINANCE, tenant=country_scheme))

    assert client.get(reverse("pools:pool", kwargs={"pool_pk": pool.pk})).status_code == 404
    home = client.get(reverse("pools:home"))
    assert home.status_code == 200
    assert country_scheme.name in home.content.decode()


def test_allotment_below_use_warns(admin_client, country_scheme):
    held = (
        UserLicense.objects.filter(tenant=country_scheme, assigned_by_group="", user__pool__parent__isnull=True)
        .exclude(user__pool__is_unassigned=True)
        .select_related("user__pool", "sku")
        .first()
    )
    pool, sku = held.user.pool, held.sku
    url = reverse("pools:pool_allot", kwargs={"pool_pk": pool.pk})

    response = admin_client.post(url, {"sku": sku.pk, "seats": "0"}, follow=True)

    line = next(line for line in response.context["lines"] if line.sku == sku)
    assert messages_of(response) == [
        f"Allotted 0 seats of {sku.name} to {pool}.",
        f"{pool} already holds {line.consumption} licenses of {sku.name}, {line.consumption} more than the "
        "allotment. Nothing was revoked; the pool cannot assign more until licenses are revoked or the allotment "
        "is raised.",
    ]
    assert UserLicense.objects.filter(pk=held.pk).exists()


def test_over_allotment_highlighted(admin_client, country_scheme, admin_user):
    held = (
        UserLicense.objects.filter(tenant=country_scheme, assigned_by_group="", user__pool__parent__isnull=True)
        .exclude(user__pool__is_unassigned=True)
        .select_related("user__pool", "sku")
        .first()
    )
    pool, sku = held.user.pool, held.sku
    services.set_allotment(acting_user=admin_user, pool=pool, sku=sku, seats=0)

    response = admin_client.get(reverse("pools:pool", kwargs={"pool_pk": pool.pk}))

    line = next(line for line in response.context["lines"] if line.sku == sku)
    assert line.over_allotment
    assert line.spare == -line.consumption
    content = response.content.decode()
    assert '<tr class="over-allotment">' in content
    assert "over allotment" in content


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_sync_now_runs_in_worker(client, synced_tenant, make_portal_user, celery_worker):
    client.force_login(make_portal_user("alice-admin", role=Role.TENANT_ADMIN, tenant=synced_tenant))

    client.post(reverse("pools:tenant_sync", kwargs={"tenant_pk": synced_tenant.pk}))

    run = SyncRun.objects.filter(tenant=synced_tenant, requested_by__username="alice-admin").get()
    deadline = time.monotonic() + 60
    while run.status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        run.refresh_from_db()
    assert run.status == "succeeded", run.error_message
    assert run.users_count == 60
    page = client.get(reverse("pools:tenant", kwargs={"tenant_pk": synced_tenant.pk}))
    assert '<td class="sync-succeeded">Succeeded</td>' in page.content.decode()


def test_audit_page_shows_before_and_after(client, make_portal_user, synced_tenant):
    from pools.audit import record_event
    from pools.choices import AuditAction

    admin = make_portal_user("audit-admin", role="tenant_admin", tenant=synced_tenant)
    record_event(
        acting_user=admin, action=AuditAction.ALLOTMENT_CHANGED, tenant=synced_tenant, target="Sales",
        before={"seats": 3}, after={"seats": 5},
    )
    client.force_login(admin)

    body = client.get(f"/tenants/{synced_tenant.pk}/audit/").content.decode()

    assert "<dt>Seats</dt>\n    <dd>3</dd>" in body
    assert "<dt>Seats</dt>\n    <dd>5</dd>" in body
    assert "{&#x27;seats&#x27;" not in body
