"""Members of 所属 channels follow the directory.

Every active department has one 所属 channel (``Conversation.Kind.DEPARTMENT``), named
after the department's full name (総務部 総務課 文書係).  Its members are exactly the
active staff posted in that department or one below it, by primary post or 兼務
(``department_members``).  Nobody joins or leaves such a channel by hand.

Kept in step three ways:
- ``on_memberships_changed`` receives ``yakuba.directory.signals.memberships_changed``
  inside the directory's transaction (staff created, moved, given or relieved of 兼務,
  retired, a personnel transfer batch applied, a CSV import), so on the transfer date a
  person moved out cannot read the old channel a moment after the batch commits;
- ``sync_all`` as the hourly backstop (``chat.sync_memberships``), which also creates
  the channels of new departments and archives those of departments made inactive;
- ``ensure_department_channels`` for the demo and the first start.

The people whose membership changed get a persisted ``conversation`` event (``added`` or
``removed``) after commit, so their open clients refetch their list.  Membership
changes made here are the directory's consequence and not audited again (the directory
audited the change that caused them); channels created or archived here are audited as
the system's.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q, QuerySet

from yakuba.audit.models import AuditAction
from yakuba.audit.record import Actor, record
from yakuba.chat import events
from yakuba.chat.actions.conversations import lock_streams
from yakuba.chat.models import Conversation, Membership
from yakuba.directory.models import ConcurrentPost, Department, StaffProfile, User
from yakuba.directory.signals import memberships_changed
from yakuba.lib import clock
from yakuba.tasks.registry import periodic

log = logging.getLogger(__name__)

SYSTEM_LABEL = "所属チャンネルの同期"
# Users reconciled per round of queries in ``sync_all``.
SYNC_BATCH = 1000
# Stale memberships deleted per statement (by primary key).
DELETE_BATCH = 500
# pg_advisory_xact_lock key that serialises the syncs ("chtm").
SYNC_LOCK = 0x6368746D


@dataclass
class SyncOutcome:
    """What a sync changed: ``{conversation id: [user ids]}`` added and removed, and the
    channels created or archived on the way."""

    added: dict[int, list[int]] = field(default_factory=dict)
    removed: dict[int, list[int]] = field(default_factory=dict)
    created: list[int] = field(default_factory=list)
    archived: list[int] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.created or self.archived)

    def merge(self, other: SyncOutcome) -> None:
        for target, source in ((self.added, other.added), (self.removed, other.removed)):
            for conversation_id, user_ids in source.items():
                target.setdefault(conversation_id, []).extend(user_ids)
        self.created += other.created
        self.archived += other.archived


# --- The tree --------------------------------------------------------------------------


class _Tree:
    """Every department in one query: names, parents, active flags."""

    def __init__(self) -> None:
        rows = Department.objects.values_list("pk", "name", "parent_id", "is_active")
        self.name: dict[int, str] = {}
        self.parent: dict[int, int | None] = {}
        self.active: dict[int, bool] = {}
        for pk, name, parent_id, is_active in rows:
            self.name[pk] = name
            self.parent[pk] = parent_id
            self.active[pk] = is_active

    def full_name(self, pk: int) -> str:
        return " ".join(self.name[d] for d in reversed(self.ancestors(pk)))

    def ancestors(self, pk: int) -> list[int]:
        """``pk`` and the departments above it, nearest first."""
        chain: list[int] = []
        node: int | None = pk
        while node is not None and node not in chain and node in self.parent:
            chain.append(node)
            node = self.parent[node]
        return chain

    def descendants(self, pk: int) -> set[int]:
        children: dict[int | None, list[int]] = defaultdict(list)
        for child, parent in self.parent.items():
            children[parent].append(child)
        found = {pk}
        stack = [pk]
        while stack:
            for child in children[stack.pop()]:
                if child not in found:
                    found.add(child)
                    stack.append(child)
        return found


# --- Channels ------------------------------------------------------------------------------


def ensure_department_channels() -> SyncOutcome:
    """A 所属 channel for every active department (created with no members: ``sync_*``
    fills them), names kept to the departments' full names, and the channels of
    inactive departments archived (unarchived when the department is active again).
    Safe to run twice at once: a channel that another run created first is kept."""
    outcome = SyncOutcome()
    tree = _Tree()
    with transaction.atomic():
        channels = {
            c.department_id: c
            for c in Conversation.objects.filter(kind=Conversation.Kind.DEPARTMENT)
        }
        for department_id, active in tree.active.items():
            channel = channels.get(department_id)
            name = tree.full_name(department_id)[:80]
            if channel is None:
                if active:
                    created = _create_channel(department_id, name)
                    if created is not None:
                        outcome.created.append(created.pk)
                continue
            _refresh_channel(channel, name=name, active=active, outcome=outcome)
    return outcome


def _create_channel(department_id: int, name: str) -> Conversation | None:
    try:
        with transaction.atomic():
            channel = Conversation.objects.create(
                kind=Conversation.Kind.DEPARTMENT,
                department_id=department_id,
                name=name,
                created_at=clock.now(),
            )
            record(
                AuditAction.CHAT_CONVERSATION_CREATED,
                actor=Actor.system(SYSTEM_LABEL),
                target=channel,
                details={"kind": channel.kind, "department_id": department_id},
            )
    except IntegrityError:
        # Another run created it between our read and this insert.
        return None
    return channel


def _refresh_channel(
    channel: Conversation, *, name: str, active: bool, outcome: SyncOutcome
) -> None:
    system = Actor.system(SYSTEM_LABEL)
    if channel.name != name:
        record(
            AuditAction.CHAT_CONVERSATION_CHANGED,
            actor=system,
            target=channel,
            details={"changes": {"name": [channel.name, name]}},
        )
        channel.name = name
        channel.save(update_fields=["name"])
        events.notify_conversation(channel, "changed", events.member_ids(channel.pk))
    if not active and channel.archived_at is None:
        channel.archived_at = clock.now()
        channel.save(update_fields=["archived_at"])
        record(AuditAction.CHAT_ARCHIVED, actor=system, target=channel)
        events.notify_conversation(channel, "archived", events.member_ids(channel.pk))
        outcome.archived.append(channel.pk)
    elif active and channel.archived_at is not None:
        channel.archived_at = None
        channel.save(update_fields=["archived_at"])
        record(AuditAction.CHAT_UNARCHIVED, actor=system, target=channel)
        events.notify_conversation(channel, "unarchived", events.member_ids(channel.pk))


# --- Members -----------------------------------------------------------------------------


def _active_staff() -> Q:
    return Q(
        is_active=True,
        kind=User.Kind.STAFF,
        staff__status=StaffProfile.Status.ACTIVE,
    )


def department_members(department: Department) -> QuerySet[User]:
    """The people a 所属 channel has: active staff whose primary post or 兼務 is the
    department or one below it."""
    ids = sorted(_Tree().descendants(department.pk))
    return (
        User.objects.filter(_active_staff())
        .filter(Q(staff__department_id__in=ids) | Q(staff__concurrent_posts__department_id__in=ids))
        .distinct()
    )


def _wanted_channels(
    user_ids: list[int], tree: _Tree, channels: dict[int, int]
) -> dict[int, set[int]]:
    """``{user id: {conversation ids}}``: the 所属 channels each person belongs in.
    Two queries: the people's primary posts, their 兼務."""
    posts: dict[int, set[int]] = defaultdict(set)
    staff_of: dict[int, int] = {}
    for staff_id, user_id, department_id in StaffProfile.objects.filter(
        user_id__in=user_ids,
        user__is_active=True,
        user__kind=User.Kind.STAFF,
        status=StaffProfile.Status.ACTIVE,
    ).values_list("pk", "user_id", "department_id"):
        staff_of[staff_id] = user_id
        posts[user_id].add(department_id)
    for staff_id, department_id in ConcurrentPost.objects.filter(
        staff_id__in=list(staff_of)
    ).values_list("staff_id", "department_id"):
        posts[staff_of[staff_id]].add(department_id)
    wanted: dict[int, set[int]] = {user_id: set() for user_id in user_ids}
    for user_id, departments in posts.items():
        for department_id in departments:
            # A department made inactive keeps its (archived) channel and the people
            # still posted there, read-only; those moved out leave it as anywhere.
            for above in tree.ancestors(department_id):
                if above in channels:
                    wanted[user_id].add(channels[above])
    return wanted


