"""Seat requests: pool managers ask, tenant administrators approve out of the central reserve or decline,
both sides get e-mail, and every step is audited."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.http import Http404
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from graphsync.models import Sku
from pools.choices import AuditAction, PoolAttribute, RequestStatus
from pools.models import Allotment, AuditEvent, Pool, SeatRequest
from pools.seat_requests import (
    SeatRequestError, approve_request, create_request, decline_request, tenant_administrators, withdraw_request,
)
from pools.capacity import describe_reserve
from pools.services import set_allotment, set_scheme
from pools.stock import central_reserve, holders

PASSWORD = "correct-horse-42"


@pytest.fixture
def admin(make_portal_user, synced_tenant):
    user = make_portal_user("admin", role="tenant_admin", tenant=synced_tenant)
    user.email = "admin@example.com"
    user.save(update_fields=["email"])
    return user


@pytest.fixture
def us(synced_tenant, admin, require_postgresql) -> Pool:
    set_scheme(
        acting_user=admin, tenant=synced_tenant, level1_attribute=PoolAttribute.COUNTRY,
        level2_attribute=PoolAttribute.DEPARTMENT,
    )
    return Pool.objects.get(tenant=synced_tenant, parent=None, key="us")


@pytest.fixture
def manager(make_portal_user, us):
    user = make_portal_user("manager", role="pool_manager", pool=us)
    user.email = "manager@example.com"
    user.save(update_fields=["email"])
    return user


@pytest.fixture
def e3(synced_tenant) -> Sku:
    return Sku.objects.get(tenant=synced_tenant, part_number="SPE_E3")


def seats(pool, sku) -> int | None:
    allotment = Allotment.objects.filter(pool=pool, sku=sku).first()
    return allotment.seats if allotment else None


def ask(manager, pool, sku, quantity=5, reason="New hires in March") -> SeatRequest:
    return create_request(acting_user=manager, pool=pool, sku=sku, quantity=quantity, reason=reason)


def test_request_mails_administrators(synced_tenant, admin, manager, us, e3, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        seat_request = ask(manager, us, e3)

    assert seat_request.status == RequestStatus.PENDING
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["admin@example.com"]
    assert message.subject == f"Seat request: 5 × {e3.name} for US"
    assert "manager asks for 5 more seats" in message.body
    assert "Reason: New hires in March" in message.body
    assert f"/tenants/{synced_tenant.pk}/requests/" in message.body
    event = AuditEvent.objects.get(action=AuditAction.REQUEST_CREATED)
    assert event.actor == manager
    assert event.after == {"request": seat_request.pk, "quantity": 5, "reason": "New hires in March"}


def test_administrators_found_through_groups(synced_tenant, admin, make_portal_user):
    member = make_portal_user("groupadmin")
    group = Group.objects.create(name="IT admins")
    member.groups.add(group)
    assign_perm("graphsync.administer_tenant", group, synced_tenant)
    make_portal_user("auditor", role="auditor", tenant=synced_tenant)

    assert [user.username for user in tenant_administrators(synced_tenant)] == ["admin", "groupadmin"]


def test_request_validated(manager, us, e3):
    with pytest.raises(SeatRequestError) as caught:
        ask(manager, us, e3, quantity=0)
    assert caught.value.message == "Request at least 1 seat; 0 was given."

    with pytest.raises(SeatRequestError) as caught:
        ask(manager, us, e3, reason="   ")
    assert caught.value.message == "Give a reason, so that the tenant administrators can decide the request."
    assert not SeatRequest.objects.exists()


def test_operator_cannot_request(synced_tenant, us, e3, make_portal_user):
    operator = make_portal_user("operator", role="license_operator", pool=us)
    outsider = make_portal_user("outsider", role="pool_manager", pool=Pool.objects.get(tenant=synced_tenant, key="de"))

    for user in (operator, outsider):
        with pytest.raises(Http404):
            ask(user, us, e3)


def test_approve_raises_allotment(admin, manager, us, e3, django_capture_on_commit_callbacks):
    set_allotment(acting_user=admin, pool=us, sku=e3, seats=10)
    seat_request = ask(manager, us, e3, quantity=5)

    with django_capture_on_commit_callbacks(execute=True):
        approve_request(acting_user=admin, seat_request=seat_request, note="Go ahead")

    assert seats(us, e3) == 15
    seat_request.refresh_from_db()
    assert seat_request.status == RequestStatus.APPROVED
    assert seat_request.decided_by == admin
    assert seat_request.decided_at is not None
    assert [message.to for message in mail.outbox] == [["manager@example.com"]]
    assert mail.outbox[0].subject == f"Approved: 5 × {e3.name} for US"
    assert "Note: Go ahead" in mail.outbox[0].body
    event = AuditEvent.objects.get(action=AuditAction.REQUEST_APPROVED)
    assert event.before == {"allotments": {str(us.pk): 10}}
    assert event.after["allotments"] == {str(us.pk): 15}


def test_approve_level2_raises_parent(admin, us, e3, make_portal_user):
    sales = Pool.objects.get(parent=us, key="sales")
    sales_manager = make_portal_user("salesmanager", role="pool_manager", pool=sales)
    set_allotment(acting_user=admin, pool=us, sku=e3, seats=10)
    set_allotment(acting_user=admin, pool=sales, sku=e3, seats=8)
    seat_request = ask(sales_manager, sales, e3, quantity=4)

    approve_request(acting_user=admin, seat_request=seat_request)

    assert seats(sales, e3) == 12
    assert seats(us, e3) == 12


def test_approve_beyond_reserve_rejected(synced_tenant, admin, manager, us, e3):
    germany = Pool.objects.get(tenant=synced_tenant, parent=None, key="de")
    germany_holders = holders(synced_tenant, e3, germany.subtree_ids())
    us_holders = holders(synced_tenant, e3, us.subtree_ids())
    set_allotment(acting_user=admin, pool=us, sku=e3, seats=us_holders)
    room = central_reserve(synced_tenant, e3).seats
    set_allotment(acting_user=admin, pool=germany, sku=e3, seats=germany_holders + room - 3)
    central = central_reserve(synced_tenant, e3)
    assert central.seats == 3
    seat_request = ask(manager, us, e3, quantity=4)

    with pytest.raises(SeatRequestError) as caught:
        approve_request(acting_user=admin, seat_request=seat_request)

    assert caught.value.message == (
        f"Cannot approve 4 seats of {e3.name} for US: this needs 4 seats from the central reserve, which has 3: "
        f"{describe_reserve(central)}. Buy more seats, lower another pool's unused allotment, or decline the request."
    )
    assert seats(us, e3) == us_holders
    seat_request.refresh_from_db()
    assert seat_request.status == RequestStatus.PENDING
    assert not AuditEvent.objects.filter(action=AuditAction.REQUEST_APPROVED).exists()


def test_decline_needs_reason(admin, manager, us, e3, django_capture_on_commit_callbacks):
    seat_request = ask(manager, us, e3)

    with pytest.raises(SeatRequestError) as caught:
        decline_request(acting_user=admin, seat_request=seat_request, reason=" ")
    assert caught.value.message == "Give a reason for declining, so that the requester knows what to do next."

    with django_capture_on_commit_callbacks(execute=True):
        decline_request(acting_user=admin, seat_request=seat_request, reason="Budget frozen until Q3")

    seat_request.refresh_from_db()
    assert seat_request.status == RequestStatus.DECLINED
    assert seat_request.decision_reason == "Budget frozen until Q3"
    assert mail.outbox[-1].to == ["manager@example.com"]
    assert mail.outbox[-1].subject == f"Declined: 5 × {e3.name} for US"
    assert "Reason: Budget frozen until Q3" in mail.outbox[-1].body
    assert AuditEvent.objects.get(action=AuditAction.REQUEST_DECLINED).after["reason"] == "Budget frozen until Q3"


def test_second_decision_rejected(admin, manager, us, e3, make_portal_user):
    other_admin = make_portal_user("admin2", role="tenant_admin", tenant=us.tenant)
    seat_request = ask(manager, us, e3, quantity=1)
    approve_request(acting_user=admin, seat_request=seat_request)

    with pytest.raises(SeatRequestError) as caught:
        decline_request(acting_user=other_admin, seat_request=seat_request, reason="No")
    assert caught.value.message == "This request is already approved (by admin); it can no longer be changed."

    with pytest.raises(SeatRequestError):
        approve_request(acting_user=other_admin, seat_request=seat_request)
    assert seats(us, e3) == 1


def test_withdraw_own_request_only(admin, manager, us, e3, make_portal_user):
    colleague = make_portal_user("colleague", role="pool_manager", pool=us)
    seat_request = ask(manager, us, e3)

    with pytest.raises(SeatRequestError) as caught:
        withdraw_request(acting_user=colleague, seat_request=seat_request)
    assert caught.value.message == "Only the user who made a request can withdraw it."

    withdraw_request(acting_user=manager, seat_request=seat_request)
    seat_request.refresh_from_db()
    assert seat_request.status == RequestStatus.WITHDRAWN
    assert AuditEvent.objects.filter(action=AuditAction.REQUEST_WITHDRAWN, actor=manager).count() == 1
    with pytest.raises(SeatRequestError):
        approve_request(acting_user=admin, seat_request=seat_request)


def test_manager_cannot_decide(manager, us, e3):
    seat_request = ask(manager, us, e3)

    with pytest.raises(Http404):
        approve_request(acting_user=manager, seat_request=seat_request)


# Pages


def login(client, user):
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_request_page_flow(client, synced_tenant, admin, manager, us, e3):
    login(client, manager)
    response = client.post(f"/pools/{us.pk}/requests/", {"sku": e3.pk, "quantity": 3, "reason": "Interns"}, follow=True)
    assert response.status_code == 200
    assert "Sent the request for 3 seats" in response.content.decode()
    seat_request = SeatRequest.objects.get()
    assert "Pending" in response.content.decode()

    invalid = client.post(f"/pools/{us.pk}/requests/", {"sku": e3.pk, "quantity": 0, "reason": ""})
    assert invalid.status_code == 200
    assert SeatRequest.objects.count() == 1
    assert client.get(f"/tenants/{synced_tenant.pk}/requests/").status_code == 404

    login(client, admin)
    tenant_page = client.get(f"/tenants/{synced_tenant.pk}/").content.decode()
    assert f'href="/tenants/{synced_tenant.pk}/requests/" id="seat-requests-link">Seat requests <span class="badge"' in tenant_page
    requests_page = client.get(f"/tenants/{synced_tenant.pk}/requests/")
    assert [item.pk for item in requests_page.context["pending"]] == [seat_request.pk]

    declined = client.post(f"/requests/{seat_request.pk}/decline/", {"reason": ""}, follow=True)
    assert "Give a reason for declining" in declined.content.decode()
    client.post(f"/requests/{seat_request.pk}/approve/", {"reason": ""})
    seat_request.refresh_from_db()
    assert seat_request.status == RequestStatus.APPROVED
    assert seats(us, e3) == 3
    again = client.post(f"/requests/{seat_request.pk}/decline/", {"reason": "late"}, follow=True)
    assert "already approved" in again.content.decode()


def test_decision_note_without_requester_email(
    client, synced_tenant, admin, manager, us, e3, make_portal_user, django_capture_on_commit_callbacks
):
    germany = Pool.objects.get(tenant=synced_tenant, parent=None, key="de")
    without_address = make_portal_user("no-mail-manager", role="pool_manager", pool=germany)
    mailed = ask(manager, us, e3)
    not_mailed = ask(without_address, germany, e3)
    login(client, admin)

    page = client.get(f"/tenants/{synced_tenant.pk}/requests/")

    forms = {item.pk: item.decision_form for item in page.context["pending"]}
    assert forms[mailed.pk]["reason"].help_text == (
        "Required when you decline. The requester receives the decision and this text by e-mail."
    )
    assert forms[not_mailed.pk]["reason"].help_text == (
        "Required when you decline. no-mail-manager has no e-mail address, so no e-mail is sent; they see the "
        "decision and this text on the pool's seat requests page."
    )
    assert "no-mail-manager has no e-mail address" in page.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/requests/{not_mailed.pk}/decline/", {"reason": "Budget is spent"})
    assert mail.outbox == []
    login(client, without_address)
    own_page = client.get(f"/pools/{germany.pk}/requests/").content.decode()
    assert "Budget is spent" in own_page


def test_api_seat_requests(synced_tenant, admin, manager, us, e3, make_portal_user):
    api = APIClient()
    api.force_authenticate(manager)
    created = api.post(
        "/api/v1/seat-requests/", {"pool": us.pk, "skuId": str(e3.sku_id), "quantity": 2, "reason": "Contractors"},
        format="json",
    )
    assert created.status_code == 201, created.content
    request_id = created.json()["id"]
    assert created.json()["status"] == "pending"
    assert api.post(f"/api/v1/seat-requests/{request_id}/approve/", {}, format="json").status_code == 404

    outsider = make_portal_user("outsider", role="pool_manager", pool=Pool.objects.get(tenant=synced_tenant, key="de"))
    api.force_authenticate(outsider)
    assert api.get("/api/v1/seat-requests/").json()["count"] == 0
    assert api.get(f"/api/v1/seat-requests/{request_id}/").status_code == 404

    api.force_authenticate(admin)
    assert api.get("/api/v1/seat-requests/", {"status": "pending"}).json()["count"] == 1
    declined = api.post(f"/api/v1/seat-requests/{request_id}/decline/", {"reason": ""}, format="json")
    assert declined.status_code == 409
    assert declined.json()["detail"] == "Give a reason for declining, so that the requester knows what to do next."
    approved = api.post(f"/api/v1/seat-requests/{request_id}/approve/", {}, format="json")
    assert approved.status_code == 200
    assert approved.json()["status"] == "approved"
    assert api.post(f"/api/v1/seat-requests/{request_id}/approve/", {}, format="json").status_code == 409
    assert seats(us, e3) == 2


def test_duplicate_pending_request_rejected(manager, us, e3):
    first = ask(manager, us, e3, quantity=5)

    with pytest.raises(SeatRequestError) as caught:
        ask(manager, us, e3, quantity=5)

    message = caught.value.message
    assert message.startswith(f"US already has a pending request (ID {first.pk}) for 5 seats of {e3.name}, made on ")
    assert message.endswith(
        f"by {manager.get_username()}. A pool has one pending request per SKU: wait for the tenant administrators "
        "to decide it, or withdraw it and request the seats you need now."
    )
    assert SeatRequest.objects.count() == 1


def test_new_request_allowed_after_withdrawal(manager, us, e3):
    first = ask(manager, us, e3, quantity=5)
    withdraw_request(acting_user=manager, seat_request=first)

    second = ask(manager, us, e3, quantity=8)

    assert second.status == RequestStatus.PENDING
    assert SeatRequest.objects.filter(status=RequestStatus.PENDING).get() == second


def test_concurrent_duplicate_request_rejected(manager, us, e3, monkeypatch):
    """A submit that passed the check before another one committed is stopped by the partial unique constraint."""
    import pools.seat_requests as seat_requests_module

    first = ask(manager, us, e3, quantity=2)
    check = seat_requests_module._check_no_pending_request
    calls = []

    def check_after_first_call(pool, sku):
        calls.append(pool)
        if len(calls) > 1:
            check(pool, sku)

    monkeypatch.setattr(seat_requests_module, "_check_no_pending_request", check_after_first_call)
    with pytest.raises(SeatRequestError) as caught:
        ask(manager, us, e3, quantity=2)

    assert f"pending request (ID {first.pk})" in caught.value.message
    assert SeatRequest.objects.count() == 1


def test_api_repeated_request_rejected(manager, us, e3):
    api = APIClient()
    api.force_authenticate(manager)
    body = {"pool": us.pk, "skuId": str(e3.sku_id), "quantity": 2, "reason": "Contractors"}

    assert api.post("/api/v1/seat-requests/", body, format="json").status_code == 201
    again = api.post("/api/v1/seat-requests/", body, format="json")

    assert again.status_code == 400
    assert "already has a pending request" in again.json()["detail"]
    assert SeatRequest.objects.count() == 1
