from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


class PoolsConfig(AppConfig):
    name = "pools"
    verbose_name = _("License pools")

    def ready(self) -> None:
        from licensepools.links import check_portal_base_url

        checks.register(check_portal_base_url, checks.Tags.compatibility)
