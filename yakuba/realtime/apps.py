from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "yakuba.realtime"
    verbose_name = "リアルタイム通知"
