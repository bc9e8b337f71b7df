"""Template context shared by every page: the site's names, today's date, navigation.

``today`` is the ward's calendar day (Asia/Tokyo) from the one clock; templates format it
with the ``yakuba_dates`` filters (``{{ today|wareki:True }}``).  ``today_wareki`` and
``today_seireki`` remain for templates written before the filters existed.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from yakuba.lib import clock
from yakuba.lib.wareki import seireki, wareki
from yakuba.web.navigation import navigation_for


def shell(request: HttpRequest) -> dict[str, Any]:
    today = clock.today()
    return {
        "site_name": settings.SITE_NAME,
        "municipality_name": settings.MUNICIPALITY_NAME,
        "today": today,
        "today_wareki": wareki(today, weekday=True),
        "today_seireki": seireki(today),
        "today_iso": today.isoformat(),
        "navigation": navigation_for(request),
    }