def sync_users(user_ids: Iterable[int], *, ensure: bool = True) -> SyncOutcome:
    """Make these people's 所属 channel memberships what the directory says: add the
    missing, remove the stale (a person's other memberships are untouched).  A fixed
    number of queries, however many people and channels.  Runs in the caller's
    transaction if there is one; events go after commit."""
    ids = sorted(set(user_ids))
    outcome = SyncOutcome()
    if not ids:
        return outcome
    with transaction.atomic():
        _lock_syncs()
        if ensure:
            outcome.merge(ensure_department_channels())
        tree = _Tree()
        channels = dict(
            Conversation.objects.filter(kind=Conversation.Kind.DEPARTMENT).values_list(
                "department_id", "pk"
            )
        )
        wanted = _wanted_channels(ids, tree, channels)
        held: dict[int, set[int]] = defaultdict(set)
        rows: dict[tuple[int, int], int] = {}
        for pk, user_id, conversation_id in Membership.objects.filter(
            user_id__in=ids, conversation__kind=Conversation.Kind.DEPARTMENT
        ).values_list("pk", "user_id", "conversation_id"):
            held[user_id].add(conversation_id)
            rows[user_id, conversation_id] = pk
        now = clock.now()
        adds: list[Membership] = []
        stale: list[int] = []
        for user_id in ids:
            for conversation_id in sorted(wanted[user_id] - held[user_id]):
                adds.append(
                    Membership(conversation_id=conversation_id, user_id=user_id, joined_at=now)
                )
                outcome.added.setdefault(conversation_id, []).append(user_id)
            gone = held[user_id] - wanted[user_id]
            for conversation_id in sorted(gone):
                stale.append(rows[user_id, conversation_id])
                outcome.removed.setdefault(conversation_id, []).append(user_id)
        if adds:
            # A concurrent sync may have added the same row: the constraint keeps one.
            Membership.objects.bulk_create(adds, batch_size=500, ignore_conflicts=True)
        for start in range(0, len(stale), DELETE_BATCH):
            Membership.objects.filter(pk__in=stale[start : start + DELETE_BATCH]).delete()
        _send_events(outcome)
    return outcome


