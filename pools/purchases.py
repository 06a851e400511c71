"""The purchase ledger: recording purchases, linking them to commerce subscriptions, and totals."""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, DecimalField, ExpressionWrapper, F, Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from graphsync.currencies import NOT_MONEY_CODES, NOT_MONEY_MESSAGE, is_iso_code
from graphsync.models import Sku, Subscription, Tenant
from licensepools.date_validators import validate_purchase_date
from rbac import scoping

from . import capacity, services, stock
from .audit import record_event
from .choices import AuditAction, PurchaseTerm
from .exceptions import AllotmentError, PoolsError
from .models import Allotment, Pool, Purchase

logger = logging.getLogger(__name__)

# A commerce subscription created this many days before or after the purchase date counts as the purchase's.
SUBSCRIPTION_MATCH_DAYS = 3


class PurchaseError(PoolsError):
    """A purchase that cannot be recorded, linked or voided as given."""


class LikelyDuplicatePurchase(PurchaseError):
    """A purchase without an order reference that repeats a recent one; recording it needs confirmation."""


# An identical purchase without an order reference recorded within this time is probably a resubmission.
DUPLICATE_WINDOW = dt.timedelta(days=1)
MAX_VOID_REASON_LENGTH = 1000


@dataclass(frozen=True)
class PurchaseInput:
    sku: Sku
    pool: Pool
    quantity: int
    purchased_on: dt.date
    unit_price: Decimal
    currency: str = ""
    term: str = PurchaseTerm.ANNUAL
    order_reference: str = ""


# Scope


def visible_purchases(user: AbstractBaseUser) -> QuerySet[Purchase]:
    """Purchases of tenants whose whole ledger the user may read (administrators, auditors, finance), and of
    pools (with their level-2 pools) the user may view or whose chargeback the user may read."""
    tenants = scoping.ledger_tenants_for(user).values("pk")
    pools = scoping.ledger_pools_for(user).values("pk")
    return Purchase.objects.filter(Q(tenant__in=tenants) | Q(pool__in=pools)).select_related(
        "tenant", "sku", "pool", "pool__parent", "subscription", "recorded_by", "voided_by"
    )


def tenant_ledger(user: AbstractBaseUser, tenant: Tenant) -> QuerySet[Purchase]:
    """Purchases of the tenant that the user may read, all of them or those of the user's pools; the caller got
    ``tenant`` from ``scoping.get_ledger_tenant_or_404``."""
    return visible_purchases(user).filter(tenant=tenant)


def pool_ledger(user: AbstractBaseUser, pool: Pool) -> QuerySet[Purchase]:
    """Purchases made for the pool or its level-2 pools; the caller got ``pool`` through the scoping path."""
    return visible_purchases(user).filter(pool_id__in=pool.subtree_ids())


# Recording


def _check_input(data: PurchaseInput, tenant: Tenant) -> str:
    """Validate what a form or serializer cannot, and return the currency to store."""
    currency = (data.currency or tenant.currency).strip().upper()
    if not is_iso_code(currency):
        raise PurchaseError(
            _('The currency "%(currency)s" is not an ISO 4217 currency code. Enter a current code such as EUR or USD.')
            % {"currency": data.currency or tenant.currency}
        )
    if currency in NOT_MONEY_CODES:
        raise PurchaseError(str(NOT_MONEY_MESSAGE % {"value": currency}))
    if data.quantity < 1:
        raise PurchaseError(
            _("The quantity must be at least 1; %(quantity)s was given.") % {"quantity": data.quantity}
        )
    if data.unit_price < 0:
        raise PurchaseError(
            _("The unit price cannot be negative; %(price)s was given.") % {"price": data.unit_price}
        )
    if data.purchased_on > timezone.localdate():
        raise PurchaseError(
            _("The purchase date %(date)s is in the future. Record a purchase once it has been made.")
            % {"date": data.purchased_on.isoformat()}
        )
    try:
        validate_purchase_date(data.purchased_on)
    except ValidationError as exc:
        raise PurchaseError(_("Purchase date: %(message)s") % {"message": " ".join(exc.messages)}) from exc
    if data.term not in PurchaseTerm.values:
        raise PurchaseError(
            _("The term %(term)s is unknown; use one of %(terms)s.")
            % {"term": data.term, "terms": ", ".join(PurchaseTerm.values)}
        )
    return currency


