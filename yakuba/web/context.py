"""Template context shared by every page: the signed-in person, today's date, navigation."""

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
        "today_wareki": wareki(today, weekday=True),
        "today_seireki": seireki(today),
        "today_iso": today.isoformat(),
        "navigation": navigation_for(request),
    }
