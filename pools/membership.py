"""Derive pools and each user's pool from the tenant's scheme, value aliases and portal-managed values.

``plan_membership`` computes the result in memory without writing, so the scheme preview and
``recompute_membership`` share one rule set. A pool is identified in a plan by its slot: ``(key1, "")``
for a level-1 pool, ``(key1, key2)`` for a level-2 pool and ``("", "")`` for the Unassigned pool,
where the keys are normalised values.
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Q
from django.utils.translation import gettext as _

from graphsync.models import DirectoryUser, Tenant

from .choices import PoolAttribute
from .models import Pool, PoolAlias, PoolScheme
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

UNASSIGNED_SLOT = ("", "")
# Users whose pool changes are written with one UPDATE per target pool and chunk of this many ids.
UPDATE_CHUNK = 5000

Slot = tuple[str, str]


def attribute_value(user: DirectoryUser, attribute: str) -> str:
    """Return the raw value of ``attribute`` for one user; ``portalValue`` costs a query per user."""
    if attribute in MODEL_FIELD_FOR_ATTRIBUTE:
        return getattr(user, MODEL_FIELD_FOR_ATTRIBUTE[attribute])
    if attribute == PoolAttribute.UPN_DOMAIN:
        _local, _at, domain = user.user_principal_name.rpartition("@")
        return domain
    if attribute.startswith("extensionAttribute"):
        return _text((user.extension_attributes or {}).get(attribute))
    if attribute == PoolAttribute.PORTAL_VALUE:
        from .models import PortalValue

        return PortalValue.objects.filter(user=user).values_list("value", flat=True).first() or ""
    raise ValueError(f"Unknown pool attribute {attribute!r}")


def _text(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _column(attribute: str) -> str:
    """Return the ``values_list`` lookup that reads ``attribute`` in the same query as the users."""
    if attribute in MODEL_FIELD_FOR_ATTRIBUTE:
        return MODEL_FIELD_FOR_ATTRIBUTE[attribute]
    if attribute == PoolAttribute.UPN_DOMAIN:
        return "user_principal_name"
    if attribute.startswith("extensionAttribute") and attribute in PoolAttribute.values:
        return f"extension_attributes__{attribute}"
    if attribute == PoolAttribute.PORTAL_VALUE:
        return "portal_value__value"
    raise ValueError(f"Unknown pool attribute {attribute!r}")


def _raw(attribute: str, value) -> str:
    value = _text(value)
    if attribute == PoolAttribute.UPN_DOMAIN:
        return value.rpartition("@")[2]
    return value


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


@dataclass
class MembershipPlan:
    """Every non-deleted user's target slot and the pools the scheme implies, computed without writing."""

    tenant: Tenant
    level1_attribute: str
    level2_attribute: str
    current: dict[int, int | None] = field(default_factory=dict)
    targets: dict[int, Slot] = field(default_factory=dict)
    # Spellings of values that name their pool directly; aliased values never rename a pool.
    spellings: dict[Slot, Counter] = field(default_factory=lambda: defaultdict(Counter))
    existing: dict[Slot, Pool] = field(default_factory=dict)
    # Existing pools of the scheme that stay active without members, because they may hold allotments.
    kept: dict[Slot, Pool] = field(default_factory=dict)

    def slots(self) -> set[Slot]:
        """Return the slots of every pool that is active after the plan is applied."""
        slots = {UNASSIGNED_SLOT} | set(self.targets.values()) | set(self.kept)
        # A level-2 pool implies its level-1 pool, even when every member of that has a level-2 value.
        return slots | {(key1, "") for key1, key2 in slots if key2}

    def name_of(self, slot: Slot) -> str:
        """Return the display name the pool in ``slot`` gets, ignoring an administrator's name."""
        if slot == UNASSIGNED_SLOT:
            pool = self.existing.get(slot)
            return pool.display_name if pool else _("Unassigned")
        counter = self.spellings.get(slot)
        if counter:
            return _most_common(counter)
        return self.existing[slot].display_name


