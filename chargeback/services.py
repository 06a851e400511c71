"""Changing SKU prices. Each change writes an audit event."""
from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.http import Http404

from graphsync.models import Sku, Tenant
from pools.audit import record_event
from pools.choices import AuditAction
from rbac import scoping

from .models import SkuPrice

logger = logging.getLogger(__name__)


def set_price(
    *,
    acting_user: AbstractBaseUser,
    tenant: Tenant,
    sku: Sku,
    monthly_price: Decimal,
    currency: str,
    effective_from: dt.date,
) -> SkuPrice:
    """Set the monthly price of a SKU from a date on, replacing a price set for that same date.

    The price form requires confirmation for a replacement, and the audit event keeps the replaced price.
    """
    if not scoping.can_administer_tenant(acting_user, tenant) or sku.tenant_id != tenant.pk:
        raise Http404("No such tenant.")
    currency = currency.upper()
    with transaction.atomic():
        existing = SkuPrice.objects.select_for_update().filter(sku=sku, effective_from=effective_from).first()
        before = None
        if existing is not None:
            before = {
                "monthly_price": str(existing.monthly_price), "currency": existing.currency,
                "effective_from": existing.effective_from.isoformat(),
                "set_by": existing.created_by.get_username() if existing.created_by else None,
            }
        price, _created = SkuPrice.objects.update_or_create(
            sku=sku,
            effective_from=effective_from,
            defaults={"tenant": tenant, "monthly_price": monthly_price, "currency": currency, "created_by": acting_user},
        )
        record_event(
            acting_user=acting_user,
            action=AuditAction.PRICE_CHANGED,
            tenant=tenant,
            sku=sku,
            target=sku.part_number,
            before=before,
            after={
                "monthly_price": str(monthly_price),
                "currency": currency,
                "effective_from": effective_from.isoformat(),
            },
        )
    logger.info(
        "Price of %s in tenant %s from %s set to %s %s", sku.part_number, tenant.tenant_id, effective_from,
        monthly_price, currency,
    )
    return price
