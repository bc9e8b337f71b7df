from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "yakuba.audit"
    verbose_name = "監査ログ"
