"""Generated and demo tenants: determinism, realistic variety and seat consistency."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

from graphsync.emulator.catalog import load_catalog
from graphsync.emulator.generator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_TENANT_ID, demo_tenant, generate_tenant
from graphsync.emulator.snapshot import validate_snapshot
from graphsync.emulator.state import TenantState


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, sort_keys=True, ensure_ascii=False)


def test_same_seed_same_tenant() -> None:
    assert _dump(generate_tenant(300, seed=3)) == _dump(generate_tenant(300, seed=3))


def test_different_seed_different_tenant() -> None:
    assert _dump(generate_tenant(300, seed=3)) != _dump(generate_tenant(300, seed=4))


def test_generated_tenant_is_valid(generated_tenant: dict[str, Any]) -> None:
    validate_snapshot(generated_tenant)
    assert len(generated_tenant["users"]) == 250


def test_generated_variety() -> None:
    tenant = generate_tenant(2000, seed=9)
    users = tenant["users"]
    departments = Counter(user.get("department") for user in users)
    for value in ("Sales", " sales", "SALES", "Ventes – Île-de-France", "Einkauf/Beschaffung", "R&D", "O'Neil Team", ""):
        assert departments[value] > 0, value
    assert sum(1 for user in users if "department" not in user) > 0
    assert sum(1 for user in users if user["usageLocation"] is None) > 0
    assert sum(1 for user in users if not user["accountEnabled"]) > 0
    assert len({user["country"] for user in users if user["country"]}) >= 10
    for user in users:
        assert set(user["onPremisesExtensionAttributes"]) == {f"extensionAttribute{n}" for n in range(1, 16)}
    licensed = sum(1 for user in users if user["assignedLicenses"])
    assert 0.5 <= licensed / len(users) <= 0.7


def test_generated_skus_come_from_catalog(generated_tenant: dict[str, Any]) -> None:
    catalog = load_catalog()
    parts = {sku["skuPartNumber"] for sku in generated_tenant["subscribedSkus"]}
    assert {"SPE_E3", "ENTERPRISEPACK", "O365_BUSINESS_PREMIUM", "POWER_BI_PRO", "VISIOCLIENT", "EXCHANGESTANDARD"} <= parts
    for sku in generated_tenant["subscribedSkus"]:
        entry = catalog.get(sku["skuId"])
        assert entry is not None
        assert entry.part_number == sku["skuPartNumber"]
        assert {plan["servicePlanId"] for plan in sku["servicePlans"]} == {plan.service_plan_id for plan in entry.service_plans}
    statuses = {sku["capabilityStatus"] for sku in generated_tenant["subscribedSkus"]}
    assert {"Enabled", "Warning", "Suspended"} <= statuses
    assert any(sku["prepaidUnits"]["warning"] > 0 for sku in generated_tenant["subscribedSkus"])


def test_enabled_skus_not_overassigned() -> None:
    tenant = generate_tenant(2000, seed=5)
    state = TenantState(tenant)
    for sku in tenant["subscribedSkus"]:
        consumed = state.consumed_units(sku["skuId"])
        assert consumed == sku["consumedUnits"]
        if sku["capabilityStatus"] == "Enabled":
            assert consumed <= sku["prepaidUnits"]["enabled"], sku["skuPartNumber"]
    e3 = next(sku for sku in tenant["subscribedSkus"] if sku["skuPartNumber"] == "SPE_E3")
    assert e3["prepaidUnits"]["enabled"] - e3["consumedUnits"] >= 50


def test_group_licenses_in_generated_tenant(generated_tenant: dict[str, Any]) -> None:
    licensed_groups = [group for group in generated_tenant["groups"] if group["assignedLicenses"]]
    assert len(licensed_groups) == 2
    inherited = [
        state
        for user in generated_tenant["users"]
        for state in user["licenseAssignmentStates"]
        if state["assignedByGroup"] is not None
    ]
    assert inherited
    errors = Counter(state["error"] for state in inherited)
    assert errors["CountViolation"] == 2


def test_subscriptions_add_up(generated_tenant: dict[str, Any]) -> None:
    for sku in generated_tenant["subscribedSkus"]:
        subscriptions = [item for item in generated_tenant["subscriptions"] if item["skuId"] == sku["skuId"]]
        assert sum(item["totalLicenses"] for item in subscriptions) == sum(sku["prepaidUnits"].values())
        assert sorted(sku["subscriptionIds"]) == sorted(item["id"] for item in subscriptions)


def test_demo_tenant_keeps_sandbox_users() -> None:
    tenant = demo_tenant(generated_users=100)
    validate_snapshot(tenant)
    assert tenant["tenantId"] == DEMO_TENANT_ID
    assert tenant["clients"] == [{"clientId": DEMO_CLIENT_ID, "clientSecret": DEMO_CLIENT_SECRET}]
    assert len(tenant["users"]) == 132
    adele = next(user for user in tenant["users"] if user["id"] == "87d349ed-44d7-43e1-9a83-5f2406dee5bd")
    assert adele["userPrincipalName"] == "AdeleV@M365x214355.onmicrosoft.com"
    assert adele["displayName"] == "Adele Vance"
    assert adele["usageLocation"] is None or len(adele["usageLocation"]) == 2
    assert "country" in adele


def test_catalog_strips_and_dedupes() -> None:
    catalog = load_catalog()
    for sku in catalog:
        assert sku.part_number == sku.part_number.strip()
        plan_ids = [plan.service_plan_id for plan in sku.service_plans]
        assert len(plan_ids) == len(set(plan_ids))
    assert catalog.by_part_number("O365_BUSINESS_PREMIUM").display_name == "Microsoft 365 Business Standard"
    assert catalog.by_part_number("AAD_PREMIUM_USGOV_GCCHIGH").part_number == "AAD_PREMIUM_USGOV_GCCHIGH"


def test_demo_sign_in_activity() -> None:
    now = dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc)
    tenant = demo_tenant(generated_users=1000, now=now)
    activities = [user["signInActivity"] for user in tenant["users"]]
    latest = [
        dt.datetime.strptime(activity["lastNonInteractiveSignInDateTime"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.timezone.utc
        )
        for activity in activities
        if activity is not None
    ]
    recent = sum(1 for moment in latest if now - moment < dt.timedelta(days=30))
    inactive = sum(1 for moment in latest if now - moment >= dt.timedelta(days=90))
    never = activities.count(None)

    assert recent > 0.7 * len(activities)
    assert 0 < inactive < 0.2 * len(activities)
    assert 0 < never < 0.1 * len(activities)
    assert all(moment <= now for moment in latest)
    assert all(moment >= dt.datetime(2020, 4, 1, tzinfo=dt.timezone.utc) for moment in latest)
    assert demo_tenant(generated_users=1000, now=now) == tenant


def test_demo_sign_in_keeps_other_values() -> None:
    with_sign_in = demo_tenant(generated_users=50, now=dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc))
    other_day = demo_tenant(generated_users=50, now=dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc))

    for user in with_sign_in["users"] + other_day["users"]:
        user.pop("signInActivity")
    assert with_sign_in == other_day
