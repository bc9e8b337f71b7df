from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "yakuba.audit"
    verbose_name = "監査ログ"

    def ready(self) -> None:
        from yakuba.audit import checks, guard

        guard.install()
        checks.register_checks()
