"""The chat JSON API under ``/api/chat/``: the web client and bots use the same calls.

Callers: signed-in browsers (session, CSRF on writes) and bots with a bearer token that
carries the ``chat:send`` scope (``ChatTokenAuth``): a bot reads and posts only in the
conversations it is a member of.  Errors come in the one format of
``yakuba.lib.api_errors``; a ``ChatError`` becomes its status with ``error.code``,
``error.fields`` (the input at fault) and ``error.details`` (e.g. ``{"count": n}`` for
``confirm_mentions``, 409: send again with ``confirm_mentions: true``).

Sending: ``POST conversations/{id}/messages`` with a ``client_key`` the client chose;
201 for a new message, 200 with the first message when the key was sent before (a
retry), never a second message.  A new message is answered with what the send built
(the payload its members were sent, 既読 0): no second read.  A client that was away asks
``GET conversations/{id}/changes?after=S`` and applies the messages in order; it then
knows the conversation up to ``head``.

Each view parses, fetches through ``yakuba.chat.access`` and calls one action or query.

The routes are split by owner: conversations and messages here, files and search in
``api_files``, search, retention and exports in ``api_search``, presence in
``api_presence``, webhooks and bots in ``api_integrations``.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from ninja import Field, Query, Router, Schema, Status
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer

from yakuba.audit.record import record_denial
from yakuba.chat import access, queries
from yakuba.chat.actions import ChatError
from yakuba.chat.actions import conversations as conv_actions
from yakuba.chat.actions.messages import (
    CONTROL,
    Sent,
    check_forward,
    check_send,
    do_delete_message,
    do_edit_message,
    do_pin,
    do_toggle_reaction,
    do_unpin,
)
from yakuba.chat.actions.reads import do_mark_read, do_mark_thread_read
from yakuba.chat.models import Conversation, Membership, Message
from yakuba.directory.models import User
from yakuba.directory.tokens import authenticate_token
from yakuba.lib.api_auth import SessionAuth, caller
from yakuba.lib.api_errors import ApiError, error_body

CHAT_SCOPE = "chat:send"


class ChatTokenAuth(HttpBearer):
    """``Authorization: Bearer …`` with the ``chat:send`` scope."""

    def authenticate(self, request: HttpRequest, token: str) -> User:
        found = authenticate_token(token)
        if found is None:
            raise AuthenticationError()
        user, api_token = found
        if CHAT_SCOPE not in api_token.scopes:
            record_denial(actor=user, what="chat.api_token_scope")
            raise ApiError(
                "forbidden",
                message="このAPIトークンにはチャット（chat:send）の権限がありません。",
                message_en="This API token lacks the chat:send scope.",
            )
        return user


router = Router(tags=["chat"], auth=[ChatTokenAuth(), SessionAuth()])

P = ParamSpec("P")
R = TypeVar("R")


def chat_errors(view: Callable[P, R]) -> Callable[P, R | JsonResponse]:
    """Answer a ``ChatError`` raised under ``view`` in the one error format, with its
    status, ``fields`` and ``details``."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | JsonResponse:
        try:
            return view(*args, **kwargs)
        except ChatError as exc:
            return error_response(exc)

    return wrapper


def error_response(exc: ChatError) -> JsonResponse:
    fields = {exc.field: [exc.message]} if exc.field else {}
    body = error_body(exc.code, message=exc.message, message_en=exc.english, fields=fields)
    body["error"]["details"] = exc.details
    return JsonResponse(body, status=exc.status, json_dumps_params={"ensure_ascii": False})


# --- Schemas ------------------------------------------------------------------------------

# An id in a body: a number the database can hold (a larger one crashed the look-up with
# a 500 instead of answering 422).
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]


class ConversationOut(Schema):
    id: int
    kind: str
    name: str
    description: str
    is_private: bool
    last_seq: int
    last_message_at: dt.datetime | None
    last_read_seq: int
    unread: int
    mentions_unread: int
    first_unread_seq: int | None
    notify: str
    muted: bool
    role: str
    archived: bool
    read_receipts: bool
    members: int
    other_user: int | None = Field(None, description="direct messages: the other person's id")


class MyMembership(Schema):
    role: str
    notify: str
    muted: bool
    last_read_seq: int


class ConversationDetail(Schema):
    id: int
    kind: str
    name: str
    description: str
    is_private: bool
    department: str | None
    read_receipts: bool
    archived: bool
    last_seq: int
    last_message_at: dt.datetime | None
    created_at: dt.datetime
    membership: MyMembership | None
    can_manage: bool


