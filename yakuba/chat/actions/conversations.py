"""Conversations: project channels, direct and group messages, their members and settings.

Every write checks what it is given (a ``ChatError`` carries the Japanese message and the
English), runs in one ``transaction.atomic()``, is audited there (``AuditAction.CHAT_*``)
and tells the people concerned with a persisted ``conversation`` event after commit
(``events.notify_conversation``): the members, plus whoever was removed.

The caller has fetched the conversation through ``chat.access`` (for a change,
``access_conversation_for_manage``); when ``acting_user`` is a person the actions check
the rule again, so a CLI or API caller cannot skip it: a refusal is a ``ChatError`` with
status 403, audited like every refusal (``record_denial``).  ``Actor.system(...)`` (the
demo, the CLI) is not checked.

Rules:
- 所属 channels follow the directory (``chat.membership``): nobody is added, removed,
  joins or leaves by hand, their name is the department's, and they are archived only
  when the department is made inactive;
- a direct message is one per pair of people (``direct_key``), staff or bots, never a
  guest; it has no name and is never archived;
- a group message is 2 to ``GROUP_MAX`` staff, made by one of them;
- guests are members of the project channels they were invited to and of nothing else;
- a project channel's name is unique among the channels not archived;
- a conversation made with more than CHAT_READ_RECEIPTS_MAX_MEMBERS members starts with
  既読 off.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from yakuba.audit.models import AuditAction
from yakuba.audit.record import Actor, record, record_denial
from yakuba.chat import access, events
from yakuba.chat.actions import ChatError
from yakuba.chat.models import Conversation, Membership
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.realtime.models import EventStream

Acting = User | Actor

NAME_MAX = 80
DESCRIPTION_MAX = 500
GROUP_MIN = 2
GROUP_MAX = 50
# pg_advisory_xact_lock key that serialises the name check of project channels ("chat").
NAME_LOCK = 0x63686174
# Control characters (line breaks and tabs allowed in a description): PostgreSQL refuses
# NUL in text, and the others would show as garbage in every list.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

Kind = Conversation.Kind


# --- Checks -------------------------------------------------------------------------------


def _person(acting_user: Acting) -> User | None:
    """The person acting, or None for the system (not checked)."""
    return acting_user if isinstance(acting_user, User) else None


def _forbidden(
    person: User | None,
    what: str,
    target: Conversation | None,
    message: str,
    english: str,
) -> ChatError:
    """A refusal (403), audited as every refusal is (``record_denial``, in a transaction
    of its own: the caller raises before writing anything)."""
    record_denial(actor=person, what=what, target=target)
    return ChatError(message, english, code="forbidden", status=403)


def _require_staff(acting_user: Acting, what: str) -> User | None:
    person = _person(acting_user)
    if person is not None and not access.is_staff_member(person):
        raise _forbidden(
            person,
            "chat.create",
            None,
            _("%(what)sことができるのは職員だけです。") % {"what": what},
            f"only staff may {what}",
        )
    return person


def _require_manager(conversation: Conversation, acting_user: Acting) -> None:
    person = _person(acting_user)
    if person is not None and not access.may_manage(person, conversation):
        raise _forbidden(
            person,
            "chat.manage",
            conversation,
            _(
                "この会話を管理する権限がありません。"
                "オーナー、所属長または情報システム管理者に依頼してください。"
            ),
            "not allowed to manage this conversation",
        )


def _require_open(conversation: Conversation) -> None:
    if conversation.archived_at is not None:
        raise ChatError(
            _("アーカイブされた会話は変更できません。先にアーカイブを解除してください。"),
            "the conversation is archived",
            code="archived",
            status=409,
        )


def _refuse_department(conversation: Conversation, what: str) -> None:
    if conversation.kind == Kind.DEPARTMENT:
        raise ChatError(
            _(
                "所属チャンネルの参加者は職員名簿（所属・兼務）に従うため、%(what)sことはできません。"
            )
            % {"what": what},
            f"department channel members follow the directory: cannot {what}",
            code="department_channel",
        )


def _refuse_notices(conversation: Conversation, what: str) -> None:
    if conversation.kind == Kind.NOTICES:
        raise ChatError(
            _("お知らせはシステムだけが使う会話のため、%(what)sことはできません。")
            % {"what": what},
            f"a person's notices are the system's: cannot {what}",
            code="notices",
        )


def _refuse_direct(conversation: Conversation, what: str) -> None:
    if conversation.kind == Kind.DIRECT:
        raise ChatError(
            _(
                "ダイレクトメッセージでは%(what)sことはできません。"
                "グループメッセージを作成してください。"
            )
            % {"what": what},
            f"direct messages do not allow this: {what}",
            code="direct_message",
        )


def _names(users: Iterable[User]) -> str:
    return _("、").join(user.display_name or user.username for user in users)


def _check_people(users: Sequence[User], kinds: set[str], *, where: str) -> None:
    """Everyone active and of one of ``kinds``; a guest only where guests may be."""
    inactive = [user for user in users if not user.is_active]
    if inactive:
        raise ChatError(
            _("利用が停止されている人は追加できません（%(names)s）。")
            % {"names": _names(inactive)},
            "inactive users cannot be added",
            code="inactive_user",
            field="members",
            details={"users": [user.pk for user in inactive]},
        )
    guests = [user for user in users if user.kind == User.Kind.GUEST]
    if guests and User.Kind.GUEST not in kinds:
        raise ChatError(
            _(
                "ゲスト（%(names)s）は招待されたプロジェクトチャンネルにだけ参加できます。"
                "%(where)sには追加できません。"
            )
            % {"names": _names(guests), "where": where},
            f"guests may only be members of project channels, not of a {where}",
            code="guest_not_allowed",
            field="members",
            details={"users": [user.pk for user in guests]},
        )
    other = [user for user in users if user.kind not in kinds and user.kind != User.Kind.GUEST]
    if other:
        raise ChatError(
            _("%(where)sに追加できない利用者が含まれています（%(names)s）。")
            % {"where": where, "names": _names(other)},
            f"users of this kind cannot be members of a {where}",
            code="kind_not_allowed",
            field="members",
            details={"users": [user.pk for user in other]},
        )


def _clean_name(name: str, *, required: bool) -> str:
    name = " ".join(name.split())
    if CONTROL.search(name):
        raise ChatError(
            _("名前に使えない文字（制御文字）が含まれています。取り除いてください。"),
            "the name holds control characters",
            field="name",
        )
    if required and not name:
        raise ChatError(_("チャンネル名を入力してください。"), "enter a name", field="name")
    if len(name) > NAME_MAX:
        raise ChatError(
            _("名前は%(max)d文字以内にしてください。") % {"max": NAME_MAX},
            f"the name must be at most {NAME_MAX} characters",
            field="name",
        )
    return name


def _clean_description(description: str) -> str:
    description = description.strip()
    if CONTROL.search(description):
        raise ChatError(
            _("説明に使えない文字（制御文字）が含まれています。取り除いてください。"),
            "the description holds control characters",
            field="description",
        )
    if len(description) > DESCRIPTION_MAX:
        raise ChatError(
            _("説明は%(max)d文字以内にしてください。") % {"max": DESCRIPTION_MAX},
            f"the description must be at most {DESCRIPTION_MAX} characters",
            field="description",
        )
    return description


def _check_unique_name(name: str, *, exclude: int | None = None) -> None:
    """Refuse a name an open project channel has.  Inside the caller's transaction; on
    PostgreSQL two creations or renames wait for each other here (there is no unique
    index: archived channels may share a name), on SQLite BEGIN IMMEDIATE does it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [NAME_LOCK])
    taken = Conversation.objects.filter(
        kind=Kind.PROJECT, archived_at__isnull=True, name__iexact=name
    )
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise ChatError(
            _(
                "「%(name)s」という名前のチャンネルは既にあります。"
                "別の名前にするか、既存のチャンネルに参加してください。"
            )
            % {"name": name},
            "a project channel with this name exists",
            code="name_taken",
            status=409,
            field="name",
        )


