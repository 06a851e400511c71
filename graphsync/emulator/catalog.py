"""Microsoft's licensing reference table (SKUs and their service plans) as Python objects."""

from __future__ import annotations

import csv
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_CATALOG_PATH = Path(__file__).resolve().parent.parent / "data" / "licensing-service-plan-reference.csv"

# Service plans that Graph reports with appliesTo "Company" rather than "User".
# The reference table does not carry this column, so the emulator keeps a short list.
COMPANY_SERVICE_PLANS = frozenset({"EXCHANGE_S_FOUNDATION"})


@dataclass(frozen=True)
class ServicePlan:
    """One service plan included in a SKU."""

    service_plan_id: str
    name: str
    friendly_name: str

    @property
    def applies_to(self) -> str:
        return "Company" if self.name in COMPANY_SERVICE_PLANS else "User"


@dataclass(frozen=True)
class Sku:
    """One product (SKU) of the reference table with its service plans in table order."""

    sku_id: str
    part_number: str
    display_name: str
    service_plans: tuple[ServicePlan, ...]


class Catalog:
    """SKUs of the licensing reference table, looked up by skuId or by part number (String_Id)."""

    def __init__(self, skus: list[Sku]) -> None:
        self._by_id = {sku.sku_id: sku for sku in skus}
        self._by_part_number = {sku.part_number.upper(): sku for sku in skus}

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Sku]:
        return iter(self._by_id.values())

    def get(self, sku_id: str) -> Sku | None:
        return self._by_id.get(sku_id.lower())

    def by_part_number(self, part_number: str) -> Sku:
        """Return the SKU whose String_Id is `part_number`; raise KeyError if the table lacks it."""
        try:
            return self._by_part_number[part_number.strip().upper()]
        except KeyError:
            raise KeyError(f"SKU part number {part_number!r} is not in the licensing reference table") from None


def parse_catalog(path: Path) -> Catalog:
    """Read the reference CSV, stripping stray spaces and dropping repeated rows.

    The file is UTF-8 with a byte order mark and CRLF line ends. Each row is one
    (SKU, service plan) pair, so a SKU's plans are collected across its rows.
    """
    names: dict[str, tuple[str, str]] = {}
    plans: dict[str, dict[str, ServicePlan]] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            sku_id = row["GUID"].strip().lower()
            if not sku_id:
                continue
            names.setdefault(sku_id, (row["String_Id"].strip(), row["Product_Display_Name"].strip()))
            plan_id = row["Service_Plan_Id"].strip().lower()
            if plan_id:
                plan = ServicePlan(
                    service_plan_id=plan_id,
                    name=row["Service_Plan_Name"].strip(),
                    friendly_name=row["Service_Plans_Included_Friendly_Names"].strip(),
                )
                plans.setdefault(sku_id, {}).setdefault(plan_id, plan)
    skus = [
        Sku(
            sku_id=sku_id,
            part_number=part_number,
            display_name=display_name,
            service_plans=tuple(plans.get(sku_id, {}).values()),
        )
        for sku_id, (part_number, display_name) in names.items()
    ]
    logger.debug("Loaded %s SKUs from %s", len(skus), path)
    return Catalog(skus)


@functools.lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """Return the catalog parsed from the reference table shipped in the repository (cached)."""
    return parse_catalog(DEFAULT_CATALOG_PATH)
