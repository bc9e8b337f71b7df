"""The chat pages (the JSON API is under /api/chat/, see yakuba/chat/api.py)."""

from django.urls import URLPattern, path

from yakuba.chat import views

app_name = "chat"

urlpatterns: list[URLPattern] = [
    path("", views.home, name="home"),
    path("search/", views.search, name="search"),
]