class ConversationIn(Schema):
    kind: Literal["project", "direct", "group"]
    name: str = Field("", max_length=200)
    description: str = Field("", max_length=2000)
    is_private: bool = False
    members: list[str] = Field([], description="usernames", max_length=500)


class ConversationPatch(Schema):
    name: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=2000)
    read_receipts: bool | None = None


class MemberOut(Schema):
    id: int
    username: str
    name: str
    kind: str
    role: str
    joined_at: dt.datetime


class MembersIn(Schema):
    users: list[str] = Field(..., description="usernames", min_length=1, max_length=500)


class NotifyIn(Schema):
    notify: Literal["all", "mentions", "none"] | None = None
    muted: bool | None = None


class ReactionOut(Schema):
    emoji: str
    users: list[int]


class AttachmentOut(Schema):
    id: int
    name: str
    size: int
    content_type: str
    has_thumbnail: bool
    scan: str


class MessageOut(Schema):
    id: int
    conversation: int
    seq: int
    changed_seq: int
    kind: str
    sender: int | None
    sender_name: str
    client_key: str | None
    text: str
    html: str
    thread_root: int | None
    reply_count: int
    last_reply_seq: int
    mentions: list[int]
    mentions_channel: bool
    forwarded_from: int | None
    created_at: str
    edited: bool
    edited_at: str | None
    deleted: bool
    pinned: bool
    reactions: list[ReactionOut]
    attachments: list[AttachmentOut]
    read_count: int | None = Field(None, description="既読 N (None where receipts are off)")


class MessagePage(Schema):
    items: list[MessageOut]
    more: bool


class ChangesOut(Schema):
    items: list[MessageOut]
    head: int
    more: bool


class ThreadOut(Schema):
    root: MessageOut
    replies: list[MessageOut]
    unread: int


class ReaderOut(Schema):
    user: int
    name: str
    read_at: dt.datetime | None = Field(None, description="None for a reply (read in its thread)")


class PageQuery(Schema):
    before: int | None = Field(None, ge=1)
    limit: int = Field(50, ge=1, le=queries.PAGE_MAX)


class ChangesQuery(Schema):
    after: int = Field(..., ge=0)
    limit: int = Field(500, ge=1, le=queries.CHANGES_MAX)


class MessageIn(Schema):
    text: str = ""
    client_key: str = Field(..., min_length=1, max_length=64)
    thread_root: Id | None = None
    attachments: list[Id] = Field([], max_length=20)
    confirm_mentions: bool = False


class MessagePatch(Schema):
    text: str


class ReactionIn(Schema):
    emoji: str = Field(..., min_length=1, max_length=32)
    add: bool = True


class ForwardIn(Schema):
    conversation: Id
    comment: str = ""
    client_key: str = Field(..., min_length=1, max_length=64)
    confirm_mentions: bool = False


class ReadIn(Schema):
    seq: int = Field(..., ge=0)


class ReadOut(Schema):
    moved: bool
    last_read_seq: int


# --- Conversations ------------------------------------------------------------------------


@router.get("/conversations", response=list[ConversationOut], summary="参加している会話の一覧")
def list_conversations(request: HttpRequest) -> list[dict[str, Any]]:
    """The caller's conversations, newest activity first, with unread counts, unread
    mentions and the first unread seq; group them by ``kind`` (所属 / project / direct)."""
    return queries.conversation_list(caller(request))


@router.post(
    "/conversations",
    response={200: ConversationDetail, 201: ConversationDetail},
    summary="チャンネル・会話を作る",
)
@chat_errors
def create_conversation(
    request: HttpRequest, payload: ConversationIn
) -> Status[ConversationDetail] | JsonResponse:
    """A project channel (``name``, ``description``, ``is_private``, ``members``), a
    direct message (``members``: the one other person; 200 when it exists already) or a
    group message (``members``, optional ``name``)."""
    user = caller(request)
    if user.kind == User.Kind.BOT:
        # Bots post only where an IT administrator put them; a bot's token must not be
        # able to open a direct message with anyone.  (Guests: the actions refuse them.)
        record_denial(actor=user, what="chat.create")
        raise PermissionDenied("chat.create")
    people = _users(payload.members)
    created = True
    if payload.kind == "project":
        conversation = conv_actions.do_create_project_channel(
            name=payload.name,
            description=payload.description,
            is_private=payload.is_private,
            members=people,
            acting_user=user,
        )
    elif payload.kind == "direct":
        if len(people) != 1:
            raise ChatError(
                "ダイレクトメッセージの相手を1人指定してください。",
                "A direct message names exactly one other person.",
                field="members",
            )
        conversation, created = conv_actions.do_get_or_create_direct(
            user, people[0], acting_user=user
        )
    else:
        conversation = conv_actions.do_create_group(people, name=payload.name, acting_user=user)
    return Status(201 if created else 200, _detail(user, conversation.pk))


