"""Deterministic generation of realistic tenant snapshots, including the demo tenant.

The same seed always gives the same JSON. SKUs and service plans come from
Microsoft's licensing reference table; the directory data is synthetic but has
the untidiness of real tenants (blank and inconsistently spelled departments,
missing usage locations, disabled accounts that still hold licenses).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .catalog import Catalog, Sku, load_catalog
from .graph_schema import EXTENSION_ATTRIBUTE_NAMES

SANDBOX_USERS_PATH = Path(__file__).resolve().parent / "data" / "users-list.sandbox.json"

DEMO_TENANT_ID = "4d5e6f70-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
DEMO_CLIENT_ID = "8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d"
DEMO_CLIENT_SECRET = "lp-demo~Q8wTz3vN5yK1mR7hJ4cX"
DEMO_DOMAIN = "M365x214355.onmicrosoft.com"

# (country ISO code, weight, cities, preferred language)
COUNTRIES: tuple[tuple[str, int, tuple[str, ...], str], ...] = (
    ("US", 30, ("Redmond", "Seattle", "New York", "Chicago", "Austin"), "en-US"),
    ("GB", 10, ("London", "Manchester", "Reading"), "en-GB"),
    ("DE", 10, ("München", "Berlin", "Düsseldorf"), "de-DE"),
    ("FR", 9, ("Paris", "Lyon", "Lille"), "fr-FR"),
    ("IN", 8, ("Bengaluru", "Hyderabad", "Pune"), "en-IN"),
    ("CA", 5, ("Toronto", "Montréal", "Vancouver"), "en-CA"),
    ("NL", 4, ("Amsterdam", "Utrecht"), "nl-NL"),
    ("ES", 4, ("Madrid", "Barcelona"), "es-ES"),
    ("JP", 4, ("Tokyo", "Osaka"), "ja-JP"),
    ("BR", 4, ("São Paulo", "Rio de Janeiro"), "pt-BR"),
    ("AU", 3, ("Sydney", "Melbourne"), "en-AU"),
    ("SE", 2, ("Stockholm", "Göteborg"), "sv-SE"),
    ("PL", 2, ("Warszawa", "Kraków"), "pl-PL"),
    ("KE", 1, ("Nairobi",), "en-US"),
    ("CH", 2, ("Zürich", "Genève"), "de-CH"),
)
# Full names that directories often carry in `country` instead of an ISO code.
COUNTRY_NAMES = {"US": "United States", "DE": "Deutschland", "FR": "France", "GB": "United Kingdom", "CH": "Schweiz"}

# (department, weight); None means the property is absent and "" means it is blank.
DEPARTMENTS: tuple[tuple[str | None, int], ...] = (
    ("Sales", 14),
    (" sales", 2),
    ("SALES", 2),
    ("Sales ", 1),
    ("Marketing", 8),
    ("Finance", 7),
    ("Human Resources", 4),
    ("HR", 2),
    ("R&D", 9),
    ("Engineering", 10),
    ("IT", 6),
    ("Customer Success", 5),
    ("Legal", 2),
    ("Operations", 6),
    ("Ventes – Île-de-France", 3),
    ("Einkauf/Beschaffung", 3),
    ("O'Neil Team", 1),
    ("Recherche & Développement", 1),
    ("営業部", 1),
    (None, 6),
    ("", 2),
)
COMPANIES = ("Contoso Ltd", "Contoso GmbH", "Contoso SAS", "Fabrikam, Inc.")
JOB_TITLES = (
    "Account Executive",
    "Sales Manager",
    "Marketing Specialist",
    "Financial Analyst",
    "HR Business Partner",
    "Software Engineer",
    "Senior Software Engineer",
    "IT Administrator",
    "Support Engineer",
    "Legal Counsel",
    "Operations Manager",
    "Product Manager",
    "Designer",
    "Chargé d'affaires",
    "Einkäufer",
    None,
)
GIVEN_NAMES = (
    "Anna", "Ben", "Chloé", "David", "Élodie", "Fatima", "Georg", "Hannah", "Ingrid", "Jürgen", "Kenji", "Léa",
    "Mateo", "Nadia", "Olivia", "Paweł", "Quentin", "Rosa", "Søren", "Tomás", "Uma", "Viktor", "Wei", "Xavier",
    "Yuki", "Zoë", "Ángel", "Łukasz", "Priya", "Siobhán", "João", "Björn",
)
SURNAMES = (
    "Adams", "Becker", "Castillo", "Dubois", "Evans", "Fischer", "García", "Hansen", "Ivanova", "Jensen", "Kowalski",
    "Lefèvre", "Müller", "Nakamura", "O'Brien", "Petrov", "Quinn", "Rossi", "Schmidt", "Tanaka", "Utley", "Vogel",
    "Wójcik", "Xu", "Yilmaz", "Zimmermann", "Núñez", "Gonçalves", "Åberg", "Patel", "Nguyen", "D'Souza",
)

# SKUs of the generated tenant by part number. The reference table supplies ids,
# names and service plans.
SUITE_WEIGHTS = (("SPE_E3", 50), ("ENTERPRISEPACK", 25), ("O365_BUSINESS_PREMIUM", 15), ("EXCHANGESTANDARD", 10))
ADD_ON_SKUS = ("POWER_BI_PRO", "VISIOCLIENT", "EMS", "PROJECTPROFESSIONAL", "FLOW_FREE")
# Plans that some users have disabled; nothing in plan_rules depends on them.
OPTIONAL_PLAN_NAMES = ("YAMMER_ENTERPRISE", "SWAY", "KAIZALA_O365_P3", "BPOS_S_TODO_3")


@dataclass
class _Tenant:
    """Working data while a tenant is generated."""

    rng: random.Random
    tenant_id: str
    catalog: Catalog
    users: list[dict[str, Any]] = field(default_factory=list)
    # sku_id -> number of users that hold the SKU
    holders: dict[str, int] = field(default_factory=dict)

    def guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def timestamp(self, start_year: int = 2016, end_year: int = 2025) -> str:
        start = dt.datetime(start_year, 1, 1, tzinfo=dt.timezone.utc)
        span = (dt.datetime(end_year, 1, 1, tzinfo=dt.timezone.utc) - start).total_seconds()
        moment = start + dt.timedelta(seconds=self.rng.randrange(int(span)))
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    def sku(self, part_number: str) -> Sku:
        return self.catalog.by_part_number(part_number)


def generate_tenant(users: int, seed: int, tenant_id: str | None = None) -> dict[str, Any]:
    """Return a snapshot of a tenant with `users` generated users, the same for the same arguments."""
    if users < 0:
        raise ValueError(f"users must be zero or more, got {users}")
    rng = random.Random(seed)
    tenant = _Tenant(rng=rng, tenant_id=tenant_id or str(uuid.UUID(int=rng.getrandbits(128), version=4)), catalog=load_catalog())
    client = {"clientId": tenant.guid(), "clientSecret": _client_secret(rng)}
    domain = f"contoso{seed}.onmicrosoft.com"
    for number in range(users):
        tenant.users.append(_generate_user(tenant, number, domain))
    return _finish_tenant(tenant, f"Contoso (generated, seed {seed})", client)


# Entra ID keeps interactive sign-ins from April 2020 on and lastSuccessfulSignInDateTime from
# 1 December 2023 on (Microsoft Graph, signInActivity resource type), so older times never appear.
SIGN_IN_RECORDS_START = dt.datetime(2020, 4, 1, tzinfo=dt.timezone.utc)
SUCCESSFUL_SIGN_IN_RECORDS_START = dt.datetime(2023, 12, 1, tzinfo=dt.timezone.utc)
# Weights of enabled accounts by their latest sign-in: within a month, one to three months ago, three months
# to two years ago, and never. Disabled accounts always fall in the third group. The default demo then has
# about one account in eight without a sign-in for 90 days or more, instead of nearly all of them.
SIGN_IN_PROFILE = (("recent", 86), ("lapsing", 6), ("inactive", 5), ("never", 3))


def demo_tenant(seed: int = 1, generated_users: int = 2000, now: dt.datetime | None = None) -> dict[str, Any]:
    """Return the demo tenant: the 32 Graph Explorer sandbox users plus `generated_users` generated ones.

    Users carry signInActivity relative to `now` (the start of the current UTC day by default), so the
    demo's reclaim candidates look the same whenever it runs. The same seed and `now` give the same JSON.
    """
    rng = random.Random(seed)
    tenant = _Tenant(rng=rng, tenant_id=DEMO_TENANT_ID, catalog=load_catalog())
    client = {"clientId": DEMO_CLIENT_ID, "clientSecret": DEMO_CLIENT_SECRET}
    sandbox = json.loads(SANDBOX_USERS_PATH.read_text(encoding="utf-8"))["value"]
    for number, sandbox_user in enumerate(sandbox):
        user = _generate_user(tenant, number, DEMO_DOMAIN)
        for key in ("id", "displayName", "givenName", "surname", "userPrincipalName", "mail", "businessPhones",
                    "mobilePhone", "jobTitle", "officeLocation", "preferredLanguage"):
            user[key] = sandbox_user.get(key)
        if user["displayName"].startswith("Conf Room"):
            # Room mailboxes carry no department and hold no license.
            user["department"] = None
            user["_suite"] = None
            user["_add_ons"] = []
        tenant.users.append(user)
    for number in range(len(sandbox), len(sandbox) + generated_users):
        tenant.users.append(_generate_user(tenant, number, DEMO_DOMAIN))
    if now is None:
        now = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    # A separate random generator keeps every other value of the demo as it was before users had sign-in data.
    sign_in_rng = random.Random(f"{seed}-sign-in")
    for user in tenant.users:
        user["signInActivity"] = _sign_in_activity(sign_in_rng, user, now)
    return _finish_tenant(tenant, "Contoso (demo)", client)


def _sign_in_activity(rng: random.Random, user: dict[str, Any], now: dt.datetime) -> dict[str, Any] | None:
    """Return a user's signInActivity as Graph does, or None for an account that never signed in."""
    created = dt.datetime.strptime(user["createdDateTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    earliest = max(created, SIGN_IN_RECORDS_START)
    if earliest >= now:
        return None
    profile = _weighted(rng, SIGN_IN_PROFILE) if user.get("accountEnabled", True) else "inactive"
    if profile == "never":
        return None
    days_ago = {
        "recent": rng.uniform(0, 30), "lapsing": rng.uniform(30, 90), "inactive": rng.uniform(90, 730),
    }[profile]
    interactive = max(now - dt.timedelta(days=days_ago), earliest)
    # Clients such as Outlook sign in on the user's behalf more often than the user does.
    non_interactive = min(interactive + dt.timedelta(hours=rng.uniform(0, 72)), now)
    latest = max(interactive, non_interactive)
    return {
        "lastSignInDateTime": _graph_time(interactive),
        "lastSignInRequestId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "lastNonInteractiveSignInDateTime": _graph_time(non_interactive),
        "lastNonInteractiveSignInRequestId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "lastSuccessfulSignInDateTime": _graph_time(latest) if latest >= SUCCESSFUL_SIGN_IN_RECORDS_START else None,
    }


def _graph_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _client_secret(rng: random.Random) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(rng.choice(alphabet) for _ in range(3)) + "8Q~" + "".join(rng.choice(alphabet) for _ in range(34))


def _weighted(rng: random.Random, choices: tuple[tuple[Any, int], ...]) -> Any:
    values = [value for value, _ in choices]
    weights = [weight for _, weight in choices]
    return rng.choices(values, weights=weights, k=1)[0]


def _generate_user(tenant: _Tenant, number: int, domain: str) -> dict[str, Any]:
    rng = tenant.rng
    given = rng.choice(GIVEN_NAMES)
    surname = rng.choice(SURNAMES)
    country_code, _, cities, language = rng.choices(COUNTRIES, weights=[entry[1] for entry in COUNTRIES], k=1)[0]
    alias = _ascii_alias(f"{given}.{surname}")
    upn = f"{alias}.{number}@{domain}"

    roll = rng.random()
    if roll < 0.05:
        country: str | None = None
    elif roll < 0.12 and country_code in COUNTRY_NAMES:
        country = COUNTRY_NAMES[country_code]
    else:
        country = country_code
    usage_location = None if rng.random() < 0.06 else country_code
    department = _weighted(rng, DEPARTMENTS)
    extension_attributes: dict[str, str | None] = {name: None for name in EXTENSION_ATTRIBUTE_NAMES}
    extension_attributes["extensionAttribute1"] = f"CC-{rng.randrange(1000, 1040)}" if rng.random() < 0.8 else None
    extension_attributes["extensionAttribute2"] = rng.choice(("EMEA", "AMER", "APAC", None))

    user: dict[str, Any] = {
        "id": tenant.guid(),
        "businessPhones": [f"+1 425 555 {rng.randrange(10000):04d}"] if rng.random() < 0.7 else [],
        "displayName": f"{given} {surname}",
        "givenName": given,
        "jobTitle": rng.choice(JOB_TITLES),
        "mail": upn,
        "mobilePhone": None,
        "officeLocation": f"{rng.randrange(1, 40)}/{rng.randrange(1000, 3000)}" if rng.random() < 0.8 else None,
        "preferredLanguage": language,
        "surname": surname,
        "userPrincipalName": upn,
        "accountEnabled": rng.random() >= 0.06,
        "city": rng.choice(cities),
        "companyName": rng.choice(COMPANIES),
        "country": country,
        "createdDateTime": tenant.timestamp(),
        "department": department,
        "employeeId": f"E{rng.randrange(10**6):06d}" if rng.random() < 0.9 else None,
        "onPremisesExtensionAttributes": extension_attributes,
        "usageLocation": usage_location,
        "userType": "Member",
    }
    if department is None:
        del user["department"]

    # License choices; _finish_tenant turns them into assignments.
    licensed = usage_location is not None and rng.random() < 0.64
    if not user["accountEnabled"]:
        # Some disabled accounts keep their licenses, as they do in real tenants.
        licensed = licensed and rng.random() < 0.3
    user["_suite"] = _weighted(rng, SUITE_WEIGHTS) if licensed else None
    add_ons: list[str] = []
    if licensed:
        if rng.random() < 0.2:
            add_ons.append("POWER_BI_PRO")
        if rng.random() < 0.04:
            add_ons.append("VISIOCLIENT")
        if user["_suite"] == "ENTERPRISEPACK" and rng.random() < 0.4:
            add_ons.append("EMS")
        if rng.random() < 0.01:
            add_ons.append("PROJECTPROFESSIONAL")
        if rng.random() < 0.1:
            add_ons.append("FLOW_FREE")
    user["_add_ons"] = add_ons
    user["_disable_optional"] = rng.random() < 0.15
    return user


def _ascii_alias(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name.replace("ł", "l").replace("Ł", "L").replace("ø", "o"))
    return "".join(char for char in decomposed if char.isascii() and (char.isalnum() or char == ".")).lower()


def _finish_tenant(tenant: _Tenant, display_name: str, client: dict[str, str]) -> dict[str, Any]:
    rng = tenant.rng
    part_numbers = [part for part, _ in SUITE_WEIGHTS] + list(ADD_ON_SKUS)
    skus = {part: tenant.sku(part) for part in part_numbers}

    # Group-based licensing: a share of the E3 holders get E3 from a group, and a
    # Visio group has two members more than the SKU has seats.
    e3_group = {"id": tenant.guid(), "displayName": "License - Microsoft 365 E3", "mailNickname": "license-m365-e3"}
    visio_group = {"id": tenant.guid(), "displayName": "License - Visio Plan 2", "mailNickname": "license-visio"}
    sales_group = {"id": tenant.guid(), "displayName": "All Sales", "mailNickname": "all-sales"}
    e3_members: list[str] = []
    visio_members: list[str] = []
    sales_members: list[str] = []

    counts = {part: 0 for part in part_numbers}
    for user in tenant.users:
        states: list[dict[str, Any]] = []
        suite = user.pop("_suite")
        add_ons = user.pop("_add_ons")
        disable_optional = user.pop("_disable_optional")
        if suite == "SPE_E3" and rng.random() < 0.3:
            e3_members.append(user["id"])
            states.append(_license_state(tenant, skus["SPE_E3"], e3_group["id"], []))
            counts["SPE_E3"] += 1
        elif suite is not None:
            disabled = _optional_plans(skus[suite]) if disable_optional else []
            states.append(_license_state(tenant, skus[suite], None, disabled))
            counts[suite] += 1
        for part in add_ons:
            states.append(_license_state(tenant, skus[part], None, []))
            counts[part] += 1
        if suite is not None and "VISIOCLIENT" not in add_ons and rng.random() < 0.02:
            visio_members.append(user["id"])
        if (user.get("department") or "").strip().lower() == "sales":
            sales_members.append(user["id"])
        user["_states"] = states

    # The Visio group's members are processed in id order; the last two get no seat.
    visio_members.sort()
    visio_seats = counts["VISIOCLIENT"] + max(len(visio_members) - 2, 0)
    by_id = {user["id"]: user for user in tenant.users}
    for index, member in enumerate(visio_members):
        state = _license_state(tenant, skus["VISIOCLIENT"], visio_group["id"], [])
        if index >= len(visio_members) - 2:
            state["state"], state["error"] = "Error", "CountViolation"
        else:
            counts["VISIOCLIENT"] += 1
        by_id[member]["_states"].append(state)

    for user in tenant.users:
        states = user.pop("_states")
        user["assignedLicenses"] = [
            {"disabledPlans": list(state["disabledPlans"]), "skuId": state["skuId"]}
            for state in states
            if state["state"] == "Active"
        ]
        user["licenseAssignmentStates"] = states

    subscribed_skus, subscriptions = _build_skus(tenant, skus, counts, visio_seats)
    groups = [
        _group(tenant, e3_group, e3_members, [skus["SPE_E3"]]),
        _group(tenant, visio_group, visio_members, [skus["VISIOCLIENT"]]),
        _group(tenant, sales_group, sales_members, []),
    ]
    return {
        "tenantId": tenant.tenant_id,
        "displayName": display_name,
        "premium": True,
        "clients": [client],
        "users": tenant.users,
        "groups": groups,
        "subscribedSkus": subscribed_skus,
        "subscriptions": subscriptions,
    }


def _optional_plans(sku: Sku) -> list[str]:
    return [plan.service_plan_id for plan in sku.service_plans if plan.name in OPTIONAL_PLAN_NAMES]


def _license_state(tenant: _Tenant, sku: Sku, group_id: str | None, disabled: list[str]) -> dict[str, Any]:
    return {
        "assignedByGroup": group_id,
        "disabledPlans": disabled,
        "error": "None",
        "lastUpdatedDateTime": tenant.timestamp(2023, 2025),
        "skuId": sku.sku_id,
        "state": "Active",
    }


def _group(tenant: _Tenant, group: dict[str, Any], members: list[str], skus: list[Sku]) -> dict[str, Any]:
    return {
        "id": group["id"],
        "createdDateTime": tenant.timestamp(2019, 2023),
        "description": None,
        "displayName": group["displayName"],
        "groupTypes": [],
        "mail": None,
        "mailEnabled": False,
        "mailNickname": group["mailNickname"],
        "securityEnabled": True,
        "assignedLicenses": [{"disabledPlans": [], "skuId": sku.sku_id} for sku in skus],
        "members": sorted(members),
    }


def _build_skus(
    tenant: _Tenant, skus: dict[str, Sku], counts: dict[str, int], visio_seats: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Size each SKU's units around its holders and create the matching subscriptions.

    E3 has ample spare seats, Business Standard is exactly full, Power BI Pro is in
    its warning (grace) period and Planner and Project Plan 3 is suspended while a
    few users still hold it, which is an overage on purpose.
    """
    # part number -> (capabilityStatus, prepaidUnits, [(subscription status, seats, isTrial)])
    plans: dict[str, tuple[str, dict[str, int], list[tuple[str, int, bool]]]] = {}

    e3_paid = counts["SPE_E3"] + max(50, math.ceil(counts["SPE_E3"] * 0.25))
    plans["SPE_E3"] = ("Enabled", _units(enabled=e3_paid + 25), [("Enabled", e3_paid, False), ("Enabled", 25, True)])
    office_seats = counts["ENTERPRISEPACK"] + max(5, counts["ENTERPRISEPACK"] // 20)
    plans["ENTERPRISEPACK"] = ("Enabled", _units(enabled=office_seats), [("Enabled", office_seats, False)])
    business_seats = counts["O365_BUSINESS_PREMIUM"]
    plans["O365_BUSINESS_PREMIUM"] = ("Enabled", _units(enabled=business_seats), [("Enabled", business_seats, False)])
    exchange_seats = counts["EXCHANGESTANDARD"] + 3
    plans["EXCHANGESTANDARD"] = ("Enabled", _units(enabled=exchange_seats), [("Enabled", exchange_seats, False)])
    power_bi_seats = counts["POWER_BI_PRO"] + 5
    plans["POWER_BI_PRO"] = ("Warning", _units(warning=power_bi_seats), [("Warning", power_bi_seats, False)])
    plans["VISIOCLIENT"] = ("Enabled", _units(enabled=visio_seats), [("Enabled", visio_seats, False)])
    ems_seats = counts["EMS"] + 10
    plans["EMS"] = ("Enabled", _units(enabled=ems_seats, warning=5), [("Enabled", ems_seats, False), ("Warning", 5, False)])
    project_seats = max(counts["PROJECTPROFESSIONAL"] - 1, 1)
    plans["PROJECTPROFESSIONAL"] = (
        "Suspended",
        _units(suspended=project_seats),
        [("Suspended", project_seats, False)],
    )
    plans["FLOW_FREE"] = ("Enabled", _units(enabled=10000), [("Enabled", 10000, False)])

    subscribed_skus: list[dict[str, Any]] = []
    subscriptions: list[dict[str, Any]] = []
    account_id = tenant.guid()
    for part, (status, units, subscription_plans) in plans.items():
        sku = skus[part]
        subscription_ids = []
        for subscription_status, seats, is_trial in subscription_plans:
            commerce_id = tenant.guid()
            subscription_ids.append(commerce_id)
            subscriptions.append(
                {
                    "id": commerce_id,
                    "commerceSubscriptionId": commerce_id,
                    "createdDateTime": tenant.timestamp(2020, 2024),
                    "isTrial": is_trial,
                    "nextLifecycleDateTime": tenant.timestamp(2026, 2027),
                    "ownerId": None,
                    "ownerTenantId": None,
                    "ownerType": None,
                    "serviceStatus": [],
                    "skuId": sku.sku_id,
                    "skuPartNumber": sku.part_number,
                    "status": subscription_status,
                    "totalLicenses": seats,
                }
            )
        subscribed_skus.append(
            {
                "accountId": account_id,
                "accountName": "Contoso",
                "appliesTo": "User",
                "capabilityStatus": status,
                "consumedUnits": counts[part],
                "id": f"{tenant.tenant_id}_{sku.sku_id}",
                "prepaidUnits": units,
                "servicePlans": [
                    {
                        "servicePlanId": plan.service_plan_id,
                        "servicePlanName": plan.name,
                        "provisioningStatus": "Success",
                        "appliesTo": plan.applies_to,
                    }
                    for plan in sku.service_plans
                ],
                "skuId": sku.sku_id,
                "skuPartNumber": sku.part_number,
                "subscriptionIds": subscription_ids,
            }
        )
    return subscribed_skus, subscriptions


def _units(enabled: int = 0, suspended: int = 0, warning: int = 0, locked_out: int = 0) -> dict[str, int]:
    return {"enabled": enabled, "lockedOut": locked_out, "suspended": suspended, "warning": warning}
