"""Pool schemes, pools, allotments and the audit trail."""
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from graphsync.models import DirectoryUser, Sku, Tenant

from ..choices import AuditAction, Outcome, PoolAttribute


class PoolScheme(models.Model):
    """The one or two user attributes that split a tenant's users into pools."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="scheme", verbose_name=_("tenant"))
    level1_attribute = models.CharField(_("level 1 attribute"), max_length=40, choices=PoolAttribute.choices)
    level2_attribute = models.CharField(
        _("level 2 attribute"), max_length=40, choices=PoolAttribute.choices, blank=True
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("pool scheme")
        verbose_name_plural = _("pool schemes")

    def __str__(self) -> str:
        if self.level2_attribute:
            return f"{self.get_level1_attribute_display()} / {self.get_level2_attribute_display()}"
        return str(self.get_level1_attribute_display())

    def clean(self) -> None:
        if self.level2_attribute and self.level2_attribute == self.level1_attribute:
            raise ValidationError(
                {"level2_attribute": _("Level 2 must use a different attribute than level 1, or none.")}
            )


class PoolQuerySet(models.QuerySet):
    def active(self) -> "PoolQuerySet":
        return self.filter(is_active=True)


class Pool(models.Model):
    """A set of users sharing one attribute value (level 1), or a second value inside a level-1 pool (level 2).

    Membership is derived from the scheme at each sync, never typed in. Pools of a replaced scheme are kept
    inactive so that their allotments and chargeback history stay readable.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="pools", verbose_name=_("tenant"))
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="children", verbose_name=_("parent")
    )
    attribute = models.CharField(_("attribute"), max_length=40, choices=PoolAttribute.choices, blank=True)
    key = models.CharField(_("normalised value"), max_length=300, blank=True)
    display_name = models.CharField(_("name"), max_length=300)
    name_override = models.CharField(_("name set by an administrator"), max_length=300, blank=True)
    is_unassigned = models.BooleanField(_("unassigned pool"), default=False)
    is_active = models.BooleanField(_("active"), default=True)
    merged_into = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="merged_pools",
        verbose_name=_("merged into"),
        help_text=_("The active pool that took over this pool's values, allotments and grants in a merge."),
    )
    default_usage_location = models.CharField(
        _("default usage location"),
        max_length=2,
        blank=True,
        help_text=_("ISO 3166-1 alpha-2 code set on members without a usage location when they get a license."),
    )
    inactivity_threshold_days = models.PositiveIntegerField(
        _("inactivity threshold (days)"),
        null=True,
        blank=True,
        help_text=_("Members without a sign-in for this many days are reclaim candidates; empty uses the tenant's."),
    )
    spare_alert_count = models.PositiveIntegerField(
        _("alert when spare seats fall below"), null=True, blank=True
    )
    spare_alert_percent = models.PositiveSmallIntegerField(
        _("alert when spare falls below this percent of the allotment"), null=True, blank=True
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    objects = PoolQuerySet.as_manager()

    class Meta:
        verbose_name = _("pool")
        verbose_name_plural = _("pools")
        ordering = ["tenant", "parent_id", "display_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "attribute", "key"], condition=Q(parent__isnull=True), name="pool_unique_top_level"
            ),
            models.UniqueConstraint(
                fields=["parent", "attribute", "key"], condition=Q(parent__isnull=False), name="pool_unique_child"
            ),
            # Administrators' names are unique per level, ignoring case, for active and inactive pools alike,
            # so that a pool which becomes active again never collides. ``pools.pool_names`` checks more.
            models.UniqueConstraint(
                Lower("name_override"), "tenant",
                condition=Q(parent__isnull=True) & ~Q(name_override=""), name="pool_unique_top_level_name",
            ),
            models.UniqueConstraint(
                Lower("name_override"), "parent",
                condition=Q(parent__isnull=False) & ~Q(name_override=""), name="pool_unique_child_name",
            ),
            models.CheckConstraint(
                condition=~Q(name_override__startswith=" ") & ~Q(name_override__endswith=" "),
                name="pool_name_trimmed",
            ),
        ]
        permissions = [
            ("manage_pool", _("Assign and revoke licenses, reclaim seats and request seats in the pool")),
            ("operate_pool", _("Assign and revoke licenses in the pool")),
            ("view_pool_chargeback", _("View chargeback reports of the pool")),
        ]

    def __str__(self) -> str:
        if self.parent_id:
            return f"{self.parent.name} / {self.name}"
        return self.name

    @property
    def name(self) -> str:
        return self.name_override or self.display_name

    @property
    def level(self) -> int:
        return 2 if self.parent_id else 1

    def subtree_ids(self) -> list[int]:
        """Return this pool's id and its children's ids: the users a pool counts."""
        return [self.pk, *self.children.values_list("pk", flat=True)]

    def members_queryset(self):
        return DirectoryUser.objects.filter(pool_id__in=self.subtree_ids(), is_deleted=False)


class Allotment(models.Model):
    """The number of seats of one SKU a pool may consume.

    A level-1 pool without an allotment for a SKU has none. A level-2 pool without one draws on its
    parent's allotment without a cap of its own.
    """

    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="allotments", verbose_name=_("pool"))
    sku = models.ForeignKey(Sku, on_delete=models.CASCADE, related_name="allotments", verbose_name=_("SKU"))
    seats = models.PositiveIntegerField(_("seats"))
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("allotment")
        verbose_name_plural = _("allotments")
        constraints = [models.UniqueConstraint(fields=["pool", "sku"], name="allotment_unique_per_pool_sku")]

    def __str__(self) -> str:
        return f"{self.pool}: {self.seats} × {self.sku}"


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("Audit events are append-only and cannot be updated.")

    def delete(self):
        raise TypeError("Audit events are append-only and cannot be deleted.")


class AuditEvent(models.Model):
    """An append-only record of a change made through the portal, with its outcome.

    Names of the actor, pool, user and SKU are copied so the event stays readable after they are gone.
    PostgreSQL also rejects UPDATE and DELETE on this table with a trigger.
    """

    occurred_at = models.DateTimeField(_("occurred at"), auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_name = models.CharField(_("actor"), max_length=200, blank=True)
    action = models.CharField(_("action"), max_length=40, choices=AuditAction.choices)
    outcome = models.CharField(_("outcome"), max_length=20, choices=Outcome.choices, default=Outcome.SUCCEEDED)
    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, null=True, blank=True, related_name="audit_events", verbose_name=_("tenant")
    )
    pool = models.ForeignKey(Pool, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    pool_name = models.CharField(_("pool"), max_length=620, blank=True)
    target_user = models.ForeignKey(DirectoryUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    target = models.CharField(_("target"), max_length=300, blank=True)
    sku = models.ForeignKey(Sku, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    sku_part_number = models.CharField(_("SKU"), max_length=200, blank=True)
    before = models.JSONField(_("before"), null=True, blank=True)
    after = models.JSONField(_("after"), null=True, blank=True)
    message = models.TextField(_("message"), blank=True)
    graph_request_id = models.CharField(_("Graph request ID"), max_length=100, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-occurred_at", "-pk"]
        indexes = [models.Index(fields=["tenant", "occurred_at"], name="audit_tenant_time_idx")]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.action} {self.target} {self.outcome}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("Audit events are append-only and cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("Audit events are append-only and cannot be deleted.")