@router.get("/conversations/{conversation_id}", response=ConversationDetail, summary="会話の詳細")
def get_conversation(request: HttpRequest, conversation_id: int) -> ConversationDetail:
    user = caller(request)
    return _detail(user, access.access_conversation(user, conversation_id).pk)


@router.patch("/conversations/{conversation_id}", response=ConversationDetail, summary="会話の設定")
@chat_errors
def change_conversation(
    request: HttpRequest, conversation_id: int, payload: ConversationPatch
) -> ConversationDetail | JsonResponse:
    """Name, description and 既読 (managers)."""
    user = caller(request)
    conversation = access.access_conversation_for_manage(user, conversation_id)
    conv_actions.do_change_conversation(
        conversation,
        acting_user=user,
        name=payload.name,
        description=payload.description,
        read_receipts=payload.read_receipts,
    )
    return _detail(user, conversation.pk)


@router.post(
    "/conversations/{conversation_id}/archive", response=ConversationDetail, summary="アーカイブ"
)
@chat_errors
def archive(request: HttpRequest, conversation_id: int) -> ConversationDetail | JsonResponse:
    user = caller(request)
    conversation = access.access_conversation_for_manage(user, conversation_id)
    conv_actions.do_archive(conversation, acting_user=user)
    return _detail(user, conversation.pk)


@router.post(
    "/conversations/{conversation_id}/unarchive",
    response=ConversationDetail,
    summary="アーカイブ解除",
)
@chat_errors
def unarchive(request: HttpRequest, conversation_id: int) -> ConversationDetail | JsonResponse:
    user = caller(request)
    conversation = access.access_conversation_for_manage(user, conversation_id)
    conv_actions.do_unarchive(conversation, acting_user=user)
    return _detail(user, conversation.pk)


@router.get("/conversations/{conversation_id}/members", response=list[MemberOut], summary="参加者")
def list_members(request: HttpRequest, conversation_id: int) -> list[MemberOut]:
    conversation = access.access_conversation(caller(request), conversation_id)
    rows = (
        Membership.objects.filter(conversation=conversation)
        .select_related("user")
        .order_by("user__display_name", "user_id")
    )
    return [
        MemberOut(
            id=row.user_id,
            username=row.user.username,
            name=row.user.display_name,
            kind=row.user.kind,
            role=row.role,
            joined_at=row.joined_at,
        )
        for row in rows
    ]


@router.post(
    "/conversations/{conversation_id}/members",
    response=list[MemberOut],
    summary="参加者を追加する",
)
@chat_errors
def add_members(
    request: HttpRequest, conversation_id: int, payload: MembersIn
) -> list[MemberOut] | JsonResponse:
    """Add people by username (managers; in a public project channel, its members)."""
    user = caller(request)
    conversation = access.access_conversation(user, conversation_id)
    conv_actions.do_add_members(conversation, _users(payload.users), acting_user=user)
    return list_members(request, conversation_id)


@router.delete(
    "/conversations/{conversation_id}/members/{user_id}",
    response={204: None},
    summary="参加者を外す",
)
@chat_errors
def remove_member(
    request: HttpRequest, conversation_id: int, user_id: int
) -> Status[None] | JsonResponse:
    user = caller(request)
    conversation = access.access_conversation(user, conversation_id)
    person = User.objects.filter(pk=user_id).first()
    if person is None:
        raise ApiError("not_found", message="指定された参加者は見つかりません。")
    conv_actions.do_remove_member(conversation, person, acting_user=user)
    return Status(204, None)


@router.post(
    "/conversations/{conversation_id}/join", response=ConversationDetail, summary="参加する"
)
@chat_errors
def join(request: HttpRequest, conversation_id: int) -> ConversationDetail | JsonResponse:
    user = caller(request)
    conversation = access.access_conversation(user, conversation_id)
    conv_actions.do_join(conversation, acting_user=user)
    return _detail(user, conversation.pk)


