from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "yakuba.web"
    verbose_name = "画面"