def lock_streams(user_ids: Iterable[int]) -> None:
    """Lock the event-stream heads of everyone this transaction is about to send events
    to, in ascending user id.  Each ``send_event_on_commit`` locks its own recipients in
    that order, but two sends with recipients in another order could deadlock with a
    transaction doing the same; taking every lock first keeps one order.  (SQLite: its
    one write lock is held already.)"""
    ids = sorted(set(user_ids))
    if ids and connection.vendor == "postgresql":
        heads = EventStream.objects.select_for_update().filter(user_id__in=ids)
        list(heads.order_by("user_id").values_list("user_id", flat=True))


def _unique_users(users: Iterable[User]) -> list[User]:
    seen: dict[int, User] = {}
    for user in users:
        seen.setdefault(user.pk, user)
    return list(seen.values())


def _add_rows(conversation: Conversation, users: Sequence[User], role: str) -> list[Membership]:
    now = clock.now()
    return Membership.objects.bulk_create(
        [
            Membership(conversation=conversation, user=user, role=role, joined_at=now)
            for user in users
        ]
    )


def _locked(conversation: Conversation) -> Conversation:
    """The conversation's row, locked until the transaction ends (member counts, the
    owner rule and the state are read under it)."""
    locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
    conversation.archived_at = locked.archived_at
    conversation.read_receipts = locked.read_receipts
    conversation.name = locked.name
    conversation.description = locked.description
    return conversation