@router.post("/conversations/{conversation_id}/leave", response={204: None}, summary="退出する")
@chat_errors
def leave(request: HttpRequest, conversation_id: int) -> Status[None] | JsonResponse:
    user = caller(request)
    conversation = access.access_conversation(user, conversation_id)
    conv_actions.do_leave(conversation, acting_user=user)
    return Status(204, None)


@router.put(
    "/conversations/{conversation_id}/notify", response=MyMembership, summary="通知とミュート"
)
@chat_errors
def set_notify(
    request: HttpRequest, conversation_id: int, payload: NotifyIn
) -> MyMembership | JsonResponse:
    user = caller(request)
    membership = _membership(user, conversation_id)
    conv_actions.do_set_notify(membership, notify=payload.notify, muted=payload.muted)
    return _my_membership(_membership(user, conversation_id))


@router.get(
    "/conversations/{conversation_id}/messages",
    response=MessagePage,
    summary="メッセージ（古い方へ遡る）",
)
def list_messages(
    request: HttpRequest, conversation_id: int, params: Query[PageQuery]
) -> MessagePage:
    """The newest ``limit`` top-level messages before seq ``before``, oldest first;
    ``more`` when older ones exist (ask again with ``before`` = the first seq)."""
    conversation = access.access_conversation(caller(request), conversation_id)
    page = queries.messages_page(conversation, before_seq=params.before, limit=params.limit)
    return MessagePage(items=_messages_out(conversation, page.messages), more=page.more)


@router.get(
    "/conversations/{conversation_id}/changes",
    response=ChangesOut,
    summary="ある seq より後の変更（再同期）",
)
def list_changes(
    request: HttpRequest, conversation_id: int, params: Query[ChangesQuery]
) -> ChangesOut:
    """Every message (replies too) created or changed after seq ``after``, once each, in
    its current state and change order.  Apply them, then the client knows the
    conversation up to ``head``; ``more``: ask again with ``after=head``."""
    conversation = access.access_conversation(caller(request), conversation_id)
    changes = queries.changes_after(conversation, params.after, params.limit)
    return ChangesOut(
        items=_messages_out(conversation, changes.messages), head=changes.head, more=changes.more
    )


@router.post(
    "/conversations/{conversation_id}/messages",
    response={200: MessageOut, 201: MessageOut},
    summary="メッセージを送る",
    openapi_extra={"responses": {409: {"description": "confirm_mentions"}}},
)
@chat_errors
def send_message(
    request: HttpRequest, conversation_id: int, payload: MessageIn
) -> Status[MessageOut] | JsonResponse:
    """Send (members, not archived).  201: sent; 200: this ``client_key`` was sent
    before and that message is returned.  409 ``confirm_mentions`` when the mention
    would notify more than CHAT_MENTION_CONFIRM_OVER people (``details.count``)."""
    user = caller(request)
    membership = access.access_conversation_for_post(user, conversation_id)
    sent = check_send(
        membership,
        text=payload.text,
        client_key=payload.client_key,
        thread_root_id=payload.thread_root,
        attachment_ids=payload.attachments,
        confirm_mass_mention=payload.confirm_mentions,
        acting_user=user,
    )
    return Status(201 if sent.created else 200, _sent_out(membership.conversation, sent))


@router.get("/conversations/{conversation_id}/pins", response=list[MessageOut], summary="ピン留め")
def list_pins(request: HttpRequest, conversation_id: int) -> list[MessageOut]:
    conversation = access.access_conversation(caller(request), conversation_id)
    return _messages_out(conversation, queries.pins(conversation))


@router.post("/conversations/{conversation_id}/read", response=ReadOut, summary="既読にする")
@chat_errors
def mark_read(
    request: HttpRequest, conversation_id: int, payload: ReadIn
) -> ReadOut | JsonResponse:
    """The caller was shown the conversation up to ``seq`` (forward only, capped at the
    newest message).  Members only, also in an archived conversation and in their
    お知らせ, where nobody may post but unread counts must still go down."""
    membership = _membership(caller(request), conversation_id)
    moved = do_mark_read(membership, up_to_seq=payload.seq)
    return ReadOut(moved=moved, last_read_seq=membership.last_read_seq)


# --- Messages -----------------------------------------------------------------------------


@router.patch("/messages/{message_id}", response=MessageOut, summary="メッセージを編集する")
@chat_errors
def edit_message(
    request: HttpRequest, message_id: int, payload: MessagePatch
) -> MessageOut | JsonResponse:
    """Change the text (the sender).  The earlier text is kept for auditors."""
    user = caller(request)
    message = access.access_message_for_change(user, message_id)
    do_edit_message(message, text=payload.text, acting_user=user)
    return _message_out(message.pk)


