"""The portal's navigation.  Later features add their entries here; an entry shows only
to people who may use it."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    key: str
    available: bool = True


def navigation_for(request: HttpRequest) -> list[NavItem]:
    user = request.user
    if not user.is_authenticated:
        return []
    items = [
        NavItem(_("ポータル"), _url("portal"), "portal"),
        NavItem(_("チャット"), _url("chat:home"), "chat"),
        NavItem(_("会議室予約"), _url("rooms:home"), "rooms"),
        NavItem(_("Web会議"), "", "meetings", available=False),
        NavItem(_("議事録"), _url("minutes:home"), "minutes"),
        NavItem(_("テレワーク"), "", "telework", available=False),
        NavItem(_("職員名簿"), _url("directory:search"), "directory"),
        *_audit_items(request),
        NavItem(_("アカウント設定"), _url("account"), "account"),
    ]
    return [item for item in items if item.url or not item.available]


def _audit_items(request: HttpRequest) -> list[NavItem]:
    """監査ログ検索, for auditors and IT administrators only."""
    from yakuba.audit.access import can_read_audit_log

    if not can_read_audit_log(request.user):
        return []
    return [NavItem(_("監査ログ"), _url("audit:search"), "audit")]


def _url(name: str) -> str:
    try:
        return reverse(name)
    except NoReverseMatch:
        return ""
