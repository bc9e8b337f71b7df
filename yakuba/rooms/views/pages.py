"""Rooms pages (placeholder until the booking UI lands)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path

from yakuba.rooms.access import access_rooms


@login_required
def home(request: HttpRequest) -> HttpResponse:
    access_rooms(request.user)
    return render(request, "rooms/home.html", {})


urlpatterns: list[URLPattern] = [path("", home, name="home")]