@router.delete("/messages/{message_id}", response=MessageOut, summary="メッセージを削除する")
@chat_errors
def delete_message(request: HttpRequest, message_id: int) -> MessageOut | JsonResponse:
    """Delete (the sender or the conversation's managers).  The message keeps its place
    and shows that it was deleted; its text stays for auditors."""
    user = caller(request)
    message = access.access_message_for_change(user, message_id, delete=True)
    do_delete_message(message, acting_user=user)
    return _message_out(message.pk)


@router.post("/messages/{message_id}/reactions", response=MessageOut, summary="リアクション")
@chat_errors
def react(request: HttpRequest, message_id: int, payload: ReactionIn) -> MessageOut | JsonResponse:
    user, message = _message_for_post(request, message_id)
    do_toggle_reaction(message, emoji=payload.emoji, add=payload.add, acting_user=user)
    return _message_out(message.pk)


@router.post("/messages/{message_id}/pin", response=MessageOut, summary="ピン留めする")
@chat_errors
def pin(request: HttpRequest, message_id: int) -> MessageOut | JsonResponse:
    user, message = _message_for_post(request, message_id)
    do_pin(message, acting_user=user)
    return _message_out(message.pk)


@router.post("/messages/{message_id}/unpin", response=MessageOut, summary="ピン留めを外す")
@chat_errors
def unpin(request: HttpRequest, message_id: int) -> MessageOut | JsonResponse:
    user, message = _message_for_post(request, message_id)
    do_unpin(message, acting_user=user)
    return _message_out(message.pk)


@router.post(
    "/messages/{message_id}/forward",
    response={200: MessageOut, 201: MessageOut},
    summary="別の会話へ転送する",
)
@chat_errors
def forward(
    request: HttpRequest, message_id: int, payload: ForwardIn
) -> Status[MessageOut] | JsonResponse:
    """Post the message, quoted under ``comment``, in ``conversation`` (where the
    caller may post), linked back through ``forwarded_from``."""
    user = caller(request)
    message = access.access_message(user, message_id)
    target = access.access_conversation_for_post(user, payload.conversation)
    sent = check_forward(
        message,
        target,
        comment=payload.comment,
        client_key=payload.client_key,
        acting_user=user,
        confirm_mass_mention=payload.confirm_mentions,
    )
    return Status(201 if sent.created else 200, _sent_out(target.conversation, sent))


@router.get("/messages/{message_id}/thread", response=ThreadOut, summary="スレッド")
def get_thread(request: HttpRequest, message_id: int) -> ThreadOut:
    user = caller(request)
    message = access.access_message(user, message_id)
    root = (
        message
        if message.thread_root_id is None
        else access.access_message(user, message.thread_root_id)
    )
    replies = queries.thread(root)
    items = _messages_out(root.conversation, [_loaded(root.pk), *replies])
    return ThreadOut(root=items[0], replies=items[1:], unread=queries.thread_unread(user, root))


@router.post("/messages/{message_id}/thread-read", response=ReadOut, summary="スレッドを既読にする")
@chat_errors
def mark_thread_read(
    request: HttpRequest, message_id: int, payload: ReadIn
) -> ReadOut | JsonResponse:
    user = caller(request)
    root = access.access_message(user, message_id)
    _membership(user, root.conversation_id)
    if root.thread_root_id is not None:
        raise ChatError(
            "スレッドの最初のメッセージを指定してください。",
            "Name the thread's root message.",
            field="message",
        )
    moved = do_mark_thread_read(user, root, up_to_seq=payload.seq)
    return ReadOut(moved=moved, last_read_seq=queries.thread_pointer(user, root))


@router.get("/messages/{message_id}/readers", response=list[ReaderOut], summary="既読の人")
@chat_errors
def list_readers(request: HttpRequest, message_id: int) -> list[ReaderOut] | JsonResponse:
    """Who read the message and when (members of a conversation that shows 既読)."""
    message = access.access_message(caller(request), message_id)
    if not message.conversation.read_receipts:
        raise ChatError(
            "この会話では既読を表示しない設定です。",
            "This conversation does not show read receipts.",
            code="read_receipts_off",
            status=403,
        )
    return [
        ReaderOut(user=uid, name=name, read_at=at) for uid, name, at in queries.readers(message)
    ]


# --- Helpers ------------------------------------------------------------------------------


