"""Read pointers (既読): a member's place in a conversation, and in each thread.

A message counts as read when it has been shown: the client reports the newest seq it
showed (``do_mark_read``).  The pointer only moves forward and never past the
conversation's head; each move is one ``ReadMark`` (from, to, when), from which the
readers list of a message is answered.  Not audited (the marks are the record).

The 既読 of others changes live (``events.notify_read``) only where the conversation
shows receipts: where it does not, nobody learns when someone read something.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction

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

__all__ = ["do_mark_read", "do_mark_thread_read", "move_read_pointer"]


def move_read_pointer(
    membership: Membership,
    up_to_seq: int,
    *,
    now: dt.datetime,
    own_message: bool = False,
    recipients: list[int] | None = None,
) -> bool:
    """Move the pointer to ``up_to_seq`` if that is forward, inside the caller's
    transaction: lock the membership row, write it and one ``ReadMark``, settle the
    person's pending mention e-mails up to there, and send the read event after commit
    where receipts are shown.  The caller caps ``up_to_seq`` at the head.

    ``own_message``: ``up_to_seq`` is the person's own message just sent.  When the
    pointer was right before it, no one else's message is newly read, so no 既読 count
    changes: no mark and no event (the common case of a conversation in full flow)."""
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
    if own_message and current >= up_to_seq - 1:
        return True
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
