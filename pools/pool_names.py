"""Names that administrators give pools: cleaning, validation and uniqueness among sibling pools.

A name is NFC-normalised, trimmed and its inner whitespace collapsed, like attribute values. Zero-width
spaces, word joiners, byte order marks and soft hyphens are removed. Zero-width joiners and
non-joiners and the left-to-right and right-to-left marks are kept inside a name, because some scripts
need them, but are trimmed from its ends. A name is rejected when it contains no visible character, a
control character or a bidirectional embedding, override or isolate, which can make a name display in
a misleading order.

Two pools of one level share no name, compared ignoring case and invisible characters: the level-1
pools of a tenant, or the level-2 pools of one parent. The database enforces the same for the names
administrators set (``Pool.name_override``), ignoring case, for active and inactive pools alike.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Container

from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from .exceptions import PoolsError
from .models import Pool
from .normalization import BIDI_CONTROLS, REMOVED_CHARACTERS, is_invisible, normalize_value

MAX_NAME_LENGTH = 300

class PoolNameError(PoolsError):
    """A pool name the portal rejects; ``message`` names the value and the fix."""


def code_points(text: str) -> str:
    """Return ``text`` as Unicode code points, such as ``U+200B U+0020``, to show invisible input."""
    return " ".join(f"U+{ord(character):04X}" for character in text)


def clean_pool_name(name: str) -> str:
    """Return ``name`` cleaned for storing, or raise PoolNameError naming the offending character.

    An empty ``name`` returns "", which means that the pool shows its directory spelling again.
    """
    if name == "":
        return ""
    text = unicodedata.normalize("NFC", name)
    for position, character in enumerate(text, start=1):
        if character in BIDI_CONTROLS:
            raise PoolNameError(
                _("The name contains the bidirectional control character %(character)s at position %(position)s, "
                  "which can make the name display in a misleading order. Remove it and enter the name again.")
                % {"character": code_points(character), "position": position}
            )
        if unicodedata.category(character) == "Cc" and not character.isspace():
            raise PoolNameError(
                _("The name contains the control character %(character)s at position %(position)s. Remove it and "
                  "enter the name again.") % {"character": code_points(character), "position": position}
            )

    text = "".join(character for character in text if character not in REMOVED_CHARACTERS)
    text = " ".join(text.split())
    start, end = 0, len(text)
    while start < end and is_invisible(text[start]):
        start += 1
    while end > start and is_invisible(text[end - 1]):
        end -= 1
    cleaned = text[start:end]

    if not cleaned:
        raise PoolNameError(
            _("The name contains no visible character, only spaces or invisible characters (%(characters)s). Enter "
              "a name people can read, or leave the field empty to show the attribute value's spelling again.")
            % {"characters": code_points(name[:20]) + (" …" if len(name) > 20 else "")}
        )
    if len(cleaned) > MAX_NAME_LENGTH:
        raise PoolNameError(
            _("The name has %(length)s characters, but at most %(max)s are allowed. Shorten it.")
            % {"length": len(cleaned), "max": MAX_NAME_LENGTH}
        )
    return cleaned


def name_key(name: str) -> str:
    """Return the key under which two pool names count as the same: case and invisible characters ignored."""
    visible = "".join(character for character in name if not unicodedata.category(character) == "Cf")
    return normalize_value(visible)


def distinct_name(name: str, taken: Container[str]) -> str:
    """Return ``name``, or ``name`` with the first suffix " (2)", " (3)" … whose ``name_key`` is not in ``taken``.

    ``name`` is shortened before the suffix when both together would exceed MAX_NAME_LENGTH.
    """
    if name_key(name) not in taken:
        return name
    number = 2
    while True:
        candidate = _numbered(name, number)
        if len(candidate) > MAX_NAME_LENGTH:
            candidate = _numbered(name[: len(name) - (len(candidate) - MAX_NAME_LENGTH)].rstrip(), number)
        if name_key(candidate) not in taken:
            return candidate
        number += 1


def _numbered(name: str, number: int) -> str:
    return pgettext("pool name taken by another pool", "%(name)s (%(number)s)") % {"name": name, "number": number}


def check_name_available(pool: Pool, name_override: str) -> None:
    """Raise PoolNameError unless ``pool`` may be named ``name_override`` ("" for its directory spelling).

    Locks the pool's siblings, in primary-key order, so that two renames at one level cannot both take a
    name. Call inside the transaction that saves the name.
    """
    siblings = list(
        Pool.objects.select_for_update(of=("self",))
        .filter(tenant_id=pool.tenant_id, parent_id=pool.parent_id)
        .exclude(pk=pool.pk)
        .select_related("parent")
        .order_by("pk")
    )
    effective = name_override or pool.display_name
    key = name_key(effective)
    for other in siblings:
        if other.is_active and name_key(other.name) == key:
            raise PoolNameError(_taken_message(pool, other, effective, cleared=not name_override))
    for other in siblings:
        if not other.is_active and other.name_override and name_key(other.name_override) == key:
            raise PoolNameError(
                _("The inactive pool %(other)s (ID %(id)s) keeps the name “%(name)s” and shows it again when it "
                  "becomes active, so this pool cannot take it. Choose another name.")
                % {"other": other, "id": other.pk, "name": other.name_override}
            )


def _taken_message(pool: Pool, other: Pool, name: str, *, cleared: bool) -> str:
    names = {"other": other, "id": other.pk, "name": name}
    if cleared:
        return _(
            "Pool %(other)s (ID %(id)s) is named “%(name)s”, so this pool cannot show its attribute value's "
            "spelling “%(name)s” again. Rename that pool first, or enter another name for this one."
        ) % names
    if pool.parent_id:
        return _(
            "Pool %(other)s (ID %(id)s) is already named “%(name)s”. Two level-2 pools of %(parent)s cannot share a "
            "name, whatever the letter case, because pages and chargeback reports could not tell them apart. "
            "Choose another name."
        ) % {**names, "parent": pool.parent.name}
    return _(
        "Pool %(other)s (ID %(id)s) is already named “%(name)s”. Two level-1 pools of a tenant cannot share a "
        "name, whatever the letter case, because pages and chargeback reports could not tell them apart. Choose "
        "another name."
    ) % names
