from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChargebackConfig(AppConfig):
    name = "chargeback"
    verbose_name = _("Chargeback")
