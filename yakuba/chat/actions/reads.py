"""Read pointers (既読): a member's place in a conversation, and in each thread.

A message counts as read when it has been shown: the client reports the newest seq it
showed (``do_mark_read``).  The pointer only moves forward and never past the
conversation's head; each move is one ``ReadMark`` (from, to, when), from which the
readers list of a message is answered.  Not audited (the marks are the record).

The 既読 of others changes live (``events.notify_read``) only where the conversation
shows receipts: where it does not, nobody learns when someone read something.

Sending is not reading.  A person's own message never counts as unread to them (the
unread counts leave their own messages out), so sending moves their pointer only where
that changes nothing else: when nobody else's message lies between the pointer and the
message just sent (they were caught up), the pointer moves onto their message silently,
in the send's transaction (``advance_own_pointer``): no ``ReadMark`` (nobody's 既読
count changes, their own message is not counted for them) and no ``read`` event.
Otherwise it stays where it is: jumping it would mark as read what they were never
shown.  Thread pointers follow the same rule for a reply (``advance_own_thread_pointer``).
"""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.db.models import QuerySet

from yakuba.chat import events
from yakuba.chat.models import (
    Conversation,
    Membership,
    MentionNotice,
    Message,
    ReadMark,
    ThreadRead,
)
from yakuba.directory.models import User
from yakuba.lib import clock

__all__ = [
    "advance_own_pointer",
    "advance_own_thread_pointer",
    "do_mark_read",
    "do_mark_thread_read",
    "move_read_pointer",
]


def move_read_pointer(
    membership: Membership,
    up_to_seq: int,
    *,
    now: dt.datetime,
    recipients: list[int] | None = None,
) -> bool:
    """Move the pointer to ``up_to_seq`` if that is forward, inside the caller's
    transaction: lock the membership row, write it and one ``ReadMark``, settle the
    person's pending mention e-mails up to there, and send the read event after commit
    where receipts are shown.  The caller caps ``up_to_seq`` at the head."""
    current = (
        Membership.objects.select_for_update()
        .filter(pk=membership.pk)
        .values_list("last_read_seq", flat=True)
        .first()
    )
    if current is None or up_to_seq <= current:
        if current is not None:
            # Moved meanwhile (another tab): the caller answers with where it is now.
            membership.last_read_seq = current
        return False
    Membership.objects.filter(pk=membership.pk).update(last_read_seq=up_to_seq, last_read_at=now)
    membership.last_read_seq = up_to_seq
    membership.last_read_at = now
    ReadMark.objects.create(
        conversation_id=membership.conversation_id,
        user_id=membership.user_id,
        from_seq=current,
        to_seq=up_to_seq,
        read_at=now,
    )
    MentionNotice.objects.filter(
        user_id=membership.user_id,
        message__conversation_id=membership.conversation_id,
        message__seq__lte=up_to_seq,
        handled_at__isnull=True,
    ).update(handled_at=now, outcome="read")
    if membership.conversation.read_receipts:
        events.notify_read(membership, recipients=recipients)
    return True


def _others_messages(user_id: int, before_seq: int) -> QuerySet[Message]:
    """Messages before ``before_seq`` that are not ``user_id``'s (notices and deleted
    messages included: passing over them would need a mark)."""
    return Message.objects.filter(seq__lt=before_seq).exclude(sender_id=user_id)


# The pointer moves onto the sender's message only if no one else's top-level message
# (notices and deleted ones included) lies after it: the check and the write in one
# statement.  Raw SQL: the ORM's NOT EXISTS with an outer reference cost five times the
# CPU of the statement itself on every send.
_ADVANCE_OWN = (
    "UPDATE {membership} SET last_read_seq = %s, last_read_at = %s "
    "WHERE id = %s AND last_read_seq < %s AND NOT EXISTS ("
    "SELECT 1 FROM {message} m WHERE m.conversation_id = %s AND m.thread_root_id IS NULL "
    "AND m.seq > {membership}.last_read_seq AND m.seq < %s "
    "AND (m.sender_id IS NULL OR m.sender_id <> %s))"
)


def advance_own_pointer(membership: Membership, seq: int, *, now: dt.datetime) -> bool:
    """``membership``'s person just sent the top-level message ``seq``: move their
    pointer onto it if they were caught up (no one else's top-level message after their
    pointer and before ``seq``), silently: no mark, no event, nothing else to settle
    (see the module's docstring).  Otherwise the pointer stays.  Inside the send's
    transaction; one conditional UPDATE (the pointer and the check in one statement, so
    a mark from another tab meanwhile is never moved back).  Returns whether it moved."""
    sql = _ADVANCE_OWN.format(membership=Membership._meta.db_table, message=Message._meta.db_table)
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [seq, at, membership.pk, seq, membership.conversation_id, seq, membership.user_id],
        )
        moved = int(cursor.rowcount)
    if moved:
        membership.last_read_seq = seq
        membership.last_read_at = now
    return moved > 0


def advance_own_thread_pointer(user: User, root: Message, seq: int) -> bool:
    """``user`` just replied ``seq`` in the thread of ``root``: their thread pointer
    moves onto the reply if no one else's reply lies between it and ``seq`` (the rule of
    ``advance_own_pointer``); a thread they never opened counts from 0.  Inside the
    send's transaction.  Queries: the pointer, the check, and the write when it moves."""
    pointer = ThreadRead.objects.filter(root=root, user=user).first()
    start = pointer.last_read_seq if pointer is not None else 0
    if start >= seq:
        return False
    if _others_messages(user.pk, seq).filter(thread_root=root, seq__gt=start).exists():
        return False
    if pointer is None:
        pointer, created = ThreadRead.objects.get_or_create(
            root=root, user=user, defaults={"last_read_seq": seq}
        )
        if created:
            return True
    # Conditional: another tab may have moved it meanwhile (forward only).
    return (
        ThreadRead.objects.filter(pk=pointer.pk, last_read_seq=start).update(last_read_seq=seq) > 0
    )


def do_mark_read(membership: Membership, *, up_to_seq: int) -> bool:
    """``membership``'s person has been shown the conversation up to ``up_to_seq``
    (capped at the head).  Forward only: returns False when the pointer was there or
    beyond already.  Locks the membership row until commit."""
    with transaction.atomic():
        head = (
            Conversation.objects.filter(pk=membership.conversation_id)
            .values_list("last_seq", flat=True)
            .first()
        )
        target = min(int(up_to_seq), int(head or 0))
        if target <= membership.last_read_seq:
            return False
        return move_read_pointer(membership, target, now=clock.now())


def do_mark_thread_read(user: User, root: Message, *, up_to_seq: int) -> bool:
    """``user`` has been shown the thread of ``root`` up to ``up_to_seq`` (capped at its
    newest reply).  Forward only; returns whether the pointer moved."""
    target = min(int(up_to_seq), root.last_reply_seq)
    if target <= 0:
        return False
    with transaction.atomic():
        pointer, created = ThreadRead.objects.get_or_create(
            root=root, user=user, defaults={"last_read_seq": target}
        )
        if created:
            return True
        return (
            ThreadRead.objects.filter(pk=pointer.pk, last_read_seq__lt=target).update(
                last_read_seq=target
            )
            > 0
        )
