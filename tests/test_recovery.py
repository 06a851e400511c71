"""Seat recovery: reclaim candidates, thresholds, exemptions, reclaiming, scoping, against the Graph emulator."""
from __future__ import annotations

import datetime as dt
import time

import pytest
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from conftest import sync_now
from graphsync.models import DirectoryUser, Sku
from graphsync.testing import control
from pools import recovery, stock
from pools.bulk import run_bulk_job
from pools.choices import AuditAction, BulkItemStatus, BulkJobKind, BulkJobStatus, Outcome, PoolAttribute
from pools.exceptions import AssignmentRejected, GraphRejected
from pools.models import AuditEvent, BulkJob, LicenseExemption, Pool, TenantPolicy
from pools.reclaim_jobs import create_reclaim_job
from pools.services import set_allotment, set_scheme
from rbac.choices import Role

DISABLED = "georg.aberg.10@"
INACTIVE = "bjorn.lefevre.27@"
ANY_KIND = "tomas.evans.34@"
NEVER = "quentin.tanaka.41@"
NEW = "siobhan.evans.19@"
REDUNDANT = "xavier.vogel.28@"
PARTIAL = "wei.hansen.37@"
GROUP = "pawel.zimmermann.6@"

STATEMENT = (
    "Sign-in data is unavailable for this tenant: Microsoft Graph returns signInActivity only to tenants with "
    "Microsoft Entra ID P1 or P2 and an app with AuditLog.Read.All. Disabled accounts and redundant licenses are "
    "still listed."
)
DISABLED_REASON = "The account is disabled in Entra ID but still holds licenses."
REDUNDANT_REASON = "Every enabled service plan of Office 365 E3 is also in Microsoft 365 E3, which the user holds too."
GROUP_SKIP = (
    "Microsoft 365 E3 comes from the group License - Microsoft 365 E3, so it cannot be reclaimed directly. Remove the "
    "user from the group, or the license from the group, in Entra ID."
)

START = timezone.now()