def plan_membership(tenant: Tenant, level1_attribute: str | None = None, level2_attribute: str = "") -> MembershipPlan:
    """Compute every user's pool under the given attributes, or the tenant's scheme when none are given.

    A user whose level-1 value is blank goes to the Unassigned pool, and a user whose level-2 value is
    blank stays in their level-1 pool. A value with an alias goes to the alias's pool. Reads only.
    """
    if level1_attribute is None:
        scheme = PoolScheme.objects.filter(tenant=tenant).first()
        level1_attribute = scheme.level1_attribute if scheme else ""
        level2_attribute = scheme.level2_attribute if scheme else ""
    plan = MembershipPlan(tenant=tenant, level1_attribute=level1_attribute, level2_attribute=level2_attribute or "")
    _load_existing_pools(plan)

    users = DirectoryUser.objects.filter(tenant=tenant, is_deleted=False)
    if not level1_attribute:
        for pk, pool_id in users.values_list("pk", "pool_id").iterator(chunk_size=10000):
            plan.current[pk] = pool_id
            plan.targets[pk] = UNASSIGNED_SLOT
        return plan

    top_aliases, child_aliases = _load_aliases(plan)
    columns = ["pk", "pool_id", _column(level1_attribute)]
    if plan.level2_attribute:
        columns.append(_column(plan.level2_attribute))
    for row in users.values_list(*columns).iterator(chunk_size=10000):
        pk, pool_id = row[0], row[1]
        plan.current[pk] = pool_id
        plan.targets[pk] = _place(plan, top_aliases, child_aliases, row[2], row[3] if plan.level2_attribute else None)

    _keep_scheme_pools(plan, top_aliases, child_aliases)
    return plan


def _place(plan: MembershipPlan, top_aliases: dict, child_aliases: dict, value1, value2, weight: int = 1) -> Slot:
    """Return the slot of a user with these attribute values and count their spellings ``weight`` times."""
    raw1 = _raw(plan.level1_attribute, value1)
    key1 = normalize_value(raw1)
    if not key1:
        return UNASSIGNED_SLOT
    if key1 in top_aliases:
        key1 = top_aliases[key1]
    else:
        plan.spellings[(key1, "")][clean_spelling(raw1)] += weight
    if not plan.level2_attribute:
        return (key1, "")
    raw2 = _raw(plan.level2_attribute, value2)
    key2 = normalize_value(raw2)
    if not key2:
        return (key1, "")
    if (key1, key2) in child_aliases:
        key2 = child_aliases[(key1, key2)]
    else:
        plan.spellings[(key1, key2)][clean_spelling(raw2)] += weight
    return (key1, key2)


def _load_existing_pools(plan: MembershipPlan) -> None:
    """Index the pools of the tenant that the plan's attributes could reuse, by slot."""
    pools = Pool.objects.filter(tenant=plan.tenant).filter(
        Q(parent=None, attribute="", key="")
        | Q(parent=None, attribute=plan.level1_attribute)
        | Q(parent__parent=None, parent__attribute=plan.level1_attribute, attribute=plan.level2_attribute)
    ).select_related("parent")
    for pool in pools:
        if pool.is_unassigned:
            plan.existing[UNASSIGNED_SLOT] = pool
        elif not plan.level1_attribute:
            continue
        elif pool.parent_id is None:
            plan.existing[(pool.key, "")] = pool
        elif plan.level2_attribute:
            plan.existing[(pool.parent.key, pool.key)] = pool


def _load_aliases(plan: MembershipPlan) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """Map aliased level-1 keys to their pool's key, and (parent key, level-2 key) to the child's key.

    An alias applies only while the scheme uses its attribute at its level and its pool belongs to
    that level, so the aliases of an earlier scheme wait unused until the scheme returns to it.
    """
    top: dict[str, str] = {}
    children: dict[tuple[str, str], str] = {}
    aliases = PoolAlias.objects.filter(tenant=plan.tenant).select_related("pool", "parent")
    for alias in aliases:
        if alias.parent_id is None:
            if alias.attribute == plan.level1_attribute and alias.pool.parent_id is None and alias.pool.attribute == alias.attribute:
                top[alias.alias_key] = alias.pool.key
        elif (
            plan.level2_attribute
            and alias.attribute == plan.level2_attribute
            and alias.parent.parent_id is None
            and alias.parent.attribute == plan.level1_attribute
            and alias.pool.parent_id == alias.parent_id
        ):
            children[(alias.parent.key, alias.alias_key)] = alias.pool.key
    return _follow_chains(top), children


def _follow_chains(aliases: dict[str, str]) -> dict[str, str]:
    """Resolve an alias to a value that is itself aliased (after two merges) to the end of the chain."""
    resolved = {}
    for key, target in aliases.items():
        seen = {key}
        while target in aliases and target not in seen:
            seen.add(target)
            target = aliases[target]
        resolved[key] = target
    return resolved


