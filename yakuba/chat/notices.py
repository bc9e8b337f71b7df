"""How other features tell people something through chat.

- ``notify_person(user, text)``: into the person's own お知らせ conversation (one per
  person, made when first needed), e.g. "your booking was released";
- ``notify_department(department, text)``: into a 所属's channel, e.g. "the minutes of
  this meeting were approved".

Both run inside the caller's transaction (the message commits or rolls back with the
action that caused it) and send the live event after commit.  The sender shown is the
system (``label``), never a person.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from yakuba.chat import events
from yakuba.chat.actions.messages import do_post_notice
from yakuba.chat.models import Conversation, Membership, Message
from yakuba.directory.models import Department, User

SYSTEM_LABEL = "役場システム"


def notices_conversation(user: User) -> Conversation:
    """The person's お知らせ conversation, made the first time (race-safe: the key and
    the membership are unique, and ``get_or_create`` inserts in a savepoint and reads the
    other's row on a conflict, so two first notices at once end in one conversation with
    one member).  When the membership is new, the person's open clients are told after
    commit (a persisted event, as for any conversation someone is added to)."""
    conversation, _created = Conversation.objects.get_or_create(
        direct_key=f"notices:{user.pk}",
        defaults={"kind": Conversation.Kind.NOTICES, "name": str(_("お知らせ"))},
    )
    _membership, joined = Membership.objects.get_or_create(conversation=conversation, user=user)
    if joined:
        events.notify_conversation(conversation, "added", [user.pk])
    return conversation


def notify_person(user: User, text: str, *, label: str = SYSTEM_LABEL) -> Message | None:
    """Post ``text`` to ``user``'s お知らせ; None for someone who cannot use chat."""
    if not user.is_active or user.kind not in (User.Kind.STAFF, User.Kind.GUEST):
        return None
    return do_post_notice(notices_conversation(user), text, label=label)


def notify_department(
    department: Department, text: str, *, label: str = SYSTEM_LABEL
) -> Message | None:
    """Post ``text`` to the 所属's channel; None when it has none (yet) or it is archived."""
    channel = Conversation.objects.filter(
        department=department, kind=Conversation.Kind.DEPARTMENT, archived_at__isnull=True
    ).first()
    if channel is None:
        return None
    return do_post_notice(channel, text, label=label)