def _users(usernames: Sequence[str]) -> list[User]:
    """Active users by username, in the order given; unknown ones refused (400)."""
    wanted = [name.strip() for name in usernames if name.strip()]
    # A name no account can have is not looked up (PostgreSQL refuses NUL in a query).
    possible = [name for name in wanted if len(name) <= 150 and not CONTROL.search(name)]
    found = {u.username: u for u in User.objects.filter(username__in=possible, is_active=True)}
    missing = [CONTROL.sub("?", name[:150]) for name in wanted if name not in found]
    if missing:
        raise ChatError(
            f"見つからない利用者がいます: {', '.join(missing[:10])}",
            f"Unknown users: {', '.join(missing[:10])}",
            code="unknown_users",
            field="members",
        )
    return [found[name] for name in dict.fromkeys(wanted)]


def _membership(user: User, conversation_id: int) -> Membership:
    """The caller's membership of a conversation they may read (archived or not); a
    reader who is not a member (staff in a public channel) is refused, and audited."""
    conversation = access.access_conversation(user, conversation_id)
    membership = access.membership_of(user, conversation)
    if membership is None:
        record_denial(actor=user, what="chat.member", target=conversation)
        raise ChatError(
            "この会話に参加していません。",
            "You are not a member of this conversation.",
            code="not_member",
            status=403,
        )
    membership.conversation = conversation
    return membership


def _my_membership(membership: Membership) -> MyMembership:
    return MyMembership(
        role=membership.role,
        notify=membership.notify,
        muted=membership.muted,
        last_read_seq=membership.last_read_seq,
    )


def _detail(user: User, conversation_id: int) -> ConversationDetail:
    conversation = access.access_conversation(user, conversation_id)
    membership = access.membership_of(user, conversation)
    return ConversationDetail(
        id=conversation.pk,
        kind=conversation.kind,
        name=_conversation_name(user, conversation),
        description=conversation.description,
        is_private=conversation.is_private,
        department=conversation.department.code if conversation.department else None,
        read_receipts=conversation.read_receipts,
        archived=conversation.archived_at is not None,
        last_seq=conversation.last_seq,
        last_message_at=conversation.last_message_at,
        created_at=conversation.created_at,
        membership=_my_membership(membership) if membership else None,
        can_manage=access.may_manage(user, conversation),
    )


def _conversation_name(user: User, conversation: Conversation) -> str:
    if conversation.name:
        return conversation.name
    others = (
        Membership.objects.filter(conversation=conversation)
        .exclude(user=user)
        .order_by("user__display_name")
        .values_list("user__display_name", flat=True)[:5]
    )
    return "、".join(others) or str(conversation)


def _message_for_post(request: HttpRequest, message_id: int) -> tuple[User, Message]:
    """The caller and the message, if the caller may post in its conversation (react,
    pin, mark a thread read)."""
    user = caller(request)
    message = access.access_message(user, message_id)
    membership = access.access_conversation_for_post(user, message.conversation_id)
    message.conversation = membership.conversation
    return user, message


def _loaded(message_id: int) -> Message:
    return queries.message_with_parts(message_id)


def _message_out(message_id: int) -> MessageOut:
    message = _loaded(message_id)
    return _messages_out(message.conversation, [message])[0]


def _sent_out(conversation: Conversation, sent: Sent) -> Any:
    """The answer to a send: the payload the action built, no second read.  既読 of a
    new message is 0 where receipts are shown (only the sender has seen it, and the
    sender is not counted); a repeated key's message counts as it stands."""
    if not conversation.read_receipts:
        read_count = None
    elif sent.created:
        read_count = 0
    else:
        read_count = queries.read_counts(conversation, [sent.message]).get(sent.message.pk)
    # A dict: ninja validates it once against MessageOut (a MessageOut built here would
    # be validated a second time).
    return {**sent.payload, "read_count": read_count}


def _messages_out(conversation: Conversation, messages: Sequence[Message]) -> list[MessageOut]:
    counts = queries.read_counts(conversation, messages) if conversation.read_receipts else {}
    return [
        MessageOut(**payload, read_count=counts.get(payload["id"]))
        for payload in queries.message_payloads(messages)
    ]


def _mount() -> None:
    from yakuba.chat import api_files, api_integrations, api_presence, api_search

    router.add_router("/", api_files.router)
    router.add_router("/", api_presence.router)
    router.add_router("/", api_integrations.router)
    router.add_router("/", api_search.router)


_mount()
