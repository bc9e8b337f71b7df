"""(placeholder: filled by the part of the rooms feature that owns this module)"""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