def record_purchase(
    *,
    acting_user: AbstractBaseUser,
    data: PurchaseInput,
    subscription: Subscription | None = None,
    link_automatically: bool = True,
    confirm_duplicate: bool = False,
) -> Purchase:
    """Record a purchase and raise the purchasing pool's allotment by its quantity, in one transaction.

    ``subscription`` links the purchase to a commerce subscription the administrator chose. Without it, and
    unless ``link_automatically`` is False, the purchase is linked to the one subscription that matches. Raises PurchaseError when
    the central reserve (``stock.CentralReserve``) does not cover the raise or the tenant already has a purchase with the same order
    reference, and Http404 for a pool, SKU or subscription
    outside the acting user's tenants. Raises LikelyDuplicatePurchase for a purchase without an order reference
    that repeats one recorded within the last day, unless ``confirm_duplicate`` is set.
    """
    pool, sku = data.pool, data.sku
    tenant = pool.tenant
    if not scoping.can_administer_tenant(acting_user, tenant) or not pool.is_active:
        raise Http404("No such pool.")
    if sku.tenant_id != tenant.pk:
        raise Http404("No such SKU in this tenant.")
    if subscription is not None:
        _check_subscription(subscription, sku)
    currency = _check_input(data, tenant)
    order_reference = data.order_reference.strip()
    _check_order_reference(tenant, order_reference)
    if not order_reference and not confirm_duplicate:
        _check_likely_duplicate(data, tenant, currency)

    try:
        purchase = _record(acting_user, data, tenant, currency, order_reference, subscription, link_automatically)
    except IntegrityError:
        # A concurrent submit recorded the same order reference first; the unique index refused this one.
        _check_order_reference(tenant, order_reference)
        raise
    logger.info(
        "Purchase %s of %s x %s recorded for pool %s (tenant %s), subscription %s",
        purchase.pk, purchase.quantity, purchase.sku.part_number, pool.pk, tenant.pk, purchase.subscription_id,
    )
    return purchase


def _record(acting_user, data: PurchaseInput, tenant: Tenant, currency: str, order_reference: str,
            subscription: Subscription | None, link_automatically: bool) -> Purchase:
    pool = data.pool
    with transaction.atomic():
        # Allotment changes of this SKU wait here, so two administrators cannot both spend the same units.
        sku = Sku.objects.select_for_update().get(pk=data.sku.pk)
        plan = capacity.plan_raise(pool, sku, data.quantity)
        if not plan.fits:
            raise PurchaseError(_purchase_rejection(plan))
        capacity.apply_raise(plan, acting_user=acting_user)

        if subscription is None and link_automatically:
            subscription = match_subscription(tenant, sku, data.purchased_on, data.quantity)
        purchase = Purchase.objects.create(
            tenant=tenant, sku=sku, pool=pool, quantity=data.quantity, purchased_on=data.purchased_on,
            unit_price=data.unit_price, currency=currency, term=data.term,
            order_reference=order_reference, recorded_by=acting_user,
            subscription=subscription,
        )
        record_event(
            acting_user=acting_user, action=AuditAction.PURCHASE_RECORDED, tenant=tenant, pool=pool, sku=sku,
            target=str(pool), before={"allotments": plan.audit_before()},
            after={
                "allotments": plan.audit_after(),
                "purchase": purchase.pk,
                "quantity": purchase.quantity,
                "purchasedOn": purchase.purchased_on.isoformat(),
                "unitPrice": str(purchase.unit_price),
                "currency": purchase.currency,
                "term": purchase.term,
                "orderReference": purchase.order_reference,
                "subscription": purchase.subscription.subscription_id if purchase.subscription else None,
            },
        )
    return purchase


def currency_warning(purchase: Purchase) -> str:
    """Return a warning when the purchase's currency is not the tenant's, or an empty string.

    Such a purchase is kept, because an administrator may well buy in USD for an EUR tenant, but the ledger
    totals and chargeback reports add amounts of one currency only.
    """
    if purchase.currency == purchase.tenant.currency:
        return ""
    return _(
        "The purchase is in %(currency)s, but the tenant's currency is %(tenant_currency)s. The ledger totals "
        "%(currency)s amounts separately, and chargeback reports use prices in %(tenant_currency)s only. If "
        "%(currency)s was a mistake, void the purchase and record it again in %(tenant_currency)s."
    ) % {"currency": purchase.currency, "tenant_currency": purchase.tenant.currency}