def _receipts_for(count: int) -> bool:
    return count <= settings.CHAT_READ_RECEIPTS_MAX_MEMBERS


# --- Creating ------------------------------------------------------------------------------


def do_create_project_channel(
    *,
    name: str,
    description: str = "",
    is_private: bool = False,
    owners: Iterable[User] = (),
    members: Iterable[User] = (),
    acting_user: Acting,
) -> Conversation:
    """A project channel.  The acting person becomes an owner; ``members`` may include
    guests (invited to this channel only)."""
    person = _require_staff(acting_user, _("チャンネルを作成する"))
    name = _clean_name(name, required=True)
    description = _clean_description(description)
    owner_list = _unique_users([*([person] if person else []), *owners])
    owner_ids = {user.pk for user in owner_list}
    member_list = [user for user in _unique_users(members) if user.pk not in owner_ids]
    if not owner_list:
        raise ChatError(
            _("オーナーを1人以上指定してください。"), "a channel needs an owner", field="owners"
        )
    _check_people(owner_list, {User.Kind.STAFF}, where=_("チャンネルのオーナー"))
    _check_people(
        member_list, {User.Kind.STAFF, User.Kind.GUEST, User.Kind.BOT}, where=_("チャンネル")
    )
    everyone = owner_list + member_list
    with transaction.atomic():
        _check_unique_name(name)
        conversation = Conversation.objects.create(
            kind=Kind.PROJECT,
            name=name,
            description=description,
            is_private=is_private,
            read_receipts=_receipts_for(len(everyone)),
            created_by=person,
            created_at=clock.now(),
        )
        _add_rows(conversation, owner_list, Membership.Role.OWNER)
        _add_rows(conversation, member_list, Membership.Role.MEMBER)
        record(
            AuditAction.CHAT_CONVERSATION_CREATED,
            actor=acting_user,
            target=conversation,
            details={
                "kind": conversation.kind,
                "name": name,
                "is_private": is_private,
                "owners": [user.pk for user in owner_list],
                "members": [user.pk for user in member_list],
                "read_receipts": conversation.read_receipts,
            },
        )
        events.notify_conversation(conversation, "added", [user.pk for user in everyone])
    return conversation


def direct_key(user_a: User, user_b: User) -> str:
    low, high = sorted((user_a.pk, user_b.pk))
    return f"{low}:{high}"


