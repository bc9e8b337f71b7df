"""Japanese search of chat messages and of their attachments' names.

Japanese has no spaces between words, so the search matches substrings: 「会議室の予約」
is found by 「予約」, 「会議」 and 「会議室」.  Each word of the query (split at spaces,
at most ``MAX_TERMS``) must occur in the message's text or in one of its files' names;
letters match regardless of case.

How a word is looked up (the index: ``migrations/0002_search``):
- three characters or more: the trigram index, SQLite's FTS5 table ``chat_search``
  (the word quoted as one FTS5 phrase, so nothing in it is FTS5 syntax) or pg_trgm's GIN
  index under ``icontains`` on PostgreSQL;
- one or two characters: no trigram holds them, so a ``LIKE`` scan (wildcards escaped by
  Django).  When every word is that short, the scan covers only the newest
  ``SHORT_SCAN_MESSAGES`` messages of the searcher's conversations; the page then says
  where to go on (``next_before``), so nothing is out of reach, only slower to reach.

Privacy: results come only from ``access.readable_conversations(user)``, never deleted
messages (their text is blank and their row leaves the index), and an edited message
is found by its current text only: old texts live in ``MessageRevision``, which only
disclosure exports read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils.translation import gettext as _

from yakuba.chat.access import access_conversation, readable_conversations
from yakuba.chat.actions import ChatError
from yakuba.chat.events import message_dict
from yakuba.chat.models import Attachment, Conversation, Membership, Message
from yakuba.directory.access import AnyUser
from yakuba.directory.models import User
from yakuba.lib.clock import TOKYO

MAX_QUERY_CHARS = 100
MAX_TERMS = 5
MAX_LIMIT = 100
# Trigrams: a shorter word cannot use the index.
INDEXED_MIN_CHARS = 3
# Messages a query of only one- or two-character words scans per page.
SHORT_SCAN_MESSAGES = 20_000
SNIPPET_BEFORE = 30
SNIPPET_LENGTH = 100


@dataclass(frozen=True)
class SearchPage:
    """``results``: newest first.  ``next_before``: pass it as ``before_id`` for the next
    (older) page; None when there is nothing older.  ``scan_limited``: the words were
    all short and only part of the history was scanned for this page."""

    results: list[dict[str, Any]]
    next_before: int | None
    scan_limited: bool


def parse_terms(query: str) -> list[str]:
    """The words of ``query`` (split at spaces, full-width ones too), each once."""
    terms: list[str] = []
    for term in query.split():
        if term not in terms:
            terms.append(term)
    return terms


def tokyo_day_start(day: dt.date) -> dt.datetime:
    """The first instant of ``day`` in Tokyo (00:00 JST = 15:00 UTC the day before)."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=TOKYO)


def search_messages(
    user: AnyUser,
    *,
    query: str,
    conversation_id: int | None = None,
    sender_id: int | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    has_file: bool | None = None,
    limit: int = 30,
    before_id: int | None = None,
) -> SearchPage:
    """Messages ``user`` may read that hold every word of ``query``.

    ``date_from``/``date_to`` are Tokyo calendar days, both included.  A named
    conversation the user may not read is refused (403, audited) rather than answered
    with nothing.  Raises ``ChatError`` for an empty or overlong query or dates in the
    wrong order."""
    query = query.strip()
    if not query:
        raise ChatError(
            _("検索する言葉を入力してください。"),
            "empty search query",
            code="empty_query",
            field="q",
        )
    if len(query) > MAX_QUERY_CHARS:
        raise ChatError(
            _("検索する言葉は%(n)d文字以内にしてください。") % {"n": MAX_QUERY_CHARS},
            f"search query over {MAX_QUERY_CHARS} characters",
            code="query_too_long",
            field="q",
        )
    terms = parse_terms(query)
    if len(terms) > MAX_TERMS:
        raise ChatError(
            _("検索する言葉は%(n)dつまでにしてください。") % {"n": MAX_TERMS},
            f"more than {MAX_TERMS} search words",
            code="too_many_terms",
            field="q",
        )
    if date_from is not None and date_to is not None and date_from > date_to:
        raise ChatError(
            _("期間の開始日が終了日より後になっています。日付を確かめてください。"),
            "date_from is after date_to",
            code="bad_dates",
            field="from",
        )
    limit = max(1, min(limit, MAX_LIMIT))

    scope = Message.objects.filter(
        conversation__in=readable_conversations(user), deleted_at__isnull=True
    )
    if conversation_id is not None:
        scope = scope.filter(conversation=access_conversation(user, conversation_id))
    if sender_id is not None:
        scope = scope.filter(sender_id=sender_id)
    if date_from is not None:
        scope = scope.filter(created_at__gte=tokyo_day_start(date_from))
    if date_to is not None:
        scope = scope.filter(created_at__lt=tokyo_day_start(date_to + dt.timedelta(days=1)))
    if has_file is not None:
        scope = scope.filter(has_file=has_file)
    if before_id is not None:
        scope = scope.filter(pk__lt=before_id)

    scan_limited = False
    boundary: int | None = None
    if all(len(term) < INDEXED_MIN_CHARS for term in terms):
        # The cap: only messages newer than the SHORT_SCAN_MESSAGES-th newest in scope.
        newest = scope.order_by("-pk").values_list("pk", flat=True)
        boundary = next(iter(newest[SHORT_SCAN_MESSAGES : SHORT_SCAN_MESSAGES + 1]), None)
        if boundary is not None:
            scope = scope.filter(pk__gt=boundary)
            scan_limited = True

    found = list(
        _matching(scope, terms)
        .select_related("conversation", "sender")
        .prefetch_related("reactions", "attachments")
        .order_by("-pk")[: limit + 1]
    )
    more = len(found) > limit
    found = found[:limit]
    if more:
        next_before: int | None = found[-1].pk
    elif boundary is not None:
        # The rest lies below the scanned part: continue from just above the boundary.
        next_before = boundary + 1
    else:
        next_before = None

    names = conversation_names(user, {m.conversation for m in found})
    results = []
    for message in found:
        attachments = list(message.attachments.all())
        snippet, highlights = make_snippet(message.text, terms)
        result = message_dict(message, reactions=message.reactions.all(), attachments=attachments)
        result["conversation_name"] = names[message.conversation_id]
        result["conversation_kind"] = message.conversation.kind
        result["snippet"] = snippet
        result["highlights"] = highlights
        result["matched_files"] = [
            a.pk for a in attachments if any(_contains(a.name, term) for term in terms)
        ]
        results.append(result)
    return SearchPage(results=results, next_before=next_before, scan_limited=scan_limited)


