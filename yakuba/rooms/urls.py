"""The rooms pages.  Each view module lists its own ``urlpatterns``."""

from django.urls import URLPattern

from yakuba.rooms.views import analytics, board, feeds, manage, pages, panel

app_name = "rooms"

urlpatterns: list[URLPattern] = [
    *pages.urlpatterns,
    *manage.urlpatterns,
    *board.urlpatterns,
    *panel.urlpatterns,
    *analytics.urlpatterns,
    *feeds.urlpatterns,
]