def _check_order_reference(tenant: Tenant, order_reference: str) -> None:
    """Raise PurchaseError when the tenant already has a purchase with this order reference that is not voided,
    ignoring case.

    Resubmitting the purchase form would otherwise record the purchase, and raise the allotment, twice.
    An empty order reference is never a duplicate.
    """
    if not order_reference:
        return
    existing = (
        Purchase.objects.filter(tenant=tenant, order_reference__iexact=order_reference, voided_at__isnull=True)
        .select_related("sku").order_by("pk").first()
    )
    if existing is None:
        return
    raise PurchaseError(
        _("The order reference “%(reference)s” is already recorded for this tenant: purchase %(id)s of "
          "%(quantity)s seats of %(sku)s on %(date)s. Each order is recorded once. If this is a different "
          "order, enter its own reference; if the existing purchase is wrong, void it in the ledger and record the "
          "order again.")
        % {
            "reference": order_reference, "id": existing.pk, "quantity": existing.quantity,
            "sku": existing.sku.name, "date": existing.purchased_on.isoformat(),
        }
    )


def _purchase_rejection(plan: capacity.AllotmentRaise) -> str:
    return _(
        "Cannot record %(quantity)s seats of %(sku)s for %(pool)s: this needs %(needed)s seats from the central "
        "reserve, which has %(reserve)s: %(parts)s. If the seats were just bought, run a sync after the purchase "
        "shows up in Microsoft 365, then record it again."
    ) % {
        "quantity": plan.quantity, "sku": plan.sku.name, "pool": str(plan.pool), "needed": plan.from_reserve,
        "reserve": plan.reserve, "parts": capacity.describe_reserve(plan.central),
    }


# Subscriptions


def subscription_candidates(tenant: Tenant, sku: Sku) -> QuerySet[Subscription]:
    """Paid commerce subscriptions of the SKU; trials are never bought, so they are left out."""
    return Subscription.objects.filter(tenant=tenant, sku_id=sku.sku_id, is_trial=False).order_by(
        "created_at_graph", "subscription_id"
    )


def match_subscription(tenant: Tenant, sku: Sku, purchased_on: dt.date, quantity: int) -> Subscription | None:
    """Return the one paid subscription of the SKU created near the purchase date or with as many licenses.

    A subscription matching both beats those matching one. Returns None when none or several match equally,
    so that an administrator chooses.
    """
    window = dt.timedelta(days=SUBSCRIPTION_MATCH_DAYS)
    both, either = [], []
    for subscription in subscription_candidates(tenant, sku):
        created = subscription.created_at_graph
        near = created is not None and abs(timezone.localdate(created) - purchased_on) <= window
        same_size = subscription.total_licenses == quantity
        if near and same_size:
            both.append(subscription)
        if near or same_size:
            either.append(subscription)
    if len(both) == 1:
        return both[0]
    if not both and len(either) == 1:
        return either[0]
    return None


def _check_subscription(subscription: Subscription, sku: Sku) -> None:
    if subscription.tenant_id != sku.tenant_id:
        raise Http404("No such subscription in this tenant.")
    if subscription.sku_id != sku.sku_id:
        raise PurchaseError(
            _("The subscription %(subscription)s is for %(other)s, not %(sku)s. Choose a subscription of %(sku)s.")
            % {"subscription": subscription.subscription_id, "other": subscription.part_number, "sku": sku.name}
        )


def link_subscription(
    *, acting_user: AbstractBaseUser, purchase: Purchase, subscription: Subscription | None
) -> Purchase:
    """Link a recorded purchase to a commerce subscription of its SKU, or unlink it with None."""
    if not scoping.can_administer_tenant(acting_user, purchase.tenant):
        raise Http404("No such purchase.")
    if subscription is not None:
        _check_subscription(subscription, purchase.sku)

    with transaction.atomic():
        purchase = Purchase.objects.select_for_update(of=("self",)).select_related("subscription").get(pk=purchase.pk)
        before = purchase.subscription.subscription_id if purchase.subscription else None
        purchase.subscription = subscription
        purchase.save(update_fields=["subscription"])
        record_event(
            acting_user=acting_user, action=AuditAction.PURCHASE_LINKED, tenant=purchase.tenant, pool=purchase.pool,
            sku=purchase.sku, target=str(purchase.pool),
            before={"purchase": purchase.pk, "subscription": before},
            after={"purchase": purchase.pk, "subscription": subscription.subscription_id if subscription else None},
        )
    logger.info(
        "Purchase %s (tenant %s) linked to subscription %s", purchase.pk, purchase.tenant_id,
        subscription.subscription_id if subscription else None,
    )
    return purchase


