"""Matching of attribute values: "Sales", " sales" and "SALES" are one pool.

Directory values arrive as people typed them, sometimes with invisible characters pasted in. Zero-width
spaces, word joiners, byte order marks, soft hyphens, bidirectional embeddings, overrides and
isolates, and control characters are removed, and invisible characters are trimmed from both ends,
so a value made only of such characters counts as blank. Zero-width joiners and non-joiners and the
left-to-right and right-to-left marks stay inside a value, because some scripts need them.
"""
import unicodedata

# Characters that never matter in a name or value and are removed wherever they are.
REMOVED_CHARACTERS = frozenset("\u200b\u2060\ufeff\u00ad\u180e")
# Bidirectional embeddings, overrides and isolates: U+202A to U+202E and U+2066 to U+2069.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Letters that render as blank space (Hangul fillers, the blank Braille pattern).
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def is_invisible(character: str) -> bool:
    return character.isspace() or character in BLANK_LETTERS or unicodedata.category(character) == "Cf"


def _visible_part(text: str) -> str:
    start, end = 0, len(text)
    while start < end and is_invisible(text[start]):
        start += 1
    while end > start and is_invisible(text[end - 1]):
        end -= 1
    return text[start:end]


def clean_spelling(value: str | None) -> str:
    """Apply Unicode NFC, drop invisible and control characters, trim and collapse whitespace; keeps case."""
    if not value:
        return ""
    text = unicodedata.normalize("NFC", str(value))
    if not text.isascii() or not text.isprintable():
        text = "".join(
            character for character in text
            if character not in REMOVED_CHARACTERS and character not in BIDI_CONTROLS
            and (unicodedata.category(character) != "Cc" or character.isspace())
        )
    return _visible_part(" ".join(text.split()))


def normalize_value(value: str | None) -> str:
    """Return the key two spellings share when they name the same pool."""
    return unicodedata.normalize("NFC", clean_spelling(value).casefold())
