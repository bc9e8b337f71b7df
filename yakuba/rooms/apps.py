from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RoomsConfig(AppConfig):
    name = "yakuba.rooms"
    verbose_name = _("会議室")

    def ready(self) -> None:
        from yakuba.rooms import checks, events, tasks  # noqa: F401  (registers checks, jobs, topics)
