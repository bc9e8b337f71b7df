"""The ward dictionary as the transcription pipeline uses it.

- ``hotwords()``: the active terms, for engines that take a list of words to favour
  (capped: engines slow down, and some refuse, with thousands of them);
- ``corrector()``: a function that replaces each known wrong form (``variants``) by its
  term, for engines that do not take hotwords.  One regular expression per call,
  compiled once: the pipeline calls ``corrector()`` once per job and the function it
  returns once per segment.  ``correct(text)`` does the same for a single text.

Variants are matched longest first, and every term matches itself, so a short variant
never breaks a longer word: with 「野区」 a variant of something, 「中野区」 (a term)
stays as it is.  ASCII variants (what an English model writes) match whole words only
and ignore case.

``correct`` keeps the compiled corrector per process and rebuilds it when the
dictionary changed (a cheap aggregate query tells: the web process and the workers are
different processes, so a signal from the action that changed it would not reach all).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

from django.db.models import Count, Max

from yakuba.minutes.models import DictionaryEntry

__all__ = ["HOTWORD_LIMIT", "correct", "corrector", "hotwords", "invalidate"]

# Enough for a ward's section names, districts and officers; Whisper's prompt and Vosk's
# grammar both get slow or truncated well beyond this.
HOTWORD_LIMIT = 200
ASCII_WORD = re.compile(r"[A-Za-z0-9]")

_lock = threading.Lock()
_cached: tuple[object, Callable[[str], str]] | None = None


def hotwords(limit: int = HOTWORD_LIMIT) -> list[str]:
    """The active terms, most specific (longest) first, at most ``limit`` of them."""
    terms = set(DictionaryEntry.objects.filter(active=True).values_list("term", flat=True))
    return sorted(terms, key=lambda term: (-len(term), term))[:limit]


def _pattern(word: str) -> str:
    escaped = re.escape(word)
    # Whole words for ASCII: "cat" must not touch "category".
    if ASCII_WORD.match(word[0]):
        escaped = r"(?<![A-Za-z0-9])" + escaped
    if ASCII_WORD.match(word[-1]):
        escaped += r"(?![A-Za-z0-9])"
    return escaped


def _replacements() -> dict[str, str]:
    """{wrong form (case-folded): term}, terms mapping to themselves."""
    entries = list(
        DictionaryEntry.objects.filter(active=True).order_by("pk").values_list("term", "variants")
    )
    mapping: dict[str, str] = {}
    for term, variants in entries:
        for line in variants.splitlines():
            variant = line.strip()
            if variant and variant != term:
                mapping.setdefault(variant.casefold(), term)
    for term, _variants in entries:
        mapping.setdefault(term.casefold(), term)
    return mapping


def corrector() -> Callable[[str], str]:
    """A function replacing every variant in a text by its term (identity when the
    dictionary has no variants)."""
    mapping = _replacements()
    if all(key == value.casefold() for key, value in mapping.items()):
        return _identity
    words = sorted(mapping, key=lambda word: (-len(word), word))
    regex = re.compile("|".join(_pattern(word) for word in words), re.IGNORECASE)

    def correct_text(text: str) -> str:
        if not text:
            return text
        return regex.sub(lambda match: mapping.get(match.group().casefold(), match.group()), text)

    return correct_text


def _identity(text: str) -> str:
    return text


def _fingerprint() -> object:
    summary = DictionaryEntry.objects.aggregate(
        count=Count("pk"), last_change=Max("updated_at"), last_id=Max("pk")
    )
    return (summary["count"], summary["last_change"], summary["last_id"])


def invalidate() -> None:
    """Forget this process's corrector (the dictionary actions call it after commit, so
    that a change shows at once here even when the clock stands still in a test)."""
    global _cached
    with _lock:
        _cached = None


def correct(text: str) -> str:
    """``text`` with every variant replaced by its term."""
    global _cached
    fingerprint = _fingerprint()
    with _lock:
        cached = _cached
    if cached is None or cached[0] != fingerprint:
        cached = (fingerprint, corrector())
        with _lock:
            _cached = cached
    return cached[1](text)
