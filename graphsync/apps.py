from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GraphsyncConfig(AppConfig):
    name = "graphsync"
    verbose_name = _("Microsoft Graph sync")
