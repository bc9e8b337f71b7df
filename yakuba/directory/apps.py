from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    name = "yakuba.directory"
    verbose_name = "職員名簿"

    def ready(self) -> None:
        from yakuba.directory import checks  # noqa: F401  (registers system checks)