def _keep_scheme_pools(plan: MembershipPlan, top_aliases: dict, child_aliases: dict) -> None:
    """Keep the scheme's existing pools active even when they lost every member.

    Such a pool may still hold allotments. A pool whose value is aliased to another pool stays
    inactive: its users now belong to the other pool. A level-2 pool stays only under an active parent.
    """
    level1_kept = set()
    for slot, pool in plan.existing.items():
        key1, key2 = slot
        if slot == UNASSIGNED_SLOT or key2 or key1 in top_aliases:
            continue
        plan.kept[slot] = pool
        level1_kept.add(key1)
    active_level1 = level1_kept | {key1 for key1, _key2 in plan.targets.values() if key1}
    for slot, pool in plan.existing.items():
        key1, key2 = slot
        if key2 and key1 in active_level1 and slot not in child_aliases:
            plan.kept[slot] = pool


def recompute_membership(tenant: Tenant) -> int:
    """Create the pools the scheme implies, set every user's pool and return how many users moved."""
    if connection.vendor == "postgresql":
        return _recompute_in_database(tenant)
    return apply_plan(plan_membership(tenant))


def apply_plan(plan: MembershipPlan) -> int:
    """Write a plan: create and rename pools, activate and deactivate them, and move users."""
    tenant = plan.tenant
    pool_ids = _activate_pools(plan)

    moves: dict[int, list[int]] = defaultdict(list)
    for user_pk, slot in plan.targets.items():
        target = pool_ids[slot]
        if plan.current[user_pk] != target:
            moves[target].append(user_pk)
    moved = 0
    for target, user_pks in moves.items():
        for start in range(0, len(user_pks), UPDATE_CHUNK):
            chunk = user_pks[start:start + UPDATE_CHUNK]
            DirectoryUser.objects.filter(pk__in=chunk).update(pool_id=target)
        moved += len(user_pks)
    if moved:
        logger.info("Pool membership: %s users of tenant %s changed pool", moved, tenant.pk)
    return moved


def _activate_pools(plan: MembershipPlan) -> dict[Slot, int]:
    """Create and rename the plan's pools, make exactly those active, and return slot to pool id."""
    pool_ids = _ensure_pools(plan)
    active_ids = set(pool_ids.values())
    Pool.objects.filter(tenant=plan.tenant, is_active=True).exclude(pk__in=active_ids).update(is_active=False)
    Pool.objects.filter(pk__in=active_ids, is_active=False).update(is_active=True)
    return pool_ids


def _value_sql(attribute: str) -> tuple[str, list]:
    """Return SQL reading ``attribute`` of the user row ``member`` as ``_raw`` reads it, and its parameters."""
    if not attribute:
        return "''", []
    if attribute in MODEL_FIELD_FOR_ATTRIBUTE:
        column = DirectoryUser._meta.get_field(MODEL_FIELD_FOR_ATTRIBUTE[attribute]).column
        return f"COALESCE(member.{connection.ops.quote_name(column)}, '')", []
    if attribute == PoolAttribute.UPN_DOMAIN:
        # Everything after the last "@", or the whole name when it has none, as str.rpartition gives.
        return "substring(member.user_principal_name from '[^@]*$')", []
    if attribute.startswith("extensionAttribute") and attribute in PoolAttribute.values:
        return "COALESCE(member.extension_attributes ->> %s, '')", [attribute]
    if attribute == PoolAttribute.PORTAL_VALUE:
        from .models import PortalValue

        table = connection.ops.quote_name(PortalValue._meta.db_table)
        return f"COALESCE((SELECT portal.value FROM {table} AS portal WHERE portal.user_id = member.id), '')", []
    raise ValueError(f"Unknown pool attribute {attribute!r}")