def ago(days: int) -> str:
    return (START - dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def signed_in(interactive: int | None, non_interactive: int | None, successful: int | None) -> dict:
    return {
        "lastSignInDateTime": ago(interactive) if interactive is not None else None,
        "lastNonInteractiveSignInDateTime": ago(non_interactive) if non_interactive is not None else None,
        "lastSuccessfulSignInDateTime": ago(successful) if successful is not None else None,
    }


@pytest.fixture
def premium() -> bool:
    return True


@pytest.fixture
def emulator_snapshot(premium):
    """60 generated users, all enabled and signed in yesterday, so that no one is a candidate until a test makes one."""
    from graphsync.emulator.generator import generate_tenant

    snapshot = generate_tenant(users=60, seed=7)
    snapshot["premium"] = premium
    for user in snapshot["users"]:
        user["accountEnabled"] = True
        user["signInActivity"] = signed_in(1, 1, 1)
    return snapshot


def graph_id(snapshot: dict, prefix: str) -> str:
    return next(user["id"] for user in snapshot["users"] if user["userPrincipalName"].startswith(prefix))


def sku_id(snapshot: dict, part_number: str) -> str:
    return next(sku["skuId"] for sku in snapshot["subscribedSkus"] if sku["skuPartNumber"] == part_number)


def plan_id(snapshot: dict, part_number: str, plan_name: str) -> str:
    sku = next(sku for sku in snapshot["subscribedSkus"] if sku["skuPartNumber"] == part_number)
    return next(plan["servicePlanId"] for plan in sku["servicePlans"] if plan["servicePlanName"] == plan_name)


def patch_user(emulator, tenant, snapshot: dict, prefix: str, body: dict) -> None:
    control(emulator, "PATCH", f"tenants/{tenant.tenant_id}/users/{graph_id(snapshot, prefix)}", body)


def graph_skus(emulator, tenant, snapshot: dict, prefix: str) -> set[str]:
    user = control(emulator, "GET", f"tenants/{tenant.tenant_id}/users/{graph_id(snapshot, prefix)}")
    return {item["skuId"].lower() for item in user["assignedLicenses"]}


def member(tenant, prefix: str) -> DirectoryUser:
    return DirectoryUser.objects.get(tenant=tenant, user_principal_name__startswith=prefix)


@pytest.fixture
def scenario(emulator, tenant, emulator_snapshot, require_postgresql):
    """Turn some users into candidates through the emulator's control interface, then sync."""
    snapshot = emulator_snapshot
    patch_user(emulator, tenant, snapshot, DISABLED, {"accountEnabled": False})
    patch_user(emulator, tenant, snapshot, INACTIVE, {"signInActivity": signed_in(200, 120, None)})
    patch_user(emulator, tenant, snapshot, ANY_KIND, {"signInActivity": signed_in(300, 5, 300)})
    patch_user(emulator, tenant, snapshot, NEVER, {"signInActivity": None, "createdDateTime": ago(200)})
    patch_user(emulator, tenant, snapshot, NEW, {"signInActivity": None, "createdDateTime": ago(10)})
    patch_user(emulator, tenant, snapshot, GROUP, {"accountEnabled": False})
    e3 = sku_id(snapshot, "SPE_E3")
    control(emulator, "POST", f"tenants/{tenant.tenant_id}/users/{graph_id(snapshot, REDUNDANT)}/licenses", {
        "addLicenses": [{"skuId": e3, "disabledPlans": []}], "removeLicenses": [],
    })
    # Sway is in both SKUs; disabled in Microsoft 365 E3, it is enabled only in Office 365 E3.
    control(emulator, "POST", f"tenants/{tenant.tenant_id}/users/{graph_id(snapshot, PARTIAL)}/licenses", {
        "addLicenses": [{"skuId": e3, "disabledPlans": [plan_id(snapshot, "SPE_E3", "SWAY")]}], "removeLicenses": [],
    })
    sync_now(tenant)
    return tenant


@pytest.fixture
def admin(make_portal_user, scenario):
    return make_portal_user("admin", role=Role.TENANT_ADMIN, tenant=scenario)


@pytest.fixture
def pool(scenario, admin) -> Pool:
    """One pool holding every user: the scheme splits on the UPN domain, which all users share."""
    set_scheme(acting_user=admin, tenant=scenario, level1_attribute=PoolAttribute.UPN_DOMAIN)
    return Pool.objects.get(tenant=scenario, parent=None, is_unassigned=False)


@pytest.fixture
def manager(make_portal_user, pool):
    return make_portal_user("manager", role=Role.POOL_MANAGER, pool=pool)


@pytest.fixture
def other_manager(make_portal_user, pool):
    """The manager of the tenant's Unassigned pool, which contains none of the candidates."""
    unassigned = Pool.objects.get(tenant=pool.tenant, is_unassigned=True)
    return make_portal_user("other-manager", role=Role.POOL_MANAGER, pool=unassigned)


def by_upn(candidates) -> dict[str, recovery.Candidate]:
    return {candidate.user.user_principal_name.split("@")[0] + "@": candidate for candidate in candidates}


def messages_of(candidate: recovery.Candidate) -> list[str]:
    return [reason.message for reason in candidate.reasons]


def spare(pool: Pool, part_number: str) -> int:
    return next(line.spare for line in stock.pool_lines(pool) if line.sku.part_number == part_number)


# Candidates


def test_candidate_reasons(scenario, pool):
    report = recovery.pool_report(pool)
    candidates = by_upn(report.candidates)

    assert set(candidates) == {DISABLED, INACTIVE, NEVER, REDUNDANT, GROUP}
    assert messages_of(candidates[DISABLED]) == [DISABLED_REASON]
    assert messages_of(candidates[INACTIVE]) == ["No sign-in of any kind for 120 days; the threshold is 90 days."]
    assert candidates[INACTIVE].days_inactive == 120
    assert candidates[INACTIVE].last_sign_in == member(scenario, INACTIVE).last_non_interactive_sign_in_at
    assert messages_of(candidates[NEVER]) == [
        "Never signed in; the account was created 200 days ago and the threshold is 90 days."
    ]
    assert candidates[NEVER].last_sign_in is None
    assert messages_of(candidates[REDUNDANT]) == [REDUNDANT_REASON]
    assert messages_of(candidates[GROUP]) == [DISABLED_REASON]
    assert report.threshold == recovery.Threshold(90, recovery.ThresholdSource.TENANT)
    assert report.statement == ""


def test_candidate_licenses(scenario, pool):
    candidates = by_upn(recovery.pool_report(pool).candidates)

    redundant = {held.sku.part_number: held for held in candidates[REDUNDANT].licenses}
    assert redundant["ENTERPRISEPACK"].reclaimable is True
    assert redundant["ENTERPRISEPACK"].redundant_with.part_number == "SPE_E3"
    assert redundant["SPE_E3"].reclaimable is False
    assert redundant["SPE_E3"].skip_message == "Kept: only the redundant license is reclaimed."

    group = {held.sku.part_number: held for held in candidates[GROUP].licenses}
    assert group["SPE_E3"].direct is False
    assert group["SPE_E3"].group_names == ["License - Microsoft 365 E3"]
    assert group["SPE_E3"].reclaimable is False
    assert group["SPE_E3"].skip_message == GROUP_SKIP
    assert group["FLOW_FREE"].direct is True
    assert group["FLOW_FREE"].reclaimable is True


def test_disabled_plan_not_redundant(scenario, pool):
    user = member(scenario, PARTIAL)

    assert set(user.licenses.values_list("sku__part_number", flat=True)) == {"ENTERPRISEPACK", "SPE_E3"}
    assert recovery.evaluate_user(pool, user) is None


def test_redundant_equal_plans_keeps_one(scenario):
    first = Sku(pk=1, part_number="A_PLANS", service_plans=[{}] * 3)
    second = Sku(pk=2, part_number="B_PLANS", service_plans=[{}] * 3)
    plans = frozenset({"p1", "p2"})

    redundant = recovery.redundant_skus({1: (first, plans), 2: (second, plans)})

    assert redundant == {1: second}


# Thresholds


def test_pool_threshold(scenario, pool):
    pool.inactivity_threshold_days = 150
    pool.save(update_fields=["inactivity_threshold_days"])

    report = recovery.pool_report(pool)
    candidates = by_upn(report.candidates)

    assert INACTIVE not in candidates
    assert messages_of(candidates[NEVER]) == [
        "Never signed in; the account was created 200 days ago and the threshold is 150 days."
    ]
    assert report.threshold == recovery.Threshold(150, recovery.ThresholdSource.POOL, pool)


def test_parent_and_tenant_thresholds(scenario, admin):
    set_scheme(
        acting_user=admin, tenant=scenario, level1_attribute=PoolAttribute.UPN_DOMAIN,
        level2_attribute=PoolAttribute.DEPARTMENT,
    )
    user = member(scenario, INACTIVE)
    child = user.pool
    parent = child.parent
    assert parent is not None

    policy = TenantPolicy.for_tenant(scenario)
    policy.inactivity_threshold_days = 60
    policy.save(update_fields=["inactivity_threshold_days"])
    assert messages_of(recovery.evaluate_user(parent, user)) == [
        "No sign-in of any kind for 120 days; the threshold is 60 days."
    ]

    parent.inactivity_threshold_days = 100
    parent.save(update_fields=["inactivity_threshold_days"])
    assert messages_of(recovery.evaluate_user(parent, user)) == [
        "No sign-in of any kind for 120 days; the threshold is 100 days."
    ]
    assert recovery.pool_report(child).threshold == recovery.Threshold(100, recovery.ThresholdSource.PARENT, parent)

    child.inactivity_threshold_days = 130
    child.save(update_fields=["inactivity_threshold_days"])
    assert recovery.evaluate_user(parent, user) is None
    assert INACTIVE not in by_upn(recovery.pool_report(parent).candidates)
    assert INACTIVE not in by_upn(recovery.pool_report(child).candidates)


# Exemptions


def test_exemption_hides_candidate(scenario, pool, manager):
    user = member(scenario, DISABLED)

    recovery.add_exemption(acting_user=manager, pool=pool, user=user, reason="  Shared mailbox   of the front desk ")

    report = recovery.pool_report(pool)
    assert DISABLED not in by_upn(report.candidates)
    assert messages_of(by_upn(report.exempted)[DISABLED]) == [DISABLED_REASON]
    assert [exemption.user for exemption in report.exemptions] == [user]
    assert LicenseExemption.objects.get(user=user).reason == "Shared mailbox of the front desk"
    event = AuditEvent.objects.get(action=AuditAction.EXEMPTION_ADDED)
    assert event.actor == manager
    assert event.target_user == user
    assert event.after == {"reason": "Shared mailbox of the front desk"}

    with pytest.raises(recovery.ExemptionExists) as caught:
        recovery.add_exemption(acting_user=manager, pool=pool, user=user, reason="Service account")
    assert caught.value.message == (
        "georg.aberg.10@contoso7.onmicrosoft.com is already exempt: Shared mailbox of the front desk. Remove that "
        "exemption first to change its reason."
    )

    recovery.remove_exemption(acting_user=manager, pool=pool, user=user)

    assert DISABLED in by_upn(recovery.pool_report(pool).candidates)
    removed = AuditEvent.objects.get(action=AuditAction.EXEMPTION_REMOVED)
    assert removed.before["reason"] == "Shared mailbox of the front desk"
    assert removed.before["createdBy"] == "manager"
    with pytest.raises(Http404):
        recovery.remove_exemption(acting_user=manager, pool=pool, user=user)


def test_exemption_needs_reason(scenario, pool, manager):
    with pytest.raises(recovery.RecoveryError) as caught:
        recovery.add_exemption(acting_user=manager, pool=pool, user=member(scenario, DISABLED), reason="   ")

    assert caught.value.message == (
        "Give a reason for the exemption, such as \"service account\" or \"shared mailbox\"."
    )
    assert not LicenseExemption.objects.exists()


def test_reclaim_exempt_rejected(emulator, scenario, emulator_snapshot, pool, manager):
    user = member(scenario, DISABLED)
    e3 = Sku.objects.get(tenant=scenario, part_number="SPE_E3")
    recovery.add_exemption(acting_user=manager, pool=pool, user=user, reason="Service account")

    with pytest.raises(AssignmentRejected) as caught:
        recovery.reclaim_license(acting_user=manager, pool=pool, user=user, sku=e3)

    assert caught.value.message == (
        "georg.aberg.10@contoso7.onmicrosoft.com is exempt from reclaiming: Service account. Remove the exemption first."
    )
    assert str(e3.sku_id) in graph_skus(emulator, scenario, emulator_snapshot, DISABLED)
    event = AuditEvent.objects.get(action=AuditAction.LICENSE_RECLAIMED)
    assert event.outcome == Outcome.REJECTED


# Tenants without Entra ID P1/P2


@pytest.mark.parametrize("premium", [False])
def test_non_premium_statement(scenario, pool, manager, client):
    report = recovery.pool_report(pool)

    assert scenario.sign_in_activity_available is False
    assert report.statement == STATEMENT
    candidates = by_upn(report.candidates)
    assert set(candidates) == {DISABLED, REDUNDANT, GROUP}
    assert messages_of(candidates[REDUNDANT]) == [REDUNDANT_REASON]
    assert messages_of(candidates[DISABLED]) == [DISABLED_REASON]

    client.force_login(manager)
    page = client.get(reverse("pools:pool_recovery", kwargs={"pool_pk": pool.pk}))
    assert page.status_code == 200
    assert STATEMENT in page.content.decode()
    assert REDUNDANT_REASON in page.content.decode()


# Reclaiming


def test_reclaim_one(emulator, scenario, emulator_snapshot, admin, pool, manager):
    user = member(scenario, INACTIVE)
    e3 = Sku.objects.get(tenant=scenario, part_number="SPE_E3")
    set_allotment(acting_user=admin, pool=pool, sku=e3, seats=40)
    spare_before = spare(pool, "SPE_E3")

    event = recovery.reclaim_license(acting_user=manager, pool=pool, user=user, sku=e3)

    assert str(e3.sku_id) not in graph_skus(emulator, scenario, emulator_snapshot, INACTIVE)
    assert spare(pool, "SPE_E3") == spare_before + 1
    assert event.action == AuditAction.LICENSE_RECLAIMED
    assert event.outcome == Outcome.SUCCEEDED
    assert event.message == "No sign-in of any kind for 120 days; the threshold is 90 days."
    assert event.before == {"skuId": str(e3.sku_id), "disabledPlans": [], "reasons": ["inactive"]}
    assert event.graph_request_id
    assert list(AuditEvent.objects.filter(target_user=user).values_list("action", flat=True)) == [
        AuditAction.LICENSE_RECLAIMED
    ]
    assert INACTIVE not in by_upn(recovery.pool_report(pool).candidates)


def test_reclaim_graph_failure_one_event(emulator, scenario, emulator_snapshot, pool, manager):
    user = member(scenario, DISABLED)
    e3 = Sku.objects.get(tenant=scenario, part_number="SPE_E3")
    control(emulator, "DELETE", f"tenants/{scenario.tenant_id}/users/{user.user_id}")

    with pytest.raises(GraphRejected) as caught:
        recovery.reclaim_license(acting_user=manager, pool=pool, user=user, sku=e3)

    events = list(AuditEvent.objects.filter(target_user=user))
    assert [(event.action, event.outcome) for event in events] == [(AuditAction.LICENSE_RECLAIMED, Outcome.FAILED)]
    assert events[0].message == caught.value.message
    assert events[0].before == {"skuId": str(e3.sku_id), "reasons": ["disabled"]}
    assert events[0].graph_request_id == caught.value.request_id


def test_reclaim_redundant_keeps_cover(emulator, scenario, emulator_snapshot, pool, manager):
    user = member(scenario, REDUNDANT)
    o365 = Sku.objects.get(tenant=scenario, part_number="ENTERPRISEPACK")
    m365 = Sku.objects.get(tenant=scenario, part_number="SPE_E3")

    with pytest.raises(AssignmentRejected) as caught:
        recovery.reclaim_license(acting_user=manager, pool=pool, user=user, sku=m365)
    assert caught.value.message == (
        "Microsoft 365 E3 of xavier.vogel.28@contoso7.onmicrosoft.com is not reclaimed. Kept: only the redundant "
        "license is reclaimed."
    )

    event = recovery.reclaim_license(acting_user=manager, pool=pool, user=user, sku=o365)

    assert event.message == REDUNDANT_REASON
    held = graph_skus(emulator, scenario, emulator_snapshot, REDUNDANT)
    assert str(o365.sku_id) not in held
    assert str(m365.sku_id) in held
    assert recovery.evaluate_user(pool, user) is None


def test_group_license_skipped(emulator, scenario, emulator_snapshot, pool, manager):
    user = member(scenario, GROUP)
    e3 = Sku.objects.get(tenant=scenario, part_number="SPE_E3")

    with pytest.raises(AssignmentRejected) as caught:
        recovery.reclaim_license(acting_user=manager, pool=pool, user=user, sku=e3)

    assert caught.value.message == f"Microsoft 365 E3 of pawel.zimmermann.6@contoso7.onmicrosoft.com is not reclaimed. {GROUP_SKIP}"
    assert str(e3.sku_id) in graph_skus(emulator, scenario, emulator_snapshot, GROUP)
    assert AuditEvent.objects.get(action=AuditAction.LICENSE_RECLAIMED).outcome == Outcome.REJECTED
    assert not AuditEvent.objects.filter(action=AuditAction.LICENSE_REVOKED).exists()


def test_reclaim_after_sign_in_rejected(emulator, scenario, emulator_snapshot, pool, manager):
    user = member(scenario, INACTIVE)
    e3 = Sku.objects.get(tenant=scenario, part_number="SPE_E3")
    patch_user(emulator, scenario, emulator_snapshot, INACTIVE, {"signInActivity": signed_in(2, 2, 2)})
    sync_now(scenario)

    with pytest.raises(AssignmentRejected) as caught:
        recovery.reclaim_license(acting_user=manager, pool=pool, user=user, sku=e3)

    assert caught.value.message == (
        "bjorn.lefevre.27@contoso7.onmicrosoft.com is no longer a reclaim candidate: no reason to reclaim applies to "
        "the licenses the user holds now."
    )
    assert str(e3.sku_id) in graph_skus(emulator, scenario, emulator_snapshot, INACTIVE)


def license_outcomes(job: BulkJob) -> dict[str, tuple[str, list[tuple[str, str, str]]]]:
    return {
        item.user_principal_name: (
            item.status, [(entry["partNumber"], entry["status"], entry["message"]) for entry in item.licenses]
        )
        for item in job.items.order_by("position")
    }


def check_bulk_reclaim_outcome(job: BulkJob, emulator, scenario, emulator_snapshot, pool, spare_before: int) -> None:
    e3 = Sku.objects.get(tenant=scenario, part_number="SPE_E3")
    flow = Sku.objects.get(tenant=scenario, part_number="FLOW_FREE")
    assert job.status == BulkJobStatus.FINISHED
    assert license_outcomes(job) == {
        "georg.aberg.10@contoso7.onmicrosoft.com": ("done", [("SPE_E3", "reclaimed", "Reclaimed Microsoft 365 E3.")]),
        "pawel.zimmermann.6@contoso7.onmicrosoft.com": ("done", [
            ("SPE_E3", "skipped", GROUP_SKIP),
            ("FLOW_FREE", "reclaimed", f"Reclaimed {flow.name}."),
        ]),
        "bjorn.lefevre.27@contoso7.onmicrosoft.com": ("done", [("SPE_E3", "reclaimed", "Reclaimed Microsoft 365 E3.")]),
        "tomas.evans.34@contoso7.onmicrosoft.com": ("rejected", []),
    }
    assert job.items.get(user_principal_name__startswith=ANY_KIND).message == (
        "tomas.evans.34@contoso7.onmicrosoft.com is no longer a reclaim candidate: no reason to reclaim applies "
        "to the licenses the user holds now."
    )
    assert job.items.get(user_principal_name__startswith=GROUP).message == f"{GROUP_SKIP} Reclaimed {flow.name}."
    assert str(e3.sku_id) not in graph_skus(emulator, scenario, emulator_snapshot, DISABLED)
    assert str(e3.sku_id) not in graph_skus(emulator, scenario, emulator_snapshot, INACTIVE)
    assert graph_skus(emulator, scenario, emulator_snapshot, GROUP) == {str(e3.sku_id)}
    assert str(e3.sku_id) in graph_skus(emulator, scenario, emulator_snapshot, ANY_KIND)
    assert spare(pool, "SPE_E3") == spare_before + 2
    reclaimed = AuditEvent.objects.filter(action=AuditAction.LICENSE_RECLAIMED, outcome=Outcome.SUCCEEDED)
    assert reclaimed.count() == 3
    disabled = job.items.get(user_principal_name__startswith=DISABLED)
    assert disabled.graph_request_id == reclaimed.get(target_user__user_principal_name__startswith=DISABLED).graph_request_id
    assert not AuditEvent.objects.filter(action=AuditAction.LICENSE_REVOKED).exists()


def test_bulk_reclaim_job(emulator, scenario, emulator_snapshot, admin, pool, manager):
    e3 = Sku.objects.get(tenant=scenario, part_number="SPE_E3")
    set_allotment(acting_user=admin, pool=pool, sku=e3, seats=40)
    spare_before = spare(pool, "SPE_E3")
    selected = [member(scenario, prefix) for prefix in (DISABLED, GROUP, INACTIVE, ANY_KIND)]

    job = create_reclaim_job(acting_user=manager, pool=pool, user_pks=[user.pk for user in selected])
    assert run_bulk_job(job.pk) == BulkJobStatus.FINISHED

    job.refresh_from_db()
    assert job.kind == BulkJobKind.RECLAIM
    assert job.sku is None
    check_bulk_reclaim_outcome(job, emulator, scenario, emulator_snapshot, pool, spare_before)
    started = AuditEvent.objects.get(action=AuditAction.BULK_JOB_STARTED)
    assert started.after == {"job": job.pk, "kind": "reclaim", "users": 4}


@pytest.mark.django_db(transaction=True)
def test_bulk_reclaim_celery_worker(celery_worker, emulator, scenario, emulator_snapshot, admin, pool, manager):
    e3 = Sku.objects.get(tenant=scenario, part_number="SPE_E3")
    set_allotment(acting_user=admin, pool=pool, sku=e3, seats=40)
    spare_before = spare(pool, "SPE_E3")
    selected = [member(scenario, prefix) for prefix in (DISABLED, GROUP, INACTIVE, ANY_KIND)]

    job = create_reclaim_job(acting_user=manager, pool=pool, user_pks=[user.pk for user in selected])

    deadline = time.monotonic() + 120
    while job.status != BulkJobStatus.FINISHED and time.monotonic() < deadline:
        time.sleep(0.2)
        job.refresh_from_db()
    check_bulk_reclaim_outcome(job, emulator, scenario, emulator_snapshot, pool, spare_before)
    assert run_bulk_job(job.pk) == "skipped"


def test_bulk_reclaim_over_100_users(scenario, pool, manager):
    members = list(pool.members_queryset().values_list("pk", flat=True))
    missing = [max(members) + number for number in range(1, 102 - len(members))]

    job = create_reclaim_job(acting_user=manager, pool=pool, user_pks=members + missing)

    assert job.items.count() == 101
    rejected = job.items.get(position=len(members) + 1)
    assert rejected.status == BulkItemStatus.REJECTED
    assert rejected.user_principal_name == f"User {missing[0]}"
    assert rejected.message == f"This user is no longer a member of pool {pool}. Run a sync if the user moved recently."


def test_bulk_reclaim_selection_errors(scenario, pool, manager, other_manager):
    with pytest.raises(recovery.RecoveryError) as caught:
        create_reclaim_job(acting_user=manager, pool=pool, user_pks=[])
    assert caught.value.message == "Select at least one candidate to reclaim."

    with pytest.raises(recovery.RecoveryError) as caught:
        create_reclaim_job(acting_user=manager, pool=pool, user_pks=list(range(1, 5002)))
    assert caught.value.message == "5001 users were selected; one bulk reclaim takes at most 5000. Select fewer users."

    with pytest.raises(Http404):
        create_reclaim_job(acting_user=other_manager, pool=pool, user_pks=[member(scenario, DISABLED).pk])
    assert not BulkJob.objects.exists()


def test_bulk_reclaim_resume_settles_removal(emulator, scenario, emulator_snapshot, admin, pool, manager):
    """A runner died after Graph removed a license: the resumed job records it and calls Graph no more."""
    e3 = Sku.objects.get(tenant=scenario, part_number="SPE_E3")
    disabled, inactive = member(scenario, DISABLED), member(scenario, INACTIVE)
    job = create_reclaim_job(acting_user=manager, pool=pool, user_pks=[disabled.pk, inactive.pk])
    item = job.items.get(user=disabled)
    item.status = BulkItemStatus.IN_PROGRESS
    item.licenses = [{
        "skuId": str(e3.sku_id), "partNumber": "SPE_E3", "name": e3.name, "status": "in_progress", "message": "",
        "graphRequestId": "", "reasons": ["disabled"],
    }]
    item.save()
    BulkJob.objects.filter(pk=job.pk).update(status=BulkJobStatus.RUNNING, heartbeat_at=timezone.now() - dt.timedelta(hours=1))
    control(emulator, "POST", f"tenants/{scenario.tenant_id}/users/{disabled.user_id}/licenses", {
        "addLicenses": [], "removeLicenses": [str(e3.sku_id)],
    })

    assert run_bulk_job(job.pk) == BulkJobStatus.FINISHED

    assert license_outcomes(job)[disabled.user_principal_name] == ("done", [
        ("SPE_E3", "reclaimed", "Reclaimed Microsoft 365 E3 (confirmed in Microsoft Graph after the worker stopped)."),
    ])
    assert license_outcomes(job)[inactive.user_principal_name] == ("done", [
        ("SPE_E3", "reclaimed", "Reclaimed Microsoft 365 E3."),
    ])
    calls = control(emulator, "GET", "requests")["value"]
    assert not [call for call in calls if call["path"] == f"/v1.0/users/{disabled.user_id}/assignLicense"]
    event = AuditEvent.objects.get(action=AuditAction.LICENSE_RECLAIMED, target_user=disabled)
    assert event.message == "Found removed in Microsoft Graph when the bulk job resumed after its worker stopped."
    assert event.before == {"skuId": str(e3.sku_id), "disabledPlans": [], "reasons": ["disabled"]}
    assert not disabled.licenses.filter(sku=e3).exists()


def test_bulk_reclaim_resume_retries_unsent(emulator, scenario, emulator_snapshot, pool, manager):
    """A runner died before Graph removed the license: the resumed job removes it once."""
    e3 = Sku.objects.get(tenant=scenario, part_number="SPE_E3")
    disabled = member(scenario, DISABLED)
    job = create_reclaim_job(acting_user=manager, pool=pool, user_pks=[disabled.pk])
    job.items.update(status=BulkItemStatus.IN_PROGRESS, licenses=[{
        "skuId": str(e3.sku_id), "partNumber": "SPE_E3", "name": e3.name, "status": "in_progress", "message": "",
        "graphRequestId": "",
    }])

    assert run_bulk_job(job.pk) == BulkJobStatus.FINISHED

    assert license_outcomes(job)[disabled.user_principal_name] == ("done", [
        ("SPE_E3", "reclaimed", "Reclaimed Microsoft 365 E3."),
    ])
    calls = control(emulator, "GET", "requests")["value"]
    assert len([call for call in calls if call["path"] == f"/v1.0/users/{disabled.user_id}/assignLicense"]) == 1
    assert AuditEvent.objects.filter(action=AuditAction.LICENSE_RECLAIMED, target_user=disabled).count() == 1


def test_bulk_reclaim_page(emulator, scenario, emulator_snapshot, pool, manager, client):
    client.force_login(manager)
    users = [member(scenario, DISABLED).pk, member(scenario, GROUP).pk]
    url = reverse("pools:bulk_reclaim", kwargs={"pool_pk": pool.pk})
    candidates = [recovery.evaluate_user(pool, member(scenario, prefix)) for prefix in (DISABLED, GROUP)]
    licenses = [held.sku.name for candidate in candidates for held in candidate.reclaimable_licenses]
    rows = [
        f"<tr><td>{candidate.user.user_principal_name}</td>"
        f"<td>{', '.join(held.sku.name for held in candidate.reclaimable_licenses)}</td></tr>"
        for candidate in candidates
    ]

    confirmation = client.post(url, {"users": users})

    text = " ".join(confirmation.content.decode().split())
    assert confirmation.status_code == 200
    assert "2 users are selected." in text
    assert f"{len(licenses)} licenses can be reclaimed now;" in text
    for row in rows:
        assert row in text
    assert not BulkJob.objects.exists()

    response = client.post(url, {"users": users, "confirmed": "1"})

    job = BulkJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("pools:bulk_job", kwargs={"job_pk": job.pk})
    run_bulk_job(job.pk)
    page = client.get(response["Location"])
    body = page.content.decode()
    assert "Reclaim seats of the selected candidates" in body
    assert "Reclaimed Microsoft 365 E3." in body
    assert GROUP_SKIP in body


def test_reclaim_view(emulator, scenario, emulator_snapshot, pool, manager, client):
    client.force_login(manager)
    user = member(scenario, NEVER)
    license = user.licenses.get()
    url = reverse("pools:reclaim", kwargs={"pool_pk": pool.pk})
    data = {"user": user.pk, "sku": license.sku_id, "return_to": "pool"}

    confirmation = client.post(url, data)

    page = confirmation.content.decode()
    assert confirmation.status_code == 200
    assert f"Reclaim {license.sku.name} from {user.user_principal_name}?" in page
    assert '<input type="hidden" name="confirmed" value="1">' in page
    assert '<input type="hidden" name="return_to" value="pool">' in page
    assert str(license.sku.sku_id) in graph_skus(emulator, scenario, emulator_snapshot, NEVER)

    response = client.post(url, {**data, "confirmed": "1"}, follow=True)

    assert response.redirect_chain[-1][0] == reverse("pools:pool", kwargs={"pool_pk": pool.pk}) + "#recovery"
    assert (
        f"Reclaimed {license.sku.name} from quentin.tanaka.41@contoso7.onmicrosoft.com; the seat is spare in pool "
        f"{pool} again."
    ) in response.content.decode()
    assert str(license.sku.sku_id) not in graph_skus(emulator, scenario, emulator_snapshot, NEVER)


def test_pool_page_section(scenario, pool, manager, client):
    client.force_login(manager)

    page = client.get(reverse("pools:pool", kwargs={"pool_pk": pool.pk}))
    summary = client.get(reverse("pools:recovery_summary", kwargs={"pool_pk": pool.pk}), HTTP_HX_REQUEST="true")

    assert reverse("pools:recovery_summary", kwargs={"pool_pk": pool.pk}) in page.content.decode()
    assert summary.status_code == 200
    text = " ".join(summary.content.decode().split())
    assert "5 reclaim candidates: 2 disabled, 1 inactive, 1 never signed in, 1 with a redundant license." in text
    assert "Inactivity threshold: 90 days, the tenant's default." in text


def test_exemption_views(scenario, pool, manager, client):
    client.force_login(manager)
    url = reverse("pools:exemption_add", kwargs={"pool_pk": pool.pk})

    response = client.post(url, {"user_principal_name": "NOBODY@contoso7.onmicrosoft.com", "reason": "x"}, follow=True)
    assert (
        f"No member of pool {pool} has the user principal name NOBODY@contoso7.onmicrosoft.com. Check the spelling, or "
        "run a sync if the user joined the pool recently."
    ) in response.content.decode()

    user = member(scenario, NEVER)
    client.post(url, {"user_principal_name": user.user_principal_name.upper(), "reason": "Room mailbox"})
    assert LicenseExemption.objects.get(user=user).reason == "Room mailbox"

    remove = reverse("pools:exemption_remove", kwargs={"pool_pk": pool.pk, "user_pk": user.pk})
    client.post(remove)
    assert not LicenseExemption.objects.filter(user=user).exists()


# Scoping


def test_other_manager_gets_404(emulator, scenario, emulator_snapshot, pool, other_manager, client):
    user = member(scenario, DISABLED)
    e3 = Sku.objects.get(tenant=scenario, part_number="SPE_E3")
    client.force_login(other_manager)

    assert client.get(reverse("pools:pool_recovery", kwargs={"pool_pk": pool.pk})).status_code == 404
    assert client.get(reverse("pools:recovery_summary", kwargs={"pool_pk": pool.pk})).status_code == 404
    assert client.post(
        reverse("pools:reclaim", kwargs={"pool_pk": pool.pk}), {"user": user.pk, "sku": e3.pk}
    ).status_code == 404
    assert client.post(
        reverse("pools:bulk_reclaim", kwargs={"pool_pk": pool.pk}), {"users": [user.pk]}
    ).status_code == 404
    assert client.post(
        reverse("pools:exemption_add", kwargs={"pool_pk": pool.pk}),
        {"user_principal_name": user.user_principal_name, "reason": "x"},
    ).status_code == 404
    with pytest.raises(Http404):
        recovery.reclaim_license(acting_user=other_manager, pool=pool, user=user, sku=e3)
    with pytest.raises(Http404):
        recovery.add_exemption(acting_user=other_manager, pool=pool, user=user, reason="x")
    assert str(e3.sku_id) in graph_skus(emulator, scenario, emulator_snapshot, DISABLED)
    assert not LicenseExemption.objects.exists()


def test_operator_views_but_cannot_reclaim(scenario, pool, make_portal_user, client):
    operator = make_portal_user("operator", role=Role.LICENSE_OPERATOR, pool=pool)
    user = member(scenario, DISABLED)
    client.force_login(operator)

    page = client.get(reverse("pools:pool_recovery", kwargs={"pool_pk": pool.pk}))

    assert page.status_code == 200
    assert DISABLED_REASON in page.content.decode()
    assert reverse("pools:reclaim", kwargs={"pool_pk": pool.pk}) not in page.content.decode()
    e3 = Sku.objects.get(tenant=scenario, part_number="SPE_E3")
    assert client.post(
        reverse("pools:reclaim", kwargs={"pool_pk": pool.pk}), {"user": user.pk, "sku": e3.pk}
    ).status_code == 404


# REST API


def test_api_candidates(scenario, pool, manager, other_manager):
    api = APIClient()
    api.force_authenticate(manager)
    url = f"/api/v1/pools/{pool.pk}/reclaim-candidates/"

    response = api.get(url)

    assert response.status_code == 200
    body = response.json()
    assert body["signInActivityAvailable"] is True
    assert body["statement"] == ""
    assert body["threshold"] == {"days": 90, "source": "tenant"}
    candidates = {item["userPrincipalName"].split("@")[0] + "@": item for item in body["candidates"]}
    assert set(candidates) == {DISABLED, INACTIVE, NEVER, REDUNDANT, GROUP}
    inactive = candidates[INACTIVE]
    assert inactive["reasons"] == [
        {"code": "inactive", "message": "No sign-in of any kind for 120 days; the threshold is 90 days."}
    ]
    assert inactive["daysInactive"] == 120
    assert inactive["lastInteractiveSignIn"] is not None
    assert inactive["lastSuccessfulSignIn"] is None
    group = {item["partNumber"]: item for item in candidates[GROUP]["licenses"]}
    assert group["SPE_E3"]["reclaimable"] is False
    assert group["SPE_E3"]["groups"][0]["displayName"] == "License - Microsoft 365 E3"
    assert group["SPE_E3"]["skipReason"] == GROUP_SKIP
    redundant = {item["partNumber"]: item for item in candidates[REDUNDANT]["licenses"]}
    assert redundant["ENTERPRISEPACK"]["redundantWith"] == str(Sku.objects.get(tenant=scenario, part_number="SPE_E3").sku_id)

    other = APIClient()
    other.force_authenticate(other_manager)
    assert other.get(url).status_code == 404


def test_api_exemption(scenario, pool, manager, other_manager):
    api = APIClient()
    api.force_authenticate(manager)
    user = member(scenario, DISABLED)
    url = f"/api/v1/pools/{pool.pk}/users/{user.user_id}/exemption/"

    assert api.post(url, {"reason": ""}, format="json").status_code == 400
    created = api.post(url, {"reason": "Shared mailbox"}, format="json")
    assert created.status_code == 201
    assert created.json()["reason"] == "Shared mailbox"
    assert created.json()["createdBy"] == "manager"
    again = api.post(url, {"reason": "Other"}, format="json")
    assert again.status_code == 409
    assert again.json()["detail"] == (
        "georg.aberg.10@contoso7.onmicrosoft.com is already exempt: Shared mailbox. Remove that exemption first to "
        "change its reason."
    )
    listed = api.get(f"/api/v1/pools/{pool.pk}/reclaim-candidates/").json()
    assert [item["exemption"]["reason"] for item in listed["exempted"]] == ["Shared mailbox"]

    other = APIClient()
    other.force_authenticate(other_manager)
    assert other.delete(url).status_code == 404
    assert other.post(url, {"reason": "x"}, format="json").status_code == 404

    assert api.delete(url).status_code == 204
    assert api.delete(url).status_code == 404
    assert AuditEvent.objects.filter(action=AuditAction.EXEMPTION_ADDED).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.EXEMPTION_REMOVED).count() == 1