# Corrections


def _check_likely_duplicate(data: PurchaseInput, tenant: Tenant, currency: str) -> None:
    """Raise LikelyDuplicatePurchase when a purchase of the same SKU, pool, quantity, date and unit price was
    recorded within DUPLICATE_WINDOW and is not voided."""
    existing = (
        Purchase.objects.filter(
            tenant=tenant, sku=data.sku, pool=data.pool, quantity=data.quantity, purchased_on=data.purchased_on,
            unit_price=data.unit_price, currency=currency, voided_at__isnull=True,
            recorded_at__gte=timezone.now() - DUPLICATE_WINDOW,
        )
        .select_related("recorded_by").order_by("-recorded_at").first()
    )
    if existing is None:
        return
    raise LikelyDuplicatePurchase(
        _("Purchase %(id)s, recorded at %(recorded_at)s by %(user)s, has the same SKU, pool, seats, date and unit "
          "price. If this is a second order, confirm that you want to record it again; if not, leave it, because "
          "recording it raises the allotment a second time.")
        % {
            "id": existing.pk, "recorded_at": timezone.localtime(existing.recorded_at).isoformat(timespec="minutes"),
            "user": existing.recorded_by.get_username() if existing.recorded_by else _("a deleted user"),
        }
    )


def void_purchase(*, acting_user: AbstractBaseUser, purchase: Purchase, reason: str) -> Purchase:
    """Void a wrong purchase and lower its pool's allotment by its quantity, in one transaction.

    The purchase stays in the ledger, marked as voided. Raises PurchaseError without a reason, for a purchase
    already voided, and for a pool that no longer exists. Also raises it when the lowered allotment would fall
    below the seats that the pool's users (level-2 pools included) hold, or below what its level-2 pools hold.
    A level-2 purchase leaves the parent's allotment as it is, because the parent may have had those seats
    before.
    """
    if not scoping.can_administer_tenant(acting_user, purchase.tenant):
        raise Http404("No such purchase.")
    reason = reason.strip()
    if not reason:
        raise PurchaseError(_("Give a reason for voiding purchase %(id)s; the ledger shows it.") % {"id": purchase.pk})
    if len(reason) > MAX_VOID_REASON_LENGTH:
        raise PurchaseError(
            _("The reason has %(length)s characters; shorten it to at most %(max)s.")
            % {"length": len(reason), "max": MAX_VOID_REASON_LENGTH}
        )

    with transaction.atomic():
        # The SKU lock comes first, in the same order as recording a purchase takes it.
        Sku.objects.select_for_update().get(pk=purchase.sku_id)
        purchase = Purchase.objects.select_for_update(of=("self",)).select_related("pool", "sku", "tenant").get(
            pk=purchase.pk
        )
        if purchase.is_voided:
            raise PurchaseError(_("Purchase %(id)s is already voided.") % {"id": purchase.pk})
        allotments = _lowered_allotment(purchase)
        try:
            services.set_allotment(
                acting_user=acting_user, pool=purchase.pool, sku=purchase.sku, seats=allotments["after"]
            )
        except AllotmentError as exc:
            raise PurchaseError(_void_rejection(purchase, exc.message)) from exc
        purchase.voided_at = timezone.now()
        purchase.voided_by = acting_user
        purchase.void_reason = reason
        purchase.save(update_fields=["voided_at", "voided_by", "void_reason"])
        record_event(
            acting_user=acting_user, action=AuditAction.PURCHASE_VOIDED, tenant=purchase.tenant, pool=purchase.pool,
            sku=purchase.sku, target=str(purchase.pool),
            before={"purchase": purchase.pk, "voided": False, "allotment": allotments["before"]},
            after={
                "purchase": purchase.pk, "voided": True, "allotment": allotments["after"], "reason": reason,
                "quantity": purchase.quantity, "purchasedOn": purchase.purchased_on.isoformat(),
                "orderReference": purchase.order_reference,
            },
        )
    logger.info(
        "Purchase %s of %s x %s for pool %s (tenant %s) voided; allotment %s -> %s",
        purchase.pk, purchase.quantity, purchase.sku.part_number, purchase.pool_id, purchase.tenant_id,
        allotments["before"], allotments["after"],
    )
    return purchase