def _recompute_in_database(tenant: Tenant) -> int:
    """``recompute_membership`` in two statements over the users table, for PostgreSQL.

    The rules run once per distinct pair of attribute values instead of once per user: one query counts
    the pairs, and one UPDATE moves the users whose pool differs from their pair's. A sync that changed a
    few users therefore writes only those rows.
    """
    scheme = PoolScheme.objects.filter(tenant=tenant).first()
    plan = MembershipPlan(
        tenant=tenant,
        level1_attribute=scheme.level1_attribute if scheme else "",
        level2_attribute=(scheme.level2_attribute or "") if scheme else "",
    )
    _load_existing_pools(plan)
    value1, params1 = _value_sql(plan.level1_attribute)
    value2, params2 = _value_sql(plan.level2_attribute)
    users = connection.ops.quote_name(DirectoryUser._meta.db_table)

    pairs: dict[tuple[str, str], Slot] = {}
    if plan.level1_attribute:
        top_aliases, child_aliases = _load_aliases(plan)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {value1}, {value2}, count(*) FROM {users} AS member "
                "WHERE member.tenant_id = %s AND NOT member.is_deleted GROUP BY 1, 2",
                [*params1, *params2, tenant.pk],
            )
            for raw1, raw2, count in cursor.fetchall():
                pairs[(raw1, raw2)] = _place(plan, top_aliases, child_aliases, raw1, raw2, count)
        # The plan's slots come from its targets; here each pair stands for its users.
        plan.targets = dict(enumerate(pairs.values()))
        _keep_scheme_pools(plan, top_aliases, child_aliases)
    pool_ids = _activate_pools(plan)

    with connection.cursor() as cursor:
        if not plan.level1_attribute:
            cursor.execute(
                f"UPDATE {users} AS member SET pool_id = %s "
                "WHERE member.tenant_id = %s AND NOT member.is_deleted AND member.pool_id IS DISTINCT FROM %s",
                [pool_ids[UNASSIGNED_SLOT], tenant.pk, pool_ids[UNASSIGNED_SLOT]],
            )
        else:
            cursor.execute(
                f"UPDATE {users} AS member SET pool_id = target.pool_id "
                "FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS target(value1, value2, pool_id) "
                f"WHERE member.tenant_id = %s AND NOT member.is_deleted "
                f"AND {value1} = target.value1 AND {value2} = target.value2 "
                "AND member.pool_id IS DISTINCT FROM target.pool_id",
                [
                    [raw1 for raw1, _raw2 in pairs], [raw2 for _raw1, raw2 in pairs],
                    [pool_ids[slot] for slot in pairs.values()], tenant.pk, *params1, *params2,
                ],
            )
        moved = cursor.rowcount
    if moved:
        logger.info("Pool membership: %s users of tenant %s changed pool", moved, tenant.pk)
    return moved


def _ensure_pools(plan: MembershipPlan) -> dict[Slot, int]:
    """Create missing pools and rename those whose most common spelling changed; return slot to pool id."""
    # Imported here because pool naming builds on this module's plan.
    from .slot_names import name_pools, record_taken_names

    plan.existing[UNASSIGNED_SLOT] = unassigned_pool(plan.tenant)
    result = {UNASSIGNED_SLOT: plan.existing[UNASSIGNED_SLOT].pk}
    slots = plan.slots() - {UNASSIGNED_SLOT}
    naming = name_pools(plan)
    previous = {slot: plan.existing[slot].display_name for slot in naming.taken_by if slot in plan.existing}
    # Level-1 pools are written first because a level-2 slot's parent is the level-1 pool of its key1.
    _create_and_rename(plan, sorted(slot for slot in slots if not slot[1]), None, naming.names)
    _create_and_rename(plan, sorted(slot for slot in slots if slot[1]), plan.level2_attribute, naming.names)
    for slot in slots:
        result[slot] = plan.existing[slot].pk
    record_taken_names(plan, naming, previous)
    return result


def _create_and_rename(
    plan: MembershipPlan, slots: list[Slot], level2_attribute: str | None, names: dict[Slot, str]
) -> None:
    to_create: list[tuple[Slot, Pool]] = []
    to_rename: list[Pool] = []
    for slot in slots:
        name = names[slot]
        pool = plan.existing.get(slot)
        if pool is None:
            if level2_attribute is None:
                pool = Pool(tenant=plan.tenant, parent=None, attribute=plan.level1_attribute, key=slot[0], display_name=name)
            else:
                parent = plan.existing[(slot[0], "")]
                pool = Pool(tenant=plan.tenant, parent=parent, attribute=level2_attribute, key=slot[1], display_name=name)
            to_create.append((slot, pool))
        elif pool.display_name != name:
            pool.display_name = name
            to_rename.append(pool)
    Pool.objects.bulk_create([pool for _slot, pool in to_create], batch_size=1000)
    Pool.objects.bulk_update(to_rename, ["display_name"], batch_size=1000)
    for slot, pool in to_create:
        plan.existing[slot] = pool
