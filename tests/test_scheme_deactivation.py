"""Scheme changes that deactivate pools: what the preview lists, the inactive pool page, and releasing its allotments."""
from __future__ import annotations

import pytest
from django.urls import reverse

from graphsync.models import Sku
from pools.choices import AuditAction, Outcome, PoolAttribute, RequestStatus
from pools.models import Allotment, AuditEvent, Pool, SeatRequest
from pools.schemes import apply_scheme, preview_scheme
from pools.services import set_allotment
from rbac.choices import Role
from rbac.services import grant_role
from tests.test_schemes import (  # noqa: F401 (fixtures)
    active_level1, admin, admin_client, department_scheme, emulator_snapshot, messages_of, unassigned,
)


@pytest.fixture
def legal(department_scheme, admin) -> Pool:
    """The Legal pool, which a country scheme deactivates, with 4 seats of SPE_E3 and 2 of EMS."""
    pool = active_level1(department_scheme)["legal"]
    set_allotment(acting_user=admin, pool=pool, sku=e3(department_scheme), seats=4)
    set_allotment(acting_user=admin, pool=pool, sku=ems(department_scheme), seats=2)
    return pool


def e3(tenant) -> Sku:
    return Sku.objects.get(tenant=tenant, part_number="SPE_E3")


def ems(tenant) -> Sku:
    return Sku.objects.get(tenant=tenant, part_number="EMS")


@pytest.fixture
def legal_manager(make_portal_user, legal):
    return make_portal_user("legal-manager", role=Role.POOL_MANAGER, pool=legal)


@pytest.fixture
def legal_operator(make_portal_user, legal):
    """A license operator of Legal who also operates the Unassigned pool, which every scheme keeps."""
    user = make_portal_user("legal-operator", role=Role.LICENSE_OPERATOR, pool=legal)
    grant_role(acting_user=None, role=Role.LICENSE_OPERATOR, tenant=legal.tenant, user=user, pool=unassigned(legal.tenant))
    return user


@pytest.fixture
def legal_request(legal, legal_manager) -> SeatRequest:
    return SeatRequest.objects.create(
        tenant=legal.tenant, pool=legal, sku=e3(legal.tenant), quantity=3, reason="New hires",
        requested_by=legal_manager,
    )


def country_preview(tenant, admin):
    return preview_scheme(acting_user=admin, tenant=tenant, level1_attribute=PoolAttribute.COUNTRY)


def apply_country(tenant, admin) -> None:
    preview = country_preview(tenant, admin)
    apply_scheme(acting_user=admin, tenant=tenant, level1_attribute=PoolAttribute.COUNTRY, token=preview.token)


# Preview


def test_preview_lists_lost_access(department_scheme, admin, legal, legal_manager, legal_operator):
    preview = country_preview(department_scheme, admin)

    delegates = {(delegate.principal, delegate.pool): delegate for delegate in preview.delegates}
    assert set(delegates) == {("legal-manager", "Legal"), ("legal-operator", "Legal")}
    assert delegates["legal-manager", "Legal"].role == "Pool manager"
    assert delegates["legal-manager", "Legal"].keeps_other_access is False
    assert delegates["legal-operator", "Legal"].role == "License operator"
    assert delegates["legal-operator", "Legal"].keeps_other_access is True
    assert preview.delegates_without_access == 1


def test_preview_lists_pending_requests(department_scheme, admin, legal, legal_request):
    SeatRequest.objects.create(
        tenant=legal.tenant, pool=legal, sku=ems(legal.tenant), quantity=1, reason="Declined one",
        status=RequestStatus.DECLINED,
    )

    preview = country_preview(department_scheme, admin)

    assert preview.pending_requests == [legal_request]
    assert preview.pending_seats == 3


def test_preview_totals_stranded_allotments(department_scheme, admin, legal):
    preview = country_preview(department_scheme, admin)

    stranded = {(item.pool_name, item.sku.part_number): item.seats for item in preview.stranded_allotments}
    assert stranded == {("Legal", "SPE_E3"): 4, ("Legal", "EMS"): 2}
    assert preview.stranded_seats == 6


def test_preview_token_covers_requests(department_scheme, admin, legal, legal_manager):
    before = country_preview(department_scheme, admin).token
    SeatRequest.objects.create(
        tenant=legal.tenant, pool=legal, sku=e3(legal.tenant), quantity=1, reason="x", requested_by=legal_manager,
    )

    assert country_preview(department_scheme, admin).token != before


def test_preview_page_shows_deactivation(admin_client, department_scheme, legal, legal_manager, legal_request):
    url = reverse("pools:scheme_preview", kwargs={"tenant_pk": department_scheme.pk})

    response = admin_client.get(url, {"level1_attribute": "country", "level2_attribute": ""})

    content = response.content.decode()
    assert response.status_code == 200
    assert "1 grant of a delegate would stop giving access, and 1 user or group would have no access" in content
    assert "1 pending seat request could no longer be approved (3 seats)." in content
    assert "2 allotments would stay on deactivated pools (6 seats)." in content
    assert 'id="lost-access"' in content
    assert 'id="pending-requests"' in content
    assert 'id="stranded-allotments"' in content
    assert "until you move them" not in content