def do_get_or_create_direct(
    user_a: User, user_b: User, *, acting_user: Acting
) -> tuple[Conversation, bool]:
    """The one direct message between two people (made the first time): ``(conversation,
    created)``.  A person may open a direct message only as one of the two."""
    person = _person(acting_user)
    if person is not None and person.pk not in (user_a.pk, user_b.pk):
        raise _forbidden(
            person,
            "chat.create",
            None,
            _("自分が参加しないダイレクトメッセージは作成できません。"),
            "a direct message must include the acting user",
        )
    if user_a.pk == user_b.pk:
        raise ChatError(
            _("ダイレクトメッセージの相手には自分以外の人を指定してください。"),
            "a direct message needs two different people",
            field="user",
        )
    _check_people(
        [user_a, user_b], {User.Kind.STAFF, User.Kind.BOT}, where=_("ダイレクトメッセージ")
    )
    key = direct_key(user_a, user_b)
    existing = Conversation.objects.filter(direct_key=key).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            conversation = Conversation.objects.create(
                kind=Kind.DIRECT, direct_key=key, created_by=person, created_at=clock.now()
            )
            _add_rows(conversation, [user_a, user_b], Membership.Role.MEMBER)
            record(
                AuditAction.CHAT_CONVERSATION_CREATED,
                actor=acting_user,
                target=conversation,
                details={"kind": conversation.kind, "members": [user_a.pk, user_b.pk]},
            )
            events.notify_conversation(conversation, "added", [user_a.pk, user_b.pk])
    except IntegrityError:
        # The other person opened it at the same moment: theirs is the one.
        return Conversation.objects.get(direct_key=key), False
    return conversation, True


def do_create_group(users: Iterable[User], *, name: str = "", acting_user: Acting) -> Conversation:
    """A group message among ``users`` (the acting person is added and is its owner):
    2 to ``GROUP_MAX`` staff."""
    person = _require_staff(acting_user, _("グループメッセージを作成する"))
    name = _clean_name(name, required=False)
    people = _unique_users([*([person] if person else []), *users])
    _check_people(people, {User.Kind.STAFF}, where=_("グループメッセージ"))
    if not GROUP_MIN <= len(people) <= GROUP_MAX:
        raise ChatError(
            _(
                "グループメッセージの参加者は%(min)d人から%(max)d人までです。"
                "それより多い場合はプロジェクトチャンネルを作成してください。"
            )
            % {"min": GROUP_MIN, "max": GROUP_MAX},
            f"a group has {GROUP_MIN} to {GROUP_MAX} people",
            code="group_size",
            field="members",
        )
    with transaction.atomic():
        conversation = Conversation.objects.create(
            kind=Kind.GROUP,
            name=name,
            read_receipts=_receipts_for(len(people)),
            created_by=person,
            created_at=clock.now(),
        )
        owners = [person] if person else people[:1]
        _add_rows(conversation, owners, Membership.Role.OWNER)
        _add_rows(conversation, [u for u in people if u not in owners], Membership.Role.MEMBER)
        record(
            AuditAction.CHAT_CONVERSATION_CREATED,
            actor=acting_user,
            target=conversation,
            details={"kind": conversation.kind, "name": name, "members": [u.pk for u in people]},
        )
        events.notify_conversation(conversation, "added", [user.pk for user in people])
    return conversation


# --- Members ---------------------------------------------------------------------------------


def _member_kinds(conversation: Conversation) -> tuple[set[str], str]:
    if conversation.kind == Kind.PROJECT:
        return {User.Kind.STAFF, User.Kind.GUEST, User.Kind.BOT}, _("チャンネル")
    return {User.Kind.STAFF}, _("グループメッセージ")


