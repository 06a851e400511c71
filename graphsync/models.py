"""Tenant connections and the local mirror of each tenant's directory."""
import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from . import encryption
from .choices import CapabilityStatus, DriftResolution, LicenseOrigin, LicenseState, SyncKind, SyncStatus

MICROSOFT_AUTHORITY_HOST = "https://login.microsoftonline.com"
MICROSOFT_GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"


class Tenant(models.Model):
    """A Microsoft 365 tenant connected through an Entra app registration (client credentials)."""

    name = models.CharField(_("name"), max_length=200)
    tenant_id = models.UUIDField(_("tenant ID"), unique=True)
    client_id = models.UUIDField(_("client ID"))
    client_secret_encrypted = models.TextField(_("client secret (encrypted)"), editable=False)
    authority_host = models.URLField(_("authority host"), default=MICROSOFT_AUTHORITY_HOST)
    graph_base_url = models.URLField(_("Graph base URL"), default=MICROSOFT_GRAPH_BASE_URL)
    ca_bundle = models.CharField(
        _("CA bundle"),
        max_length=500,
        blank=True,
        help_text=_("Path to a CA certificate file for a Graph emulator; empty uses the system trust store."),
    )
    currency = models.CharField(_("currency"), max_length=3, default="EUR", help_text=_("ISO 4217 code, e.g. EUR."))
    sign_in_activity_available = models.BooleanField(
        _("sign-in activity available"),
        null=True,
        blank=True,
        help_text=_("Whether Graph returns signInActivity (Entra ID P1/P2 and AuditLog.Read.All); empty until a sync tried."),
    )
    last_synced_at = models.DateTimeField(_("last synced at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("tenant")
        verbose_name_plural = _("tenants")
        ordering = ["name"]
        permissions = [
            ("administer_tenant", _("Administer the tenant: schemes, allotments, grants")),
            ("view_chargeback", _("View and download chargeback reports")),
            ("audit_tenant", _("Read everything in the tenant and export the audit trail")),
            ("manage_pools", _("Manage every pool of the tenant")),
            ("operate_pools", _("Assign and revoke licenses in every pool of the tenant")),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def authority(self) -> str:
        return f"{self.authority_host.rstrip('/')}/{self.tenant_id}"

    def set_client_secret(self, secret: str) -> None:
        self.client_secret_encrypted = encryption.encrypt(secret)

    def get_client_secret(self) -> str:
        return encryption.decrypt(self.client_secret_encrypted)


class SyncRun(models.Model):
    """One synchronisation of a tenant's directory into the mirror."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="sync_runs", verbose_name=_("tenant"))
    status = models.CharField(_("status"), max_length=20, choices=SyncStatus.choices, default=SyncStatus.QUEUED)
    kind = models.CharField(_("kind"), max_length=20, choices=SyncKind.choices, default=SyncKind.FULL)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    queued_at = models.DateTimeField(_("queued at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    users_count = models.PositiveIntegerField(_("users"), default=0)
    pages_count = models.PositiveIntegerField(_("pages"), default=0)
    groups_count = models.PositiveIntegerField(_("groups"), default=0)
    skus_count = models.PositiveIntegerField(_("SKUs"), default=0)
    subscriptions_count = models.PositiveIntegerField(_("subscriptions"), default=0)
    error_message = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("sync run")
        verbose_name_plural = _("sync runs")
        ordering = ["-queued_at"]

    def __str__(self) -> str:
        return f"{self.tenant} sync {self.pk} ({self.status})"


class DeltaState(models.Model):
    """The users delta link of a tenant, saved in the same transaction as the mirror it brought up to date."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="delta_state", verbose_name=_("tenant"))
    users_delta_link = models.TextField(_("users delta link"), blank=True)
    licenses_listed_at = models.DateTimeField(
        _("every user's licenses last listed at"),
        null=True,
        blank=True,
        help_text=_("When a sync last read the licenses and sign-in activity of every user, not only changed ones."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("delta state")
        verbose_name_plural = _("delta states")

    def __str__(self) -> str:
        return f"{self.tenant} delta state"


class Sku(models.Model):
    """A subscribed SKU of a tenant as ``subscribedSkus`` reports it."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="skus", verbose_name=_("tenant"))
    sku_id = models.UUIDField(_("SKU ID"))
    part_number = models.CharField(_("part number"), max_length=200)
    display_name = models.CharField(_("product name"), max_length=300, blank=True)
    name_override = models.CharField(_("name override"), max_length=300, blank=True)
    applies_to = models.CharField(_("applies to"), max_length=20, default="User")
    capability_status = models.CharField(
        _("capability status"), max_length=20, choices=CapabilityStatus.choices, default=CapabilityStatus.ENABLED
    )
    consumed_units = models.IntegerField(_("consumed units"), default=0)
    enabled_units = models.IntegerField(_("enabled units"), default=0)
    warning_units = models.IntegerField(_("warning units"), default=0)
    suspended_units = models.IntegerField(_("suspended units"), default=0)
    locked_out_units = models.IntegerField(_("locked-out units"), default=0)
    service_plans = models.JSONField(_("service plans"), default=list)

    class Meta:
        verbose_name = _("SKU")
        verbose_name_plural = _("SKUs")
        ordering = ["tenant", "part_number"]
        constraints = [models.UniqueConstraint(fields=["tenant", "sku_id"], name="sku_unique_per_tenant")]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        """Administrator override, else Microsoft's product name, else the part number."""
        return self.name_override or self.display_name or self.part_number

    @property
    def is_name_mapped(self) -> bool:
        return bool(self.name_override or self.display_name)


class Subscription(models.Model):
    """A commerce subscription from ``directory/subscriptions``."""

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="subscriptions", verbose_name=_("tenant")
    )
    subscription_id = models.CharField(_("subscription ID"), max_length=100)
    commerce_subscription_id = models.CharField(_("commerce subscription ID"), max_length=100, blank=True)
    sku_id = models.UUIDField(_("SKU ID"))
    part_number = models.CharField(_("part number"), max_length=200, blank=True)
    status = models.CharField(_("status"), max_length=20)
    total_licenses = models.IntegerField(_("total licenses"), default=0)
    is_trial = models.BooleanField(_("trial"), default=False)
    created_at_graph = models.DateTimeField(_("created"), null=True, blank=True)
    next_lifecycle_at = models.DateTimeField(_("next lifecycle date"), null=True, blank=True)

    class Meta:
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")
        constraints = [
            models.UniqueConstraint(fields=["tenant", "subscription_id"], name="subscription_unique_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.part_number} {self.subscription_id}"


class DirectoryGroup(models.Model):
    """An Entra ID group, mirrored for group-based licensing."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="groups", verbose_name=_("tenant"))
    group_id = models.UUIDField(_("group ID"))
    display_name = models.CharField(_("display name"), max_length=300, blank=True)
    assigned_licenses = models.JSONField(_("assigned licenses"), default=list)

    class Meta:
        verbose_name = _("directory group")
        verbose_name_plural = _("directory groups")
        constraints = [models.UniqueConstraint(fields=["tenant", "group_id"], name="group_unique_per_tenant")]

    def __str__(self) -> str:
        return self.display_name or str(self.group_id)


class DirectoryUser(models.Model):
    """An Entra ID user with the attributes pool schemes can use."""

    # The unique (tenant, user ID) constraint's index serves lookups by tenant.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="users", verbose_name=_("tenant"), db_index=False
    )
    user_id = models.UUIDField(_("user ID"))
    user_principal_name = models.CharField(_("user principal name"), max_length=300)
    display_name = models.CharField(_("display name"), max_length=300, blank=True)
    account_enabled = models.BooleanField(_("account enabled"), default=True)
    department = models.CharField(_("department"), max_length=300, blank=True)
    company_name = models.CharField(_("company name"), max_length=300, blank=True)
    country = models.CharField(_("country"), max_length=200, blank=True)
    city = models.CharField(_("city"), max_length=200, blank=True)
    office_location = models.CharField(_("office location"), max_length=300, blank=True)
    usage_location = models.CharField(_("usage location"), max_length=2, blank=True)
    job_title = models.CharField(_("job title"), max_length=300, blank=True)
    employee_id = models.CharField(_("employee ID"), max_length=100, blank=True)
    employee_type = models.CharField(_("employee type"), max_length=100, blank=True)
    extension_attributes = models.JSONField(_("extension attributes"), default=dict, blank=True)
    created_at_graph = models.DateTimeField(_("created in Entra ID"), null=True, blank=True)
    last_interactive_sign_in_at = models.DateTimeField(_("last interactive sign-in"), null=True, blank=True)
    last_non_interactive_sign_in_at = models.DateTimeField(_("last non-interactive sign-in"), null=True, blank=True)
    last_successful_sign_in_at = models.DateTimeField(_("last successful sign-in"), null=True, blank=True)
    is_deleted = models.BooleanField(_("deleted"), default=False)
    deletion_reason = models.CharField(
        _("deletion reason"),
        max_length=20,
        blank=True,
        help_text=_("From a users delta @removed entry: 'changed' is soft-deleted and restorable, 'deleted' is gone."),
    )
    pool = models.ForeignKey(
        "pools.Pool",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="members",
        verbose_name=_("pool"),
    )
    synced_at = models.DateTimeField(_("synced at"), null=True, blank=True)

    class Meta:
        verbose_name = _("directory user")
        verbose_name_plural = _("directory users")
        ordering = ["display_name", "user_principal_name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "user_id"], name="user_unique_per_tenant")]
        # The pool's own index serves lookups by pool: a pool belongs to one tenant.

    def __str__(self) -> str:
        return self.user_principal_name


class UserLicense(models.Model):
    """One ``licenseAssignmentStates`` entry of a user, or a seat the portal reserved before calling Graph.

    A user holds a SKU directly (``assigned_by_group`` empty) and through any number of groups, so one
    user and SKU can have several rows.
    """

    # The tenant is the user's, which the user's foreign key already enforces. Without a database
    # constraint and index of its own, a full sync's bulk insert skips a referential check per row.
    # The (tenant, SKU) index serves lookups by tenant, and Django still cascades a tenant's deletion.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant"), db_constraint=False, db_index=False
    )
    # The unique (user, SKU, group) constraint's index serves lookups by user.
    user = models.ForeignKey(
        DirectoryUser, on_delete=models.CASCADE, related_name="licenses", verbose_name=_("user"), db_index=False
    )
    sku = models.ForeignKey(Sku, on_delete=models.CASCADE, related_name="user_licenses", verbose_name=_("SKU"))
    assigned_by_group = models.CharField(
        _("assigned by group"), max_length=36, blank=True, help_text=_("Group ID; empty for a direct assignment.")
    )
    state = models.CharField(_("state"), max_length=30, default=LicenseState.ACTIVE)
    error = models.CharField(_("error"), max_length=100, blank=True, default="None")
    disabled_plans = models.JSONField(_("disabled service plans"), default=list, blank=True)
    last_updated = models.DateTimeField(_("last updated in Graph"), null=True, blank=True)
    reserved_at = models.DateTimeField(_("reserved at"), null=True, blank=True)
    origin = models.CharField(_("origin"), max_length=20, choices=LicenseOrigin.choices, default=LicenseOrigin.EXTERNAL)
    first_seen_at = models.DateTimeField(_("first seen at"), null=True, blank=True)
    drift_resolution = models.CharField(
        _("drift resolution"), max_length=20, choices=DriftResolution.choices, blank=True
    )
    drift_resolved_at = models.DateTimeField(_("drift resolved at"), null=True, blank=True)
    # Nothing looks licenses up by who resolved their drift, so the column has no index to maintain.
    drift_resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )

    class Meta:
        verbose_name = _("user license")
        verbose_name_plural = _("user licenses")
        constraints = [
            models.UniqueConstraint(fields=["user", "sku", "assigned_by_group"], name="user_license_unique_source")
        ]
        indexes = [models.Index(fields=["tenant", "sku"], name="user_license_tenant_sku_idx")]

    def __str__(self) -> str:
        return f"{self.user} {self.sku} {self.assigned_by_group or 'direct'}"

    @property
    def is_direct(self) -> bool:
        return not self.assigned_by_group