def _matching(scope: QuerySet[Message], terms: Sequence[str]) -> QuerySet[Message]:
    """``scope`` narrowed to the messages holding every term."""
    fts = fts_available()
    indexed = [term for term in terms if fts and len(term) >= INDEXED_MIN_CHARS]
    if indexed:
        # One FTS5 query: the terms as quoted phrases, which FTS5 joins with AND.
        match = " ".join('"' + term.replace('"', '""') + '"' for term in indexed)
        scope = scope.filter(
            pk__in=RawSQL("SELECT rowid FROM chat_search WHERE chat_search MATCH %s", [match])
        )
    for term in terms:
        if term in indexed:
            continue
        if len(term) >= INDEXED_MIN_CHARS and connection.vendor == "postgresql":
            # PostgreSQL: each side on its own, so that each is answered from its pg_trgm
            # index (an OR with a correlated EXISTS is evaluated row by row over every
            # readable message, the index unused).  The files' side needs no scope of its
            # own: the outer filter keeps only readable, undeleted messages.
            by_text = Message.objects.filter(text__icontains=term).values("pk")
            by_name = Attachment.objects.filter(name__icontains=term, message__isnull=False).values(
                "message_id"
            )
            scope = scope.filter(Q(pk__in=by_text) | Q(pk__in=by_name))
            continue
        in_files = Attachment.objects.filter(message=OuterRef("pk"), name__icontains=term)
        scope = scope.filter(Q(text__icontains=term) | Exists(in_files))
    return scope


def fts_available() -> bool:
    """Whether the FTS5 table exists (SQLite with trigram support; see the migration).
    Not cached: one lookup in the schema costs microseconds, and a cache would outlive
    a migration run backwards."""
    if connection.vendor != "sqlite":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'chat_search'")
        return cursor.fetchone() is not None


def _fold(text: str) -> str:
    """Lower case, if that keeps the length (so offsets stay valid); else as it is."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text


def _contains(text: str, term: str) -> bool:
    return _fold(term) in _fold(text)


def make_snippet(text: str, terms: Sequence[str]) -> tuple[str, list[list[int]]]:
    """A short excerpt of ``text`` around the first word found, and where the words
    occur in it (``[start, end)`` character offsets), for the client to highlight.
    Plain text: the client escapes it."""
    folded = _fold(text)
    first = min((at for at in (folded.find(_fold(term)) for term in terms) if at >= 0), default=0)
    start = max(0, first - SNIPPET_BEFORE)
    end = min(len(text), start + SNIPPET_LENGTH)
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(text) else ""
    excerpt = text[start:end]
    folded_excerpt = _fold(excerpt)
    highlights: list[list[int]] = []
    for term in terms:
        needle = _fold(term)
        at = folded_excerpt.find(needle)
        while at >= 0:
            highlights.append([len(prefix) + at, len(prefix) + at + len(needle)])
            at = folded_excerpt.find(needle, at + len(needle))
    highlights.sort()
    return prefix + excerpt + suffix, highlights


def conversation_names(user: AnyUser, conversations: set[Conversation]) -> dict[int, str]:
    """What each conversation is called for ``user``: its name, or for a direct or
    group message without one, the other members' names (one query for all)."""
    names = {c.pk: c.name for c in conversations if c.name}
    unnamed = [c.pk for c in conversations if not c.name]
    if unnamed:
        others: dict[int, list[str]] = {pk: [] for pk in unnamed}
        memberships = (
            Membership.objects.filter(conversation_id__in=unnamed)
            .exclude(user_id=user.pk if isinstance(user, User) else 0)
            .select_related("user")
            .order_by("conversation_id", "user__display_name", "user_id")
        )
        for membership in memberships:
            others[membership.conversation_id].append(str(membership.user))
        for pk in unnamed:
            names[pk] = "、".join(others[pk]) or str(next(c for c in conversations if c.pk == pk))
    return names