def test_fresh_license_not_reclaimed(emulator, scenario, emulator_snapshot, pool):
    reassign(emulator, scenario, emulator_snapshot, INACTIVE, sorted(graph_skus(emulator, scenario, emulator_snapshot, INACTIVE)))
    fresh = "FLOW_FREE"
    control(emulator, "POST", f"tenants/{scenario.tenant_id}/users/{graph_id(emulator_snapshot, NEVER)}/licenses", {
        "addLicenses": [{"skuId": sku_id(emulator_snapshot, fresh), "disabledPlans": []}], "removeLicenses": [],
    })
    sync_now(scenario)

    candidates = by_upn(recovery.pool_report(pool).candidates)

    assert INACTIVE not in candidates
    never = {held.sku.part_number: held for held in candidates[NEVER].licenses}
    assert never[fresh].reclaimable is False
    assert never[fresh].skip_message.startswith("Kept: assigned on ")
    assert never[fresh].skip_message.endswith("less than 90 days ago, so the user has had no time to sign in yet.")
    assert [held.reclaimable for part, held in never.items() if part != fresh] == [True] * (len(never) - 1)


def reassign(emulator, tenant, snapshot: dict, prefix: str, skus: list[str]) -> None:
    """Remove and assign ``skus`` again, as an administrator would, so that Graph dates them now."""
    path = f"tenants/{tenant.tenant_id}/users/{graph_id(snapshot, prefix)}/licenses"
    control(emulator, "POST", path, {"addLicenses": [], "removeLicenses": skus})
    control(emulator, "POST", path, {
        "addLicenses": [{"skuId": sku, "disabledPlans": []} for sku in skus], "removeLicenses": [],
    })
