from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditConfig(AppConfig):
    name = "yakuba.audit"
    verbose_name = _("監査ログ")

    def ready(self) -> None:
        from yakuba.audit import checks, guard

        guard.install()
        checks.register_checks()
