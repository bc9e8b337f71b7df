from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TasksConfig(AppConfig):
    name = "yakuba.tasks"
    verbose_name = _("バックグラウンド処理")

    def ready(self) -> None:
        # Each app's tasks module registers its jobs on import.
        import importlib

        from django.apps import apps
        from django.utils.module_loading import module_has_submodule

        for config in apps.get_app_configs():
            if config.name.startswith("yakuba.") and module_has_submodule(config.module, "tasks"):
                importlib.import_module(f"{config.name}.tasks")
