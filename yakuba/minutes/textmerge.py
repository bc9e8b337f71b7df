"""Three-way merge of a transcript segment's text, character by character.

Two people edit the same segment: each started from ``base`` and one of them saved
first (``theirs``, now in the database); the other's save (``mine``) must keep both.
Japanese has no spaces between words, so the diff is on characters
(``difflib.SequenceMatcher`` with ``autojunk`` off: its "popular character" heuristic
would treat frequent kana such as 「の」 as junk in texts over 200 characters).

Each side is turned into a list of changes to ``base`` (a range of base replaced by
some text; an insertion is an empty range).  Changes that touch each other are grouped;
a group made by one side only is applied; a group where both sides changed the same
stretch applies when both made it read the same, and is a conflict otherwise.  Changes
that merely touch count as the same stretch: two insertions at the same place (which
comes first is a person's choice), or 「再」 inserted right before the 「来」 that the
other side replaced by 「令和8」 (「再令和8年度」 would be nonsense).  Changes with at
least one untouched character between them merge.  Nothing is ever dropped silently: a
conflict gives no text at all.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

__all__ = ["Conflict", "MergeResult", "merge3"]


@dataclass(frozen=True)
class Change:
    """``base[start:end]`` becomes ``text``; ``side`` is 0 for mine, 1 for theirs."""

    start: int
    end: int
    text: str
    side: int


@dataclass(frozen=True)
class Conflict:
    """A stretch of ``base`` that both sides changed differently."""

    start: int
    end: int
    base: str
    mine: str
    theirs: str


@dataclass(frozen=True)
class MergeResult:
    """``text`` is the merge, or None when there are ``conflicts``."""

    text: str | None
    conflicts: tuple[Conflict, ...] = ()

    @property
    def ok(self) -> bool:
        return self.text is not None


def changes(base: str, other: str, side: int) -> list[Change]:
    """The changes that turn ``base`` into ``other``, in order, none touching another."""
    matcher = difflib.SequenceMatcher(None, base, other, autojunk=False)
    return [
        Change(i1, i2, other[j1:j2], side)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


def _touches(group: list[Change], change: Change) -> bool:
    """Whether ``change`` (which starts at or after every change in ``group``) overlaps
    or touches it (starts where a change of the group ends, or earlier)."""
    return any(change.start <= other.end for other in group)


def _groups(all_changes: list[Change]) -> list[list[Change]]:
    ordered = sorted(all_changes, key=lambda c: (c.start, c.end, c.side))
    groups: list[list[Change]] = []
    for change in ordered:
        if groups and _touches(groups[-1], change):
            groups[-1].append(change)
        else:
            groups.append([change])
    return groups


def _apply(base: str, start: int, end: int, side_changes: list[Change]) -> str:
    """``base[start:end]`` with ``side_changes`` (all inside it, in order) applied."""
    pieces: list[str] = []
    position = start
    for change in side_changes:
        pieces.append(base[position : change.start])
        pieces.append(change.text)
        position = change.end
    pieces.append(base[position:end])
    return "".join(pieces)


def merge3(base: str, mine: str, theirs: str) -> MergeResult:
    """Merge ``mine`` and ``theirs``, both edits of ``base``."""
    if mine == theirs or theirs == base:
        return MergeResult(mine)
    if mine == base:
        return MergeResult(theirs)
    groups = _groups(changes(base, mine, 0) + changes(base, theirs, 1))
    pieces: list[str] = []
    conflicts: list[Conflict] = []
    position = 0
    for group in groups:
        start = min(change.start for change in group)
        end = max(change.end for change in group)
        pieces.append(base[position:start])
        position = end
        mine_text = _apply(base, start, end, [c for c in group if c.side == 0])
        theirs_text = _apply(base, start, end, [c for c in group if c.side == 1])
        sides = {change.side for change in group}
        if sides == {0}:
            pieces.append(mine_text)
        elif sides == {1} or mine_text == theirs_text:
            pieces.append(theirs_text)
        else:
            conflicts.append(Conflict(start, end, base[start:end], mine_text, theirs_text))
    pieces.append(base[position:])
    if conflicts:
        return MergeResult(None, tuple(conflicts))
    return MergeResult("".join(pieces))
