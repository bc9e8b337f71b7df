"""Template filters over the one Japanese date formatter (``yakuba.lib.wareki``).

``{% load yakuba_dates %}`` then ``{{ value|wareki }}`` (令和7年4月1日),
``{{ value|seireki }}`` (2025年4月1日) and ``{{ value|wareki_datetime }}``
(令和7年4月1日(火) 09:00).  Datetimes are shown in Asia/Tokyo whatever the active
time zone; ``None`` and empty values give an empty string, so optional dates need no
``{% if %}``.  Pages never format a date any other way.
"""

from __future__ import annotations

import datetime as dt

from django import template

from yakuba.lib import clock
from yakuba.lib import wareki as formatter

register = template.Library()

DateLike = dt.date | dt.datetime | None


@register.filter(name="wareki")
def wareki_filter(value: DateLike, weekday: bool = False) -> str:
    """令和7年4月1日; ``|wareki:True`` adds the weekday: 令和7年4月1日(火)."""
    if not value:
        return ""
    return formatter.wareki(value, weekday=bool(weekday))


@register.filter(name="seireki")
def seireki_filter(value: DateLike, weekday: bool = False) -> str:
    """2025年4月1日; ``|seireki:True`` adds the weekday."""
    if not value:
        return ""
    return formatter.seireki(value, weekday=bool(weekday))


@register.filter(name="wareki_datetime")
def wareki_datetime_filter(value: dt.datetime | None) -> str:
    """令和7年4月1日(火) 09:00, the Tokyo wall-clock time of an aware datetime."""
    if not value:
        return ""
    local = _tokyo(value)
    return f"{formatter.wareki(local, weekday=True)} {local:%H:%M}"


@register.filter(name="seireki_datetime")
def seireki_datetime_filter(value: dt.datetime | None) -> str:
    """2025年4月1日(火) 09:00, the Western twin of ``wareki_datetime``."""
    if not value:
        return ""
    local = _tokyo(value)
    return f"{formatter.seireki(local, weekday=True)} {local:%H:%M}"


@register.filter(name="iso_local")
def iso_local_filter(value: DateLike) -> str:
    """The machine-readable form for ``<time datetime="…">``, in Tokyo time."""
    if not value:
        return ""
    if isinstance(value, dt.datetime):
        return _tokyo(value).isoformat(timespec="minutes")
    return value.isoformat()


def _tokyo(value: dt.datetime) -> dt.datetime:
    """``value`` in Asia/Tokyo.  A naive datetime is refused rather than guessed at
    (``astimezone`` would take it as the server's local time)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: pass an aware one")
    return clock.local(value)
