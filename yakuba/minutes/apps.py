from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MinutesConfig(AppConfig):
    name = "yakuba.minutes"
    verbose_name = _("議事録")

    def ready(self) -> None:
        from yakuba.minutes import checks, events, tasks  # noqa: F401  (registers checks, topics, jobs)
