"""Template context shared by every page: the site's names, today's date, navigation.

``today`` is the ward's calendar day (Asia/Tokyo) from the one clock; templates format it
with the ``yakuba_dates`` filters (``{{ today|wareki:True }}``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from yakuba.directory.models import StaffProfile
from yakuba.lib import clock
from yakuba.web.navigation import navigation_for


def shell(request: HttpRequest) -> dict[str, Any]:
    return {
        "site_name": settings.SITE_NAME,
        "municipality_name": settings.MUNICIPALITY_NAME,
        "today": clock.today(),
        "navigation": navigation_for(request),
        "viewer_profile": SimpleLazyObject(lambda: _viewer_profile(request)),
    }


def _viewer_profile(request: HttpRequest) -> StaffProfile | None:
    """The signed-in staff member with their 所属 path (部 課 係) in one query, for the
    header; pages that do not show it (the admin) never run the query."""
    user = request.user
    if not user.is_authenticated or user.kind != "staff":
        return None
    return (
        StaffProfile.objects.select_related("department__parent__parent")
        .filter(user_id=user.pk)
        .first()
    )
