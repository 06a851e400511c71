"""Derive pools and each user's pool from the tenant's scheme."""
from __future__ import annotations

import logging
from collections import Counter, defaultdict

from django.utils.translation import gettext as _

from graphsync.models import DirectoryUser, Tenant

from .choices import PoolAttribute
from .models import Pool, PoolScheme
from .normalization import clean_spelling, normalize_value

logger = logging.getLogger(__name__)

MODEL_FIELD_FOR_ATTRIBUTE = {
    PoolAttribute.DEPARTMENT: "department",
    PoolAttribute.COMPANY_NAME: "company_name",
    PoolAttribute.COUNTRY: "country",
    PoolAttribute.CITY: "city",
    PoolAttribute.OFFICE_LOCATION: "office_location",
    PoolAttribute.USAGE_LOCATION: "usage_location",
    PoolAttribute.JOB_TITLE: "job_title",
    PoolAttribute.EMPLOYEE_TYPE: "employee_type",
}


def attribute_value(user: DirectoryUser, attribute: str) -> str:
    if attribute in MODEL_FIELD_FOR_ATTRIBUTE:
        return getattr(user, MODEL_FIELD_FOR_ATTRIBUTE[attribute])
    if attribute == PoolAttribute.UPN_DOMAIN:
        _local, _at, domain = user.user_principal_name.rpartition("@")
        return domain
    if attribute.startswith("extensionAttribute"):
        return (user.extension_attributes or {}).get(attribute, "") or ""
    raise ValueError(f"Unknown pool attribute {attribute!r}")


def unassigned_pool(tenant: Tenant) -> Pool:
    pool, _created = Pool.objects.get_or_create(
        tenant=tenant,
        parent=None,
        attribute="",
        key="",
        defaults={"display_name": _("Unassigned"), "is_unassigned": True},
    )
    if not pool.is_active:
        pool.is_active = True
        pool.save(update_fields=["is_active"])
    return pool


def _most_common(spellings: Counter) -> str:
    # Ties go to the alphabetically first spelling so that the name does not flip between syncs.
    return sorted(spellings.items(), key=lambda item: (-item[1], item[0]))[0][0]


def recompute_membership(tenant: Tenant) -> int:
    """Create the pools the scheme implies and set every user's pool; return how many users moved.

    A user whose level-1 value is blank goes to the Unassigned pool; a user whose level-2 value is
    blank stays in their level-1 pool.
    """
    unassigned = unassigned_pool(tenant)
    scheme = PoolScheme.objects.filter(tenant=tenant).first()
    users = list(DirectoryUser.objects.filter(tenant=tenant, is_deleted=False))

    if scheme is None:
        Pool.objects.filter(tenant=tenant).exclude(pk=unassigned.pk).update(is_active=False)
        targets = {user.pk: unassigned.pk for user in users}
        return _apply_targets(users, targets)

    level1_attr, level2_attr = scheme.level1_attribute, scheme.level2_attribute
    level1_spellings: dict[str, Counter] = defaultdict(Counter)
    level2_spellings: dict[tuple[str, str], Counter] = defaultdict(Counter)
    user_keys: dict[int, tuple[str, str]] = {}
    for user in users:
        raw1 = attribute_value(user, level1_attr)
        key1 = normalize_value(raw1)
        key2 = ""
        if key1:
            level1_spellings[key1][clean_spelling(raw1)] += 1
            if level2_attr:
                raw2 = attribute_value(user, level2_attr)
                key2 = normalize_value(raw2)
                if key2:
                    level2_spellings[(key1, key2)][clean_spelling(raw2)] += 1
        user_keys[user.pk] = (key1, key2)

    level1_pools = _ensure_pools(tenant, None, level1_attr, level1_spellings)
    level2_pools: dict[tuple[str, str], Pool] = {}
    by_parent: dict[str, dict[str, Counter]] = defaultdict(dict)
    for (key1, key2), spellings in level2_spellings.items():
        by_parent[key1][key2] = spellings
    for key1, pool in level1_pools.items():
        children = _ensure_pools(tenant, pool, level2_attr, by_parent.get(key1, {})) if level2_attr else {}
        for key2, child in children.items():
            level2_pools[(key1, key2)] = child

    active_ids = {unassigned.pk} | {pool.pk for pool in level1_pools.values()} | {p.pk for p in level2_pools.values()}
    current_scheme_pools = Pool.objects.filter(tenant=tenant, parent=None, attribute=level1_attr)
    if level2_attr:
        current_scheme_pools = current_scheme_pools | Pool.objects.filter(
            tenant=tenant, parent__attribute=level1_attr, parent__parent=None, attribute=level2_attr
        )
    # Pools of the current scheme that lost every member stay active: they may still hold allotments.
    active_ids |= set(current_scheme_pools.values_list("pk", flat=True))
    Pool.objects.filter(tenant=tenant).exclude(pk__in=active_ids).update(is_active=False)
    Pool.objects.filter(pk__in=active_ids, is_active=False).update(is_active=True)

    targets = {}
    for user_pk, (key1, key2) in user_keys.items():
        if not key1:
            targets[user_pk] = unassigned.pk
        elif key2 and (key1, key2) in level2_pools:
            targets[user_pk] = level2_pools[(key1, key2)].pk
        else:
            targets[user_pk] = level1_pools[key1].pk
    return _apply_targets(users, targets)


def _ensure_pools(tenant: Tenant, parent: Pool | None, attribute: str, spellings: dict[str, Counter]) -> dict[str, Pool]:
    existing = {pool.key: pool for pool in Pool.objects.filter(tenant=tenant, parent=parent, attribute=attribute)}
    pools: dict[str, Pool] = {}
    for key, counter in spellings.items():
        name = _most_common(counter)
        pool = existing.get(key)
        if pool is None:
            pool = Pool.objects.create(tenant=tenant, parent=parent, attribute=attribute, key=key, display_name=name)
        elif pool.display_name != name:
            pool.display_name = name
            pool.save(update_fields=["display_name"])
        pools[key] = pool
    return pools


def _apply_targets(users: list[DirectoryUser], targets: dict[int, int]) -> int:
    moved = []
    for user in users:
        target = targets[user.pk]
        if user.pool_id != target:
            user.pool_id = target
            moved.append(user)
    DirectoryUser.objects.bulk_update(moved, ["pool"], batch_size=2000)
    if moved:
        logger.info("Pool membership: %s users of tenant %s changed pool", len(moved), users[0].tenant_id)
    return len(moved)