def do_add_members(
    conversation: Conversation, users: Iterable[User], *, acting_user: Acting
) -> list[User]:
    """Add people to a project channel or group message; returns those not already
    members.  Managers add anyone allowed; a member of a public project channel may add
    staff (not guests)."""
    _refuse_department(conversation, _("手動で参加者を追加する"))
    _refuse_direct(conversation, _("参加者を追加する"))
    _refuse_notices(conversation, _("参加者を追加する"))
    people = _unique_users(users)
    kinds, where = _member_kinds(conversation)
    _check_people(people, kinds, where=where)
    person = _person(acting_user)
    if person is not None and not access.may_manage(person, conversation):
        public_member = (
            conversation.kind == Kind.PROJECT
            and not conversation.is_private
            and access.is_staff_member(person)
            and Membership.objects.filter(conversation=conversation, user=person).exists()
            and all(user.kind == User.Kind.STAFF for user in people)
        )
        if not public_member:
            _require_manager(conversation, acting_user)
    with transaction.atomic():
        _locked(conversation)
        _require_open(conversation)
        held = set(
            Membership.objects.filter(conversation=conversation).values_list("user_id", flat=True)
        )
        new = [user for user in people if user.pk not in held]
        if not new:
            return []
        if conversation.kind == Kind.GROUP and len(held) + len(new) > GROUP_MAX:
            raise ChatError(
                _(
                    "グループメッセージの参加者は%(max)d人までです。"
                    "プロジェクトチャンネルを作成してください。"
                )
                % {"max": GROUP_MAX},
                f"a group has at most {GROUP_MAX} people",
                code="group_size",
                field="members",
            )
        _add_rows(conversation, new, Membership.Role.MEMBER)
        details: dict[str, Any] = {"added": [user.pk for user in new]}
        if conversation.read_receipts and not _receipts_for(len(held) + len(new)):
            conversation.read_receipts = False
            conversation.save(update_fields=["read_receipts"])
            details["read_receipts"] = [True, False]
        record(
            AuditAction.CHAT_MEMBERS_CHANGED,
            actor=acting_user,
            target=conversation,
            details=details,
        )
        lock_streams([*held, *(user.pk for user in new)])
        events.notify_conversation(conversation, "added", [user.pk for user in new])
        events.notify_conversation(conversation, "changed", sorted(held))
    return new


def _owner_ids(conversation: Conversation) -> list[int]:
    return list(
        Membership.objects.filter(
            conversation=conversation, role=Membership.Role.OWNER
        ).values_list("user_id", flat=True)
    )


def _leave(conversation: Conversation, user: User, acting_user: Acting, how: str) -> bool:
    """Remove ``user``; a last owner leaving hands ownership to the longest-standing
    staff member left.  Runs in the caller's transaction; False when not a member."""
    _locked(conversation)
    membership = Membership.objects.filter(conversation=conversation, user=user).first()
    if membership is None:
        return False
    details: dict[str, Any] = {"removed": [user.pk], "how": how}
    membership.delete()
    remaining = events.member_ids(conversation.pk)
    if membership.role == Membership.Role.OWNER and remaining and not _owner_ids(conversation):
        heir = (
            Membership.objects.filter(
                conversation=conversation, user__kind=User.Kind.STAFF, user__is_active=True
            )
            .order_by("joined_at", "pk")
            .first()
        )
        if heir is not None:
            heir.role = Membership.Role.OWNER
            heir.save(update_fields=["role"])
            details["new_owner"] = heir.user_id
    record(
        AuditAction.CHAT_MEMBERS_CHANGED,
        actor=acting_user,
        target=conversation,
        details=details,
    )
    lock_streams([user.pk, *remaining])
    events.notify_conversation(conversation, "removed", [user.pk])
    events.notify_conversation(conversation, "changed", remaining)
    return True


def do_remove_member(conversation: Conversation, user: User, *, acting_user: Acting) -> bool:
    """Take ``user`` out of a project channel or group message (managers; anyone may
    remove themselves, as ``do_leave``).  False when they were not a member."""
    _refuse_department(conversation, _("手動で参加者を外す"))
    _refuse_direct(conversation, _("参加者を外す"))
    _refuse_notices(conversation, _("参加者を外す"))
    person = _person(acting_user)
    if person is None or person.pk != user.pk:
        _require_manager(conversation, acting_user)
    with transaction.atomic():
        return _leave(conversation, user, acting_user, "removed")


def do_join(conversation: Conversation, *, acting_user: User) -> Membership:
    """Join a public project channel (staff only).  Joining twice returns the membership."""
    if not access.is_staff_member(acting_user):
        raise _forbidden(
            acting_user,
            "chat.join",
            conversation,
            _("チャンネルに自分で参加できるのは職員だけです。招待を依頼してください。"),
            "only staff may join channels",
        )
    if conversation.kind != Kind.PROJECT or conversation.is_private:
        raise _forbidden(
            acting_user,
            "chat.join",
            conversation,
            _("このチャンネルには自分で参加できません。オーナーに招待を依頼してください。"),
            "only public project channels can be joined",
        )
    with transaction.atomic():
        _locked(conversation)
        _require_open(conversation)
        existing = Membership.objects.filter(conversation=conversation, user=acting_user).first()
        if existing is not None:
            return existing
        others = events.member_ids(conversation.pk)
        (membership,) = _add_rows(conversation, [acting_user], Membership.Role.MEMBER)
        details: dict[str, Any] = {"added": [acting_user.pk], "how": "joined"}
        if conversation.read_receipts and not _receipts_for(len(others) + 1):
            conversation.read_receipts = False
            conversation.save(update_fields=["read_receipts"])
            details["read_receipts"] = [True, False]
        record(
            AuditAction.CHAT_MEMBERS_CHANGED,
            actor=acting_user,
            target=conversation,
            details=details,
        )
        lock_streams([acting_user.pk, *others])
        events.notify_conversation(conversation, "added", [acting_user.pk])
        events.notify_conversation(conversation, "changed", others)
    return membership


