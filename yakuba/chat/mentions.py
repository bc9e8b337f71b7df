"""@mentions in a message's text: of a person, of a 所属, of the whole conversation.

- ``@username`` names a member of the conversation (``User.username``);
- ``@所属名`` or ``@所属コード`` names the members of that 所属's channel who are in
  this conversation (a 所属 without a channel: the people posted there or below it);
- ``@channel``, ``@all``, ``@全員`` name everyone in the conversation.

Japanese is written without spaces, so ``@aliceさん`` must find ``alice``: after each
``@`` (or the full-width ``＠`` an IME types) the longest known name that starts there
wins.  An ASCII name must not be followed by another ASCII name character, so
``@alicex`` does not mention ``alice``.  Names of people who are not members mention
nobody (a mention never reaches someone outside the conversation).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db.models import Q

from yakuba.chat.models import Conversation, Membership
from yakuba.directory.models import Department, User

MARKS = "@＠"
CHANNEL_WORDS = frozenset({"channel", "all", "全員", "here"})
# The longest name looked for after an ``@`` (usernames are at most 150 characters).
MAX_NAME = 150
ASCII_NAME_CHAR = re.compile(r"[A-Za-z0-9_.\-]")
ASCII_NAME_RUN = re.compile(r"[A-Za-z0-9_.\-]*")
STOP = re.compile(r"[\s@＠]")


@dataclass(frozen=True)
class Mentions:
    """What a text mentions: ``user_ids`` (members named or reached through a 所属, not
    the sender), ``channel`` (the whole conversation) and ``notify_count`` (how many
    people the mention would notify, the sender excluded)."""

    user_ids: list[int] = field(default_factory=list)
    channel: bool = False
    notify_count: int = 0


def candidates(text: str) -> list[str]:
    """The text after each ``@``, up to the next space or ``@`` (at most ``MAX_NAME``)."""
    found: list[str] = []
    for index, char in enumerate(text):
        # ``a@example.jp`` is an e-mail address, not a mention.
        if char in MARKS and not (index and ASCII_NAME_CHAR.match(text[index - 1])):
            rest = text[index + 1 : index + 1 + MAX_NAME]
            stop = STOP.search(rest)
            word = rest[: stop.start()] if stop else rest
            if word:
                found.append(word)
    return found


def longest_known(word: str, known: set[str]) -> str | None:
    """The longest ``known`` name that ``word`` starts with (compared case-folded),
    with an ASCII name not running on into more ASCII name characters."""
    folded = word.casefold()
    for length in range(len(folded), 0, -1):
        prefix = folded[:length]
        if prefix not in known:
            continue
        if ASCII_NAME_CHAR.match(prefix[-1]) and _runs_on(folded[length:]):
            continue
        return prefix
    return None


def _runs_on(rest: str) -> bool:
    """Whether ``rest`` continues an ASCII name (``@alicex``); a full stop or dash that
    ends the sentence (``@alice.``) does not."""
    run = ASCII_NAME_RUN.match(rest)
    return bool(run and run.group(0).rstrip(".-"))


def parse_mentions(text: str, conversation: Conversation, *, sender_id: int | None) -> Mentions:
    """The mentions in ``text`` for a message in ``conversation`` by ``sender_id``.

    Queries: none without an ``@``; otherwise one for the members' usernames, one for
    the 所属, and when 所属 are mentioned at most three more, however many."""
    words = candidates(text)
    if not words:
        return Mentions()
    members: dict[str, int] = {
        username.casefold(): user_id
        for user_id, username in Membership.objects.filter(conversation=conversation)
        .values_list("user_id", "user__username")
        .order_by()
    }
    member_ids = set(members.values())
    departments = list(
        Department.objects.filter(is_active=True).values_list("pk", "parent_id", "code", "name")
    )
    by_name: dict[str, set[int]] = {}
    for pk, _parent, code, name in departments:
        by_name.setdefault(code.casefold(), set()).add(pk)
        by_name.setdefault(name.casefold(), set()).add(pk)
    known = set(members) | set(by_name) | set(CHANNEL_WORDS)

    named: set[int] = set()
    channel = False
    department_ids: set[int] = set()
    for word in words:
        found = longest_known(word, known)
        if found is None:
            continue
        name = found
        if name in CHANNEL_WORDS:
            channel = True
        elif name in members:
            named.add(members[name])
        else:
            department_ids |= by_name[name]
    if department_ids:
        named |= _department_people(department_ids, departments) & member_ids
    named.discard(sender_id or 0)
    notified = (member_ids - {sender_id or 0}) if channel else named
    return Mentions(user_ids=sorted(named), channel=channel, notify_count=len(notified))


def _department_people(
    department_ids: set[int], departments: Sequence[tuple[int, int | None, str, str]]
) -> set[int]:
    """The members of the 所属s' channels, and for a 所属 without a channel the people
    posted there or in a 所属 below it: the same people, by the rule channels follow.
    At most three queries however many 所属 a message names."""
    people: set[int] = set()
    with_channel: set[int] = set()
    for department_id, user_id in Membership.objects.filter(
        conversation__kind=Conversation.Kind.DEPARTMENT,
        conversation__department_id__in=department_ids,
    ).values_list("conversation__department_id", "user_id"):
        with_channel.add(department_id)
        people.add(user_id)
    without = department_ids - with_channel
    if without:
        without -= set(
            Conversation.objects.filter(department_id__in=without).values_list(
                "department_id", flat=True
            )
        )
    if not without:
        return people
    ids = set(without)
    changed = True
    while changed:
        below = {pk for pk, parent, _c, _n in departments if parent in ids and pk not in ids}
        ids |= below
        changed = bool(below)
    return people | set(
        User.objects.filter(is_active=True)
        .filter(Q(staff__department_id__in=ids) | Q(staff__concurrent_posts__department_id__in=ids))
        .values_list("pk", flat=True)
    )
