"""Permissioned reads of conversations, messages and attachments.  A refusal is
audited (``record_denial``) and answered with 403; what does not exist is a 404.

Who may do what:
- read a conversation (its messages, threads, files, readers): its members.  Staff may
  also read public project channels they have not joined (to look before joining).
  Members of 所属 channels are exactly the people posted (primary or 兼務) in that
  所属 or below it, kept in step with the directory in the same transaction
  (``chat.membership``), so a person transferred out reads nothing more from the date
  the transfer takes effect;
- post, react, mark read: members, while the conversation is not archived.  Guests are
  members of the project channels they were invited to and of nothing else;
- manage a conversation (name, description, members, archive, 既読 setting, webhooks):
  owners of a project channel or group; for a 所属 channel its 所属長; IT administrators
  everywhere but in a person's お知らせ, which only the system writes to;
- edit or delete a message: its sender (deleting also: the conversation's managers);
- retention, legal hold and disclosure exports: IT administrators and auditors (監査)
  (``access_disclosure``).
Bots read and post only where they are members, through the API with a ``chat`` token.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404

from yakuba.audit.record import record_denial
from yakuba.chat.models import Attachment, Conversation, Membership, Message
from yakuba.directory.access import AnyUser, has_role, is_it_admin
from yakuba.directory.models import Role, User


def active_person(user: AnyUser | None) -> User | None:
    """``user`` if it is an active account that may use chat (staff, guest or bot)."""
    if (
        isinstance(user, User)
        and user.is_active
        and user.kind in (User.Kind.STAFF, User.Kind.GUEST, User.Kind.BOT)
    ):
        return user
    return None


def is_staff_member(user: AnyUser | None) -> bool:
    return isinstance(user, User) and user.is_active and user.kind == User.Kind.STAFF


def readable_conversations(user: AnyUser) -> QuerySet[Conversation]:
    """Every conversation ``user`` may read, as one filter (lists, search, sync)."""
    person = active_person(user)
    if person is None:
        return Conversation.objects.none()
    mine = Q(memberships__user=person)
    if person.kind == User.Kind.STAFF:
        mine |= Q(kind=Conversation.Kind.PROJECT, is_private=False)
    return Conversation.objects.filter(pk__in=Conversation.objects.filter(mine).values("pk"))


def membership_of(user: AnyUser, conversation: Conversation) -> Membership | None:
    person = active_person(user)
    if person is None:
        return None
    return Membership.objects.filter(conversation=conversation, user=person).first()


def may_read(user: AnyUser, conversation: Conversation) -> bool:
    person = active_person(user)
    if person is None:
        return False
    if (
        conversation.kind == Conversation.Kind.PROJECT
        and not conversation.is_private
        and person.kind == User.Kind.STAFF
    ):
        return True
    return Membership.objects.filter(conversation=conversation, user=person).exists()


def may_manage(user: AnyUser, conversation: Conversation) -> bool:
    person = active_person(user)
    if person is None or person.kind != User.Kind.STAFF:
        return False
    if conversation.kind == Conversation.Kind.NOTICES:
        return False  # nobody manages a person's お知らせ, not even IT
    if is_it_admin(person):
        return True
    if conversation.kind == Conversation.Kind.DEPARTMENT:
        assert conversation.department is not None
        # The 所属長 of their own 所属: still posted there (a member), so a grant left
        # behind by a transfer does not keep managing the old channel (webhooks, 既読)
        # after the transfer date.
        return (
            has_role(person, Role.SECTION_HEAD, conversation.department)
            and Membership.objects.filter(conversation=conversation, user=person).exists()
        )
    return Membership.objects.filter(
        conversation=conversation, user=person, role=Membership.Role.OWNER
    ).exists()


def _refuse(user: AnyUser, what: str, target: Conversation | Message | Attachment) -> None:
    record_denial(actor=user if isinstance(user, User) else None, what=what, target=target)
    raise PermissionDenied(what)


def _conversation(conversation_id: int) -> Conversation:
    found = Conversation.objects.select_related("department").filter(pk=conversation_id).first()
    if found is None:
        raise Http404("no such conversation")
    return found


def access_conversation(user: AnyUser, conversation_id: int) -> Conversation:
    """The conversation, if ``user`` may read it."""
    conversation = _conversation(conversation_id)
    if not may_read(user, conversation):
        _refuse(user, "chat.read", conversation)
    return conversation


def access_conversation_for_post(user: AnyUser, conversation_id: int) -> Membership:
    """``user``'s membership of the conversation, if they may post there now (a member,
    and the conversation is not archived).  ``membership.conversation`` is loaded.

    One query when the caller is a member (the membership with its conversation; its
    所属 is read only if used); a second one for the conversation only when they are not
    (404 or a refusal)."""
    person = active_person(user)
    membership = (
        Membership.objects.select_related("conversation")
        .filter(conversation_id=conversation_id, user=person)
        .first()
        if person is not None
        else None
    )
    conversation = (
        membership.conversation if membership is not None else _conversation(conversation_id)
    )
    # A person's お知らせ is written by the system only.
    system_only = conversation.kind == Conversation.Kind.NOTICES
    if membership is None or conversation.archived_at is not None or system_only:
        _refuse(user, "chat.post", conversation)
    assert membership is not None
    return membership


def access_conversation_for_manage(user: AnyUser, conversation_id: int) -> Conversation:
    conversation = _conversation(conversation_id)
    if not may_manage(user, conversation):
        _refuse(user, "chat.manage", conversation)
    return conversation


def access_message(user: AnyUser, message_id: int) -> Message:
    """The message, if ``user`` may read its conversation.  ``message.conversation`` is
    loaded."""
    message = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if message is None:
        raise Http404("no such message")
    if not may_read(user, message.conversation):
        _refuse(user, "chat.read", message)
    return message


def access_message_for_change(user: AnyUser, message_id: int, *, delete: bool = False) -> Message:
    """The message, if ``user`` may edit it (its sender) or delete it (its sender or the
    conversation's managers), the conversation is not archived and the message is not
    deleted already."""
    message = access_message(user, message_id)
    own = message.sender_id is not None and message.sender_id == getattr(user, "pk", None)
    allowed = own or (delete and may_manage(user, message.conversation))
    if not allowed or message.conversation.archived_at is not None:
        _refuse(user, "chat.delete" if delete else "chat.edit", message)
    if message.deleted_at is not None:
        raise Http404("message deleted")
    return message


def access_attachment(user: AnyUser, attachment_id: int) -> Attachment:
    """The file, if ``user`` may read its conversation (every download goes here)."""
    attachment = Attachment.objects.select_related("conversation").filter(pk=attachment_id).first()
    if attachment is None:
        raise Http404("no such file")
    if not may_read(user, attachment.conversation):
        _refuse(user, "chat.download", attachment)
    return attachment


def may_disclose(user: AnyUser) -> bool:
    return is_it_admin(user) or (is_staff_member(user) and has_role(user, Role.AUDITOR))


def access_disclosure(user: AnyUser) -> None:
    """Retention, legal hold and disclosure exports: IT administrators and auditors."""
    if not may_disclose(user):
        record_denial(actor=user if isinstance(user, User) else None, what="chat.disclosure")
        raise PermissionDenied("chat.disclosure")