def _lock_syncs() -> None:
    """One sync at a time, until the transaction ends.  On PostgreSQL a sync reads the
    posts, then the memberships: without the lock, a directory change committing in
    between (its own sync moved the memberships) would be undone from the posts read
    before it, putting a person moved out back into the old channel until the next
    hourly run.  The directory's transaction takes the lock when it syncs, after its
    own writes; a sync that holds the lock first either saw none of those writes or
    all of them.  (SQLite: BEGIN IMMEDIATE serialises every writer already.)"""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SYNC_LOCK])


def _send_events(outcome: SyncOutcome) -> None:
    changed = set(outcome.added) | set(outcome.removed)
    if not changed:
        return
    conversations = {c.pk: c for c in Conversation.objects.filter(pk__in=sorted(changed))}
    lock_streams(
        user_id
        for outcome_part in (outcome.added, outcome.removed)
        for user_ids in outcome_part.values()
        for user_id in user_ids
    )
    for conversation_id, user_ids in outcome.added.items():
        events.notify_conversation(conversations[conversation_id], "added", user_ids)
    for conversation_id, user_ids in outcome.removed.items():
        events.notify_conversation(conversations[conversation_id], "removed", user_ids)
    _switch_off_read_receipts(sorted(outcome.added))


def _switch_off_read_receipts(conversation_ids: list[int]) -> None:
    """所属 channels that grew past CHAT_READ_RECEIPTS_MAX_MEMBERS stop showing 既読
    (one query to count, one to update)."""
    if not conversation_ids:
        return
    limit = settings.CHAT_READ_RECEIPTS_MAX_MEMBERS
    counts = dict(
        Membership.objects.filter(conversation_id__in=conversation_ids)
        .values_list("conversation_id")
        .annotate(count=Count("pk"))
        .values_list("conversation_id", "count")
    )
    big = [pk for pk, count in counts.items() if count > limit]
    if big:
        Conversation.objects.filter(pk__in=big, read_receipts=True).update(read_receipts=False)


def sync_all() -> SyncOutcome:
    """Channels for every active department, then everyone who holds or should hold a
    所属 channel membership reconciled, in batches of ``SYNC_BATCH`` people."""
    outcome = ensure_department_channels()
    people = set(
        StaffProfile.objects.filter(
            status=StaffProfile.Status.ACTIVE, user__is_active=True
        ).values_list("user_id", flat=True)
    )
    people |= set(
        Membership.objects.filter(conversation__kind=Conversation.Kind.DEPARTMENT).values_list(
            "user_id", flat=True
        )
    )
    ordered = sorted(people)
    for start in range(0, len(ordered), SYNC_BATCH):
        outcome.merge(sync_users(ordered[start : start + SYNC_BATCH], ensure=False))
    return outcome


@periodic("chat.sync_memberships", every=dt.timedelta(hours=1))
def sync_memberships() -> None:
    """The hourly backstop: whatever the signal missed (an account ended outside the
    directory's actions, a department deactivated) is put right within the hour."""
    outcome = sync_all()
    if outcome.changed:
        log.info(
            "chat memberships synced: %d channels created, %d archived, %d added, %d removed",
            len(outcome.created),
            len(outcome.archived),
            sum(len(v) for v in outcome.added.values()),
            sum(len(v) for v in outcome.removed.values()),
        )


def on_memberships_changed(sender: Any, *, user_ids: Iterable[int], **kwargs: Any) -> None:
    """The directory changed these people's posts: follow it in the same transaction."""
    sync_users(user_ids)


memberships_changed.connect(on_memberships_changed, dispatch_uid="chat.membership")