def do_leave(conversation: Conversation, *, acting_user: User) -> bool:
    """Leave a project channel or group message.  Not a 所属 channel (it follows the
    directory) nor a direct message."""
    _refuse_department(conversation, _("退出する"))
    _refuse_direct(conversation, _("退出する"))
    _refuse_notices(conversation, _("退出する"))
    with transaction.atomic():
        return _leave(conversation, acting_user, acting_user, "left")


def do_set_owner(
    conversation: Conversation, user: User, *, owner: bool, acting_user: Acting
) -> bool:
    """Make a member an owner of a project channel or group message, or a member again
    (the last owner stays).  Returns whether anything changed."""
    if conversation.kind not in (Kind.PROJECT, Kind.GROUP):
        raise ChatError(
            _("オーナーを設定できるのはプロジェクトチャンネルとグループメッセージだけです。"),
            "only project channels and groups have owners",
        )
    _require_manager(conversation, acting_user)
    if owner and not access.is_staff_member(user):
        raise ChatError(
            _("オーナーにできるのは職員だけです。"), "only staff can be owners", field="user"
        )
    with transaction.atomic():
        _locked(conversation)
        membership = Membership.objects.filter(conversation=conversation, user=user).first()
        if membership is None:
            raise ChatError(
                _("この人は会話の参加者ではありません。先に追加してください。"),
                "not a member",
                field="user",
            )
        role = Membership.Role.OWNER if owner else Membership.Role.MEMBER
        if membership.role == role:
            return False
        if not owner and _owner_ids(conversation) == [user.pk]:
            raise ChatError(
                _("最後のオーナーは外せません。先に別の人をオーナーにしてください。"),
                "the last owner cannot be demoted",
                code="last_owner",
            )
        before = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        record(
            AuditAction.CHAT_MEMBERS_CHANGED,
            actor=acting_user,
            target=conversation,
            details={"role": {str(user.pk): [before, role]}},
        )
        events.notify_conversation(conversation, "changed", events.member_ids(conversation.pk))
    return True


# --- Settings --------------------------------------------------------------------------------


def do_change_conversation(
    conversation: Conversation,
    *,
    acting_user: Acting,
    name: str | None = None,
    description: str | None = None,
    read_receipts: bool | None = None,
) -> list[str]:
    """Change the name, description or 既読 setting; returns the fields that changed.
    A 所属 channel keeps its department's name; a direct message has neither name nor
    description; 既読 cannot be switched on above CHAT_READ_RECEIPTS_MAX_MEMBERS."""
    _require_manager(conversation, acting_user)
    wanted: dict[str, Any] = {}
    if name is not None:
        if conversation.kind in (Kind.DEPARTMENT, Kind.DIRECT):
            cleaned = _clean_name(name, required=False)
            if cleaned != conversation.name:
                raise ChatError(
                    _("所属チャンネルとダイレクトメッセージの名前は変更できません。"),
                    "this conversation's name cannot be changed",
                    field="name",
                )
        else:
            wanted["name"] = _clean_name(name, required=conversation.kind == Kind.PROJECT)
    if description is not None:
        if conversation.kind == Kind.DIRECT:
            raise ChatError(
                _("ダイレクトメッセージには説明を付けられません。"),
                "direct messages have no description",
                field="description",
            )
        wanted["description"] = _clean_description(description)
    if read_receipts is not None:
        wanted["read_receipts"] = bool(read_receipts)
    with transaction.atomic():
        _locked(conversation)
        _require_open(conversation)
        changes = {
            field: [getattr(conversation, field), value]
            for field, value in wanted.items()
            if getattr(conversation, field) != value
        }
        if not changes:
            return []
        if "name" in changes and conversation.kind == Kind.PROJECT:
            _check_unique_name(wanted["name"], exclude=conversation.pk)
        if changes.get("read_receipts", [None, False])[1]:
            count = Membership.objects.filter(conversation=conversation).count()
            if not _receipts_for(count):
                limit = settings.CHAT_READ_RECEIPTS_MAX_MEMBERS
                raise ChatError(
                    _("参加者が%(limit)d人を超える会話では既読を表示できません。")
                    % {"limit": limit},
                    f"read receipts are off above {limit} members",
                    code="too_many_members",
                    field="read_receipts",
                )
        for field in changes:
            setattr(conversation, field, wanted[field])
        conversation.save(update_fields=list(changes))
        record(
            AuditAction.CHAT_CONVERSATION_CHANGED,
            actor=acting_user,
            target=conversation,
            details={"changes": changes},
        )
        events.notify_conversation(conversation, "changed", events.member_ids(conversation.pk))
    return list(changes)


