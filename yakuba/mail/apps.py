from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MailConfig(AppConfig):
    name = "yakuba.mail"
    verbose_name = _("メール送信")

    def ready(self) -> None:
        from yakuba.mail import tasks  # noqa: F401  (registers the send job)
