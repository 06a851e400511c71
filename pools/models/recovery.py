"""Users exempt from seat reclamation."""
from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from graphsync.models import DirectoryUser, Tenant


class LicenseExemption(models.Model):
    """Keeps a user off the reclaim candidates, e.g. a service account or a shared mailbox that needs its license."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", verbose_name=_("tenant"))
    user = models.OneToOneField(
        DirectoryUser, on_delete=models.CASCADE, related_name="reclaim_exemption", verbose_name=_("user")
    )
    reason = models.CharField(_("reason"), max_length=500)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("reclaim exemption")
        verbose_name_plural = _("reclaim exemptions")

    def __str__(self) -> str:
        return f"{self.user}: {self.reason}"