def _check_archivable(conversation: Conversation) -> None:
    if conversation.kind == Kind.DEPARTMENT:
        raise ChatError(
            _("所属チャンネルは所属が廃止されたときに自動でアーカイブされます。"),
            "department channels are archived with their department",
            code="department_channel",
        )
    _refuse_direct(conversation, _("アーカイブする"))


def do_archive(conversation: Conversation, *, acting_user: Acting) -> bool:
    """Archive a project channel or group message: read-only for its members, kept for
    search and disclosure.  False when it was archived already."""
    _check_archivable(conversation)
    _require_manager(conversation, acting_user)
    with transaction.atomic():
        _locked(conversation)
        if conversation.archived_at is not None:
            return False
        conversation.archived_at = clock.now()
        conversation.save(update_fields=["archived_at"])
        record(AuditAction.CHAT_ARCHIVED, actor=acting_user, target=conversation)
        events.notify_conversation(conversation, "archived", events.member_ids(conversation.pk))
    return True


def do_unarchive(conversation: Conversation, *, acting_user: Acting) -> bool:
    """Open an archived conversation again.  A project channel whose name another
    channel has taken meanwhile must be renamed first."""
    _check_archivable(conversation)
    _require_manager(conversation, acting_user)
    with transaction.atomic():
        _locked(conversation)
        if conversation.archived_at is None:
            return False
        if conversation.kind == Kind.PROJECT:
            _check_unique_name(conversation.name, exclude=conversation.pk)
        conversation.archived_at = None
        conversation.save(update_fields=["archived_at"])
        record(AuditAction.CHAT_UNARCHIVED, actor=acting_user, target=conversation)
        events.notify_conversation(conversation, "unarchived", events.member_ids(conversation.pk))
    return True


def do_set_notify(
    membership: Membership, *, notify: str | None = None, muted: bool | None = None
) -> list[str]:
    """A member's own notification choice for one conversation (not audited: it is
    theirs and changes nothing for others).  Returns the fields that changed."""
    changes: dict[str, Any] = {}
    if notify is not None:
        if notify not in Membership.Notify.values:
            raise ChatError(
                _("通知の設定は「すべて」「メンションのみ」「通知しない」から選んでください。"),
                f"unknown notify level {notify!r}",
                field="notify",
            )
        if notify != membership.notify:
            changes["notify"] = notify
    if muted is not None and bool(muted) != membership.muted:
        changes["muted"] = bool(muted)
    if not changes:
        return []
    with transaction.atomic():
        Membership.objects.filter(pk=membership.pk).update(**changes)
        for field, value in changes.items():
            setattr(membership, field, value)
        events.notify_conversation(membership.conversation, "changed", [membership.user_id])
    return list(changes)


def project_channel_named(name: str) -> Conversation | None:
    """The open project channel called ``name`` (case-insensitive), if any."""
    return (
        Conversation.objects.filter(kind=Kind.PROJECT, archived_at__isnull=True)
        .filter(Q(name__iexact=" ".join(name.split())))
        .first()
    )