# Inactive pool page


def test_inactive_pool_page_for_admin(admin_client, department_scheme, admin, legal, legal_manager, legal_request):
    apply_country(department_scheme, admin)
    legal.refresh_from_db()

    response = admin_client.get(reverse("pools:pool", kwargs={"pool_pk": legal.pk}))

    content = response.content.decode()
    assert legal.is_active is False
    assert response.status_code == 200
    assert 'id="inactive-badge"' in content
    assert "This pool is inactive because the current pool scheme does not produce it." in content
    assert sorted((item.sku.part_number, item.seats) for item in response.context["allotments"]) == [
        ("EMS", 2), ("SPE_E3", 4)
    ]
    assert response.context["allotted_seats"] == 6
    assert [grant.user.get_username() for grant in response.context["grants"]] == ["legal-manager"]
    assert response.context["seat_requests"] == [legal_request]
    assert 'id="release-form"' in content


def test_inactive_pool_hidden_from_delegates(client, department_scheme, admin, legal, legal_manager):
    apply_country(department_scheme, admin)
    client.force_login(legal_manager)

    assert client.get(reverse("pools:pool", kwargs={"pool_pk": legal.pk})).status_code == 404
    assert client.post(
        reverse("pools:pool_release_allotments", kwargs={"pool_pk": legal.pk}), {"confirm": "1"}
    ).status_code == 404
    assert Allotment.objects.filter(pool=legal).count() == 2


def test_tenant_page_links_stranded_pools(admin_client, department_scheme, admin, legal):
    apply_country(department_scheme, admin)

    response = admin_client.get(reverse("pools:tenant", kwargs={"tenant_pk": department_scheme.pk}))

    assert list(response.context["stranded_pools"]) == [legal]
    assert reverse("pools:pool", kwargs={"pool_pk": legal.pk}) in response.content.decode()


# Releasing allotments


def test_release_allotments(admin_client, department_scheme, admin, legal):
    apply_country(department_scheme, admin)
    url = reverse("pools:pool_release_allotments", kwargs={"pool_pk": legal.pk})
    events_before = AuditEvent.objects.filter(action=AuditAction.ALLOTMENT_CHANGED).count()

    response = admin_client.post(url, {"confirm": "1"}, follow=True)

    assert messages_of(response) == ["Released 2 allotments of Legal (6 seats) to the reserve."]
    assert Allotment.objects.filter(pool=legal).count() == 0
    events = AuditEvent.objects.filter(action=AuditAction.ALLOTMENT_CHANGED, pool=legal).order_by("-pk")[:2]
    assert AuditEvent.objects.filter(action=AuditAction.ALLOTMENT_CHANGED).count() == events_before + 2
    assert sorted(event.before["seats"] for event in events) == [2, 4]
    assert [event.after["seats"] for event in events] == [None, None]
    assert [event.outcome for event in events] == [Outcome.SUCCEEDED, Outcome.SUCCEEDED]
    assert 'id="release-form"' not in response.content.decode()
    assert "This pool has no allotments." in response.content.decode()


def test_release_requires_confirmation(admin_client, department_scheme, admin, legal):
    apply_country(department_scheme, admin)

    response = admin_client.post(reverse("pools:pool_release_allotments", kwargs={"pool_pk": legal.pk}), follow=True)

    assert messages_of(response) == ["Nothing was released. Tick the box to confirm, then click Release allotments."]
    assert Allotment.objects.filter(pool=legal).count() == 2


def test_release_active_pool_not_found(admin_client, department_scheme, legal):
    response = admin_client.post(
        reverse("pools:pool_release_allotments", kwargs={"pool_pk": legal.pk}), {"confirm": "1"}
    )

    assert response.status_code == 404
    assert Allotment.objects.filter(pool=legal).count() == 2


# Switching back


def test_switch_back_restores_pool(client, department_scheme, admin, legal, legal_manager, legal_request):
    apply_country(department_scheme, admin)
    preview = preview_scheme(acting_user=admin, tenant=department_scheme, level1_attribute=PoolAttribute.DEPARTMENT)

    apply_scheme(
        acting_user=admin, tenant=department_scheme, level1_attribute=PoolAttribute.DEPARTMENT, token=preview.token
    )

    legal.refresh_from_db()
    legal_request.refresh_from_db()
    client.force_login(legal_manager)
    assert legal.is_active is True
    assert sorted(Allotment.objects.filter(pool=legal).values_list("seats", flat=True)) == [2, 4]
    assert legal_request.status == RequestStatus.PENDING
    assert client.get(reverse("pools:pool", kwargs={"pool_pk": legal.pk})).status_code == 200
    assert preview.delegates == []
    assert preview.pending_requests == []
