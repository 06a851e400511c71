"""Names that administrators give SKUs: cleaning, validation and uniqueness among a tenant's SKUs.

A name follows the rules of pool names (``pools.pool_names``): it is NFC-normalised, trimmed and its
inner whitespace collapsed, and it is rejected when it contains no visible character, a control
character or a bidirectional embedding, override or isolate. Two SKUs of a tenant show no name twice,
compared ignoring case and invisible characters, whether the name is an override, Microsoft's product
name or the part number.

``pools`` imports ``graphsync.models``, so its modules are imported inside the functions here.
"""
from __future__ import annotations

import logging
import unicodedata

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils.translation import gettext as _

from .models import Sku

logger = logging.getLogger(__name__)


class SkuNameError(Exception):
    """A SKU name the portal rejects; ``message`` names the value and the fix."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def clean_sku_name(name: str) -> str:
    """Return ``name`` cleaned for storing, or raise SkuNameError; "" means Microsoft's product name is shown."""
    from pools.normalization import BIDI_CONTROLS, is_invisible
    from pools.pool_names import PoolNameError, clean_pool_name, code_points

    if name == "":
        return ""
    text = unicodedata.normalize("NFC", name)
    has_controls = any(
        character in BIDI_CONTROLS or (unicodedata.category(character) == "Cc" and not character.isspace())
        for character in text
    )
    # The pool rule's message for a blank name speaks of attribute values, so blank SKU names get their own.
    if not has_controls and all(is_invisible(character) for character in text):
        raise SkuNameError(
            _("The name contains no visible character, only spaces or invisible characters (%(characters)s). "
              "Enter a name people can read, or leave the field empty to show Microsoft's product name again.")
            % {"characters": code_points(name[:20]) + (" …" if len(name) > 20 else "")}
        )
    try:
        return clean_pool_name(name)
    except PoolNameError as exc:
        raise SkuNameError(exc.message) from None


def check_sku_name_available(sku: Sku, name_override: str) -> None:
    """Raise SkuNameError when another SKU of the tenant shows the name ``sku`` would show.

    Locks the tenant's SKUs in primary-key order, so that two renames cannot both take a name. Call inside
    the transaction that saves the name.
    """
    from pools.pool_names import name_key

    others = list(
        Sku.objects.select_for_update().filter(tenant_id=sku.tenant_id).exclude(pk=sku.pk).order_by("pk")
    )
    shown = name_override or sku.display_name or sku.part_number
    key = name_key(shown)
    other = next((item for item in others if name_key(item.name) == key), None)
    if other is None:
        return
    names = {"other": other.part_number, "name": shown, "part": sku.part_number}
    if not name_override:
        raise SkuNameError(
            _("SKU %(other)s is shown as “%(name)s”, so %(part)s cannot show its product name “%(name)s” again. "
              "Rename that SKU first, or enter another name for this one.") % names
        )
    raise SkuNameError(
        _("SKU %(other)s is already shown as “%(name)s”. Two SKUs of a tenant cannot share a name, whatever the "
          "letter case, because pages and chargeback reports could not tell them apart. Choose another name.")
        % names
    )


def rename_sku(*, acting_user: AbstractBaseUser, sku: Sku, name_override: str) -> Sku:
    """Set the name the portal shows for ``sku`` ("" for Microsoft's product name) and audit the change."""
    from pools.audit import record_event
    from pools.choices import AuditAction

    cleaned = clean_sku_name(name_override)
    with transaction.atomic():
        check_sku_name_available(sku, cleaned)
        before = sku.name
        sku.name_override = cleaned
        sku.save(update_fields=["name_override"])
        record_event(
            acting_user=acting_user, action=AuditAction.SKU_RENAMED, tenant=sku.tenant, sku=sku,
            target=sku.part_number, before={"name": before}, after={"name": sku.name},
        )
    logger.info("SKU %s of tenant %s renamed to %r", sku.part_number, sku.tenant.tenant_id, sku.name)
    return sku
