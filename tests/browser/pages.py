"""Every page the application has, found by walking the URLconf, so that pages added
later are checked without anyone listing them here.

A route is visited when it takes no parameters, or when every parameter it takes has a
known sample value (the personas' objects).  Routes under the prefixes in ``NOT_PAGES``
are machine endpoints and routes ending in a file name are downloads, not pages.  The
response decides the rest: only ``text/html`` answers count.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern

NOT_PAGES = ("api/", "static/", "i18n/", "oidc/", "healthz", "metrics", "ws", "admin/")
# The Django admin's own index is checked; its hundreds of model pages are Django's.
EXTRA_PAGES = ("/admin/",)
# A route ending in a file name (``export.csv``, ``openapi.json``) is a download.
DOWNLOAD = re.compile(r"\.[A-Za-z0-9]+$")
CONVERTER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


def page_paths(samples: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(paths to visit, routes skipped for want of a sample value)."""
    paths: list[str] = []
    skipped: list[str] = []
    for route in _routes(get_resolver().url_patterns, ""):
        if route is None or route.startswith(NOT_PAGES) or DOWNLOAD.search(route):
            continue
        filled = _fill(route, samples)
        if filled is None:
            skipped.append(route)
        elif f"/{filled}" not in paths:
            paths.append(f"/{filled}")
    paths += [extra for extra in EXTRA_PAGES if extra not in paths]
    return paths, skipped


def _routes(patterns: list[URLPattern | URLResolver], prefix: str) -> Iterator[str | None]:
    for pattern in patterns:
        if not isinstance(pattern.pattern, RoutePattern):
            yield None  # regex routes (none of ours) cannot be filled in reliably
            continue
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, route)
        else:
            yield route


def _fill(route: str, samples: Mapping[str, str]) -> str | None:
    missing = [m["name"] for m in CONVERTER.finditer(route) if m["name"] not in samples]
    if missing:
        return None
    return CONVERTER.sub(lambda m: samples[m["name"]], route)
