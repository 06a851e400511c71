"""Service plan rules that make Graph reject a license assignment.

Microsoft does not publish these rules as data. The emulator enforces a few that
administrators meet in practice: Exchange Online Plan 1, Plan 2 and Kiosk cannot
be enabled together, Office for the web needs a SharePoint Online plan, and
Calling Plans are sold only in some countries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# Pairs of service plan names that cannot both be enabled for one user.
MUTUALLY_EXCLUSIVE_PLANS: tuple[tuple[str, str], ...] = (
    ("EXCHANGE_S_STANDARD", "EXCHANGE_S_ENTERPRISE"),
    ("EXCHANGE_S_DESKLESS", "EXCHANGE_S_ENTERPRISE"),
    ("EXCHANGE_S_DESKLESS", "EXCHANGE_S_STANDARD"),
)

# A plan named on the left needs at least one of the plans on the right enabled.
PLAN_DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "SHAREPOINTWAC": ("SHAREPOINTENTERPRISE", "SHAREPOINTSTANDARD"),
}


# Service plans offered only in the listed usage locations (ISO 3166 alpha-2 codes).
# NOTE: Microsoft's country list for Calling Plans is longer and changes over time; this
# subset is enough for the emulator to produce ProhibitedInUsageLocationViolation.
PLAN_USAGE_LOCATIONS: dict[str, frozenset[str]] = {
    "MCOPSTN1": frozenset(
        {"AT", "AU", "BE", "CA", "CH", "DE", "DK", "ES", "FI", "FR", "GB", "IE", "IT", "JP", "NL", "NO", "NZ", "PT", "SE", "US"}
    ),
    "MCOPSTN2": frozenset(
        {"AT", "AU", "BE", "CA", "CH", "DE", "DK", "ES", "FI", "FR", "GB", "IE", "IT", "JP", "NL", "NO", "NZ", "PT", "SE", "US"}
    ),
}


def find_prohibited_plan(enabled_plans: Mapping[str, str], checked_plans: Iterable[str], usage_location: str | None) -> str | None:
    """Return the id of the first plan in `checked_plans` that is enabled but not offered in `usage_location`.

    A user without a usage location is not checked, because group-based licensing then
    uses the tenant's country.
    """
    if not usage_location:
        return None
    for name in checked_plans:
        allowed = PLAN_USAGE_LOCATIONS.get(name)
        if allowed is not None and name in enabled_plans and usage_location.upper() not in allowed:
            return enabled_plans[name]
    return None


def find_exclusive_pair(enabled_plans: Mapping[str, str]) -> tuple[str, str] | None:
    """Return the ids of two mutually exclusive plans in `enabled_plans` (name -> id), or None."""
    for first, second in MUTUALLY_EXCLUSIVE_PLANS:
        if first in enabled_plans and second in enabled_plans:
            return enabled_plans[first], enabled_plans[second]
    return None


def find_missing_dependency(
    enabled_plans: Mapping[str, str],
    checked_plans: Iterable[str],
    plan_ids_by_name: Mapping[str, str],
) -> tuple[str, list[str]] | None:
    """Return (plan id, ids of the plans it needs) for the first plan in `checked_plans` whose
    dependency is not enabled, or None.

    `plan_ids_by_name` resolves the names of needed plans to ids for the error message.
    """
    for name in checked_plans:
        required = PLAN_DEPENDENCIES.get(name)
        if required is None or name not in enabled_plans:
            continue
        if not any(requirement in enabled_plans for requirement in required):
            required_ids = [plan_ids_by_name[requirement] for requirement in required if requirement in plan_ids_by_name]
            return enabled_plans[name], required_ids
    return None
