from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChatConfig(AppConfig):
    name = "yakuba.chat"
    verbose_name = _("チャット")

    def ready(self) -> None:
        # Topics, ops, directory hooks, checks and periodic jobs register on import.
        from yakuba.chat import (  # noqa: F401
            attachments,
            checks,
            events,
            membership,
            notifications,
            presence,
            retention,
            webhooks,
        )
