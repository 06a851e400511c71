"""Product names of SKUs from Microsoft's licensing reference table, looked up by SKU GUID."""
import csv
from functools import lru_cache
from pathlib import Path

REFERENCE_CSV = Path(__file__).resolve().parent / "data" / "licensing-service-plan-reference.csv"


@lru_cache(maxsize=1)
def product_names() -> dict[str, str]:
    """Map lower-case SKU GUIDs to Microsoft's product display names.

    The published file repeats some rows and pads some values with spaces; both are harmless here.
    """
    names: dict[str, str] = {}
    with REFERENCE_CSV.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            names.setdefault(row["GUID"].strip().lower(), row["Product_Display_Name"].strip())
    return names


def product_name(sku_id: str) -> str:
    """Return Microsoft's product name for a SKU GUID, or an empty string when the table lacks it."""
    return product_names().get(str(sku_id).lower(), "")
