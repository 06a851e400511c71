"""Matching of attribute values: "Sales", " sales" and "SALES" are one pool."""
import unicodedata


def clean_spelling(value: str | None) -> str:
    """Trim, collapse inner whitespace and apply Unicode NFC; keeps case for display."""
    if not value:
        return ""
    return " ".join(unicodedata.normalize("NFC", str(value)).split())


def normalize_value(value: str | None) -> str:
    """Return the key two spellings share when they name the same pool."""
    return unicodedata.normalize("NFC", clean_spelling(value).casefold())
