from django.urls import path

from yakuba.rooms.views import pages

app_name = "rooms"

urlpatterns = [
    path("", pages.home, name="home"),
]