def _lowered_allotment(purchase: Purchase) -> dict[str, int]:
    """Return the pool's allotment before and after taking the purchase's seats out, or raise PurchaseError."""
    pool, sku = purchase.pool, purchase.sku
    if not pool.is_active:
        raise PurchaseError(
            _("Purchase %(id)s was for %(pool)s, which no longer exists because it was merged or its scheme "
              "replaced. Correct the allotment of the pool that took its users instead.")
            % {"id": purchase.pk, "pool": str(pool)}
        )
    allotment = Allotment.objects.filter(pool=pool, sku=sku).first()
    current = allotment.seats if allotment else 0
    lowered = current - purchase.quantity
    if lowered < 0:
        raise PurchaseError(_void_rejection(purchase, _(
            "%(pool)s has %(current)s seats allotted, fewer than the %(quantity)s the purchase added, because the "
            "allotment was lowered since. Correct the allotment by hand instead."
        ) % {"pool": str(pool), "current": current, "quantity": purchase.quantity}))
    in_use = stock.holders(pool.tenant, sku, pool.subtree_ids())
    if lowered < in_use:
        raise PurchaseError(_void_rejection(purchase, _(
            "%(pool)s would keep %(lowered)s seats, but its users hold %(in_use)s. Revoke or reclaim %(excess)s "
            "licenses first."
        ) % {"pool": str(pool), "lowered": lowered, "in_use": in_use, "excess": in_use - lowered}))
    return {"before": current, "after": lowered}


def _void_rejection(purchase: Purchase, detail: str) -> str:
    return _("Cannot void purchase %(id)s of %(quantity)s seats of %(sku)s: %(detail)s") % {
        "id": purchase.pk, "quantity": purchase.quantity, "sku": purchase.sku.name, "detail": detail,
    }


# Totals


@dataclass
class LedgerTotal:
    """Seats and money of one pool or one SKU over the purchases shown."""

    label: str
    quantity: int
    amounts: list[tuple[str, Decimal]]
    purchases: int


def _amounts(rows: QuerySet, key: str) -> dict:
    """Map each ``key`` value to a list of (currency, quantity × unit price) sums."""
    result: dict = {}
    for row in rows.values(key, "currency").annotate(amount=Sum(_line_amount())).order_by("currency"):
        result.setdefault(row[key], []).append((row["currency"], row["amount"]))
    return result


def _line_amount():
    return ExpressionWrapper(F("quantity") * F("unit_price"), output_field=DecimalField(max_digits=20, decimal_places=4))


def totals_by_pool(purchases: QuerySet[Purchase]) -> list[LedgerTotal]:
    """Total seats, purchases and amounts per currency for each purchasing pool."""
    amounts = _amounts(purchases, "pool_id")
    pools = {pool.pk: pool for pool in Pool.objects.filter(pk__in=purchases.values("pool_id")).select_related("parent")}
    rows = purchases.values("pool_id").annotate(seats=Sum("quantity"), count=Count("pk")).order_by()
    totals = [
        LedgerTotal(str(pools[row["pool_id"]]), row["seats"], amounts.get(row["pool_id"], []), row["count"])
        for row in rows
    ]
    return sorted(totals, key=lambda total: total.label.casefold())


def totals_by_sku(purchases: QuerySet[Purchase]) -> list[LedgerTotal]:
    """Total seats, purchases and amounts per currency for each SKU."""
    amounts = _amounts(purchases, "sku_id")
    skus = {sku.pk: sku for sku in Sku.objects.filter(pk__in=purchases.values("sku_id"))}
    rows = purchases.values("sku_id").annotate(seats=Sum("quantity"), count=Count("pk")).order_by()
    totals = [
        LedgerTotal(skus[row["sku_id"]].name, row["seats"], amounts.get(row["sku_id"], []), row["count"])
        for row in rows
    ]
    return sorted(totals, key=lambda total: total.label.casefold())
