from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChatConfig(AppConfig):
    name = "yakuba.chat"
    verbose_name = _("チャット")

    def ready(self) -> None:
        # Topics, directory hooks, checks and periodic jobs register themselves on import.
        from yakuba.chat import checks, events, membership, tasks  # noqa: F401
