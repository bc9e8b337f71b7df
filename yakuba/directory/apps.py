from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DirectoryConfig(AppConfig):
    name = "yakuba.directory"
    verbose_name = _("職員名簿")

    def ready(self) -> None:
        from yakuba.directory import checks  # noqa: F401  (registers system checks)
