"""Japanese first: the UI is Japanese unless the visitor chose English.

Django's LocaleMiddleware would follow the browser's Accept-Language, so a terminal set
up in English would greet ward staff in English.  Here a visitor's choice (the language
cookie that /i18n/setlang/ sets) or, once signed in, the user's own setting
(UserLanguageMiddleware) decides; otherwise Japanese.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation


class JapaneseFirstLocaleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME, "")
        known = {code for code, _name in settings.LANGUAGES}
        language = chosen if chosen in known else settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = language
        response = self.get_response(request)
        response.headers.setdefault("Content-Language", translation.get_language())
        return response
