"""Demo chat for the demo ward: the 所属 channels with their members, two project
channels (「新庁舎移転プロジェクト」, public; 「防災訓練2025」, private, with the bus
company's guest), a direct message and a group message among the named accounts, and a
short, realistic conversation in each, with a thread, reactions and read pointers, so
that a person who signs in sees the feature at work.

``load_demo_chat()`` needs the demo ward (``yakuba demo``: the named accounts) and is
idempotent: conversations are found by name (or by pair), every message is sent with a
fixed ``client_key`` (a second send returns the first message), reactions and read
pointers only move once.  Everything goes through the chat actions, as a person's
actions would (the messages are stamped over the past days with the demo clock).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db import transaction

from yakuba.chat import membership
from yakuba.chat.actions.conversations import (
    do_create_group,
    do_create_project_channel,
    do_get_or_create_direct,
    project_channel_named,
)
from yakuba.chat.actions.messages import check_send_message, do_toggle_reaction
from yakuba.chat.actions.reads import do_mark_read
from yakuba.chat.models import Conversation, Membership, Message
from yakuba.directory.models import User
from yakuba.lib import clock

PEOPLE = ("kacho", "shokuin", "kanri", "madoguchi", "admin", "guest")
GROUP_NAME = "庁舎レイアウト打合せ"


class DemoChatError(RuntimeError):
    """The demo ward is missing (run ``yakuba demo`` first)."""


@dataclass(frozen=True)
class Line:
    """One message: who, what, how many minutes after the conversation's first line,
    and, for a reply, the index of the line it answers."""

    who: str
    text: str
    minutes: int
    reply_to: int | None = None
    reactions: tuple[tuple[str, str], ...] = ()  # (username, emoji)


@dataclass(frozen=True)
class DemoChannel:
    name: str
    description: str
    is_private: bool
    owner: str
    members: tuple[str, ...]
    days_ago: int
    lines: tuple[Line, ...]
    # Who has read how far (index of the last line shown to them).
    read_up_to: tuple[tuple[str, int], ...] = ()


CHANNELS = (
    DemoChannel(
        name="新庁舎移転プロジェクト",
        description="新庁舎への移転準備（レイアウト、引越し日程、書庫の整理）の連絡用です。",
        is_private=False,
        owner="kacho",
        members=("shokuin", "kanri", "madoguchi", "admin"),
        days_ago=3,
        lines=(
            Line(
                "kacho",
                "新庁舎への移転は来年5月の連休明けで確定しました。各係の準備状況をこちらで共有してください。",
                0,
                reactions=(("shokuin", "👍"), ("kanri", "👍")),
            ),
            Line(
                "kanri",
                "庁舎管理係です。フロアごとのレイアウト案（第2版）を共有フォルダに置きました。"
                "来週金曜までにご意見をお願いします。",
                12,
            ),
            Line(
                "shokuin",
                "文書係の書庫ですが、移転前に保存年限を過ぎた文書の廃棄を進めます。段ボールは何箱まで持ち込めますか？",
                40,
            ),
            Line(
                "kanri",
                "1係あたり30箱を目安にしてください。超える場合は個別にご相談ください。",
                55,
                reply_to=2,
            ),
            Line(
                "shokuin",
                "承知しました。30箱に収まるよう、廃棄リストを今月中に作ります。",
                70,
                reply_to=2,
                reactions=(("kanri", "🙏"),),
            ),
            Line(
                "madoguchi",
                "窓口の移転日は土日にしてほしいです。平日だと住民票の発行が止まってしまいます。",
                180,
            ),
            Line(
                "kacho",
                "@madoguchi 了解です。窓口系の引越しは土日に行う方向で調整します。",
                200,
            ),
            Line(
                "admin",
                "情報政策課です。ネットワーク機器の移設は移転の前週に行います。"
                "その週はテレワーク端末の利用を控えてください。",
                1440,
            ),
            Line("kanri", "引越し業者の下見は来週水曜の午後です。立会いをお願いします。", 1500),
            Line(
                "kacho",
                "移転スケジュール（案）を更新しました。\n"
                "- 4月: 書庫の整理と廃棄\n"
                "- 5月第1週: 機器の移設\n"
                "- 5月第2週: 引越し（窓口は土日）",
                1620,
                reactions=(("shokuin", "✅"), ("madoguchi", "✅"), ("admin", "👀")),
            ),
        ),
        read_up_to=(("shokuin", 9), ("kanri", 9), ("madoguchi", 6), ("admin", 7)),
    ),
    DemoChannel(
        name="防災訓練2025",
        description="区の総合防災訓練（避難所開設・避難者輸送）の準備。みどり交通株式会社さんも参加しています。",
        is_private=True,
        owner="kanri",
        members=("kacho", "madoguchi", "guest"),
        days_ago=2,
        lines=(
            Line(
                "kanri",
                "今年の総合防災訓練は10月18日（土）9時から、区立第一中学校で行います。",
                0,
            ),
            Line(
                "kacho",
                "避難所開設の担当は総務課から3名出します。名簿は来週までに提出します。",
                20,
            ),
            Line(
                "guest",
                "みどり交通の中村です。避難者輸送用のバスは2台手配できます。"
                "乗降場所を教えていただけますか。",
                90,
                reactions=(("kanri", "🙏"),),
            ),
            Line(
                "kanri",
                "ありがとうございます。正門前のロータリーでお願いします。地図を後ほどお送りします。",
                110,
                reply_to=2,
            ),
            Line("guest", "承知しました。当日は8時30分に到着するようにします。", 130, reply_to=2),
            Line(
                "madoguchi",
                "要配慮者の名簿の扱いはどうしますか？個人情報なので紙で持ち出すのは避けたいです。",
                300,
            ),
            Line(
                "kacho",
                "訓練では架空の名簿を使います。本番の名簿は持ち出さないでください。",
                320,
                reactions=(("madoguchi", "👍"),),
            ),
            Line("kanri", "雨天の場合は体育館で実施します。中止の判断は前日15時に行います。", 1440),
            Line(
                "guest",
                "雨天時もバスは運行します。中止の場合はこちらにご連絡ください。",
                1500,
            ),
            Line("kanri", "当日の連絡はこのチャンネルで行います。よろしくお願いします。", 1560),
        ),
        read_up_to=(("kacho", 9), ("guest", 8), ("madoguchi", 6)),
    ),
)

DIRECT_LINES = (
    Line("kacho", "鈴木さん、明日の課内会議の資料ですが、10部印刷をお願いできますか。", 0),
    Line("shokuin", "はい、承知しました。午前中に用意して会議室に置いておきます。", 5),
    Line("kacho", "ありがとう。保存年限の一覧表も1部添えてください。", 8),
    Line("shokuin", "一覧表も付けます。最新版は昨日更新したものです。", 12),
)

GROUP_LINES = (
    Line("kanri", "総務課の新しい座席配置について、ご相談させてください。", 0),
    Line("kacho", "課長席は窓側でなくて大丈夫です。窓口に近い方が助かります。", 15),
    Line("shokuin", "文書係はキャビネットの近くだとありがたいです。", 25),
    Line("kanri", "では、キャビネットの隣に文書係の島を置く案で図面を直します。", 40),
    Line("kacho", "それでお願いします。", 45, reactions=(("kanri", "👍"),)),
)

DEPARTMENT_LINES = (
    Line("kacho", "今週の予定です。水曜は庁議のため午後不在です。", 0),
    Line("shokuin", "了解しました。水曜午後の決裁は木曜にまとめて回します。", 10),
    Line("kacho", "よろしくお願いします。", 15, reactions=(("shokuin", "👍"),)),
)


@dataclass
class DemoChatResult:
    conversations_created: list[str] = field(default_factory=list)
    messages_created: int = 0
    department_channels: int = 0


def load_demo_chat() -> DemoChatResult:
    """Create what is missing of the demo chat.  Raises ``DemoChatError`` without the
    demo ward's named accounts."""
    people = {u.username: u for u in User.objects.filter(username__in=PEOPLE, is_active=True)}
    if set(people) != set(PEOPLE):
        raise DemoChatError(
            "デモ区の職員がいません。先に `yakuba demo` でデモ区を作成してください。"
        )
    result = DemoChatResult()
    membership.ensure_department_channels()
    membership.sync_all()
    result.department_channels = Conversation.objects.filter(
        kind=Conversation.Kind.DEPARTMENT
    ).count()
    start = _day_start(4)

    for demo in CHANNELS:
        channel = project_channel_named(demo.name)
        if channel is None:
            with clock.frozen_at(_day_start(demo.days_ago) - dt.timedelta(hours=1)):
                channel = do_create_project_channel(
                    name=demo.name,
                    description=demo.description,
                    is_private=demo.is_private,
                    owners=[people[demo.owner]],
                    members=[people[u] for u in demo.members],
                    acting_user=people[demo.owner],
                )
            result.conversations_created.append(demo.name)
        sent = _send_all(channel, demo.lines, people, _day_start(demo.days_ago), result=result)
        _read(channel, sent, demo.read_up_to, people)

    direct, created = do_get_or_create_direct(
        people["kacho"], people["shokuin"], acting_user=people["kacho"]
    )
    if created:
        result.conversations_created.append("kacho-shokuin")
    sent = _send_all(direct, DIRECT_LINES, people, start, result=result)
    _read(direct, sent, (("shokuin", len(sent) - 1), ("kacho", len(sent) - 1)), people)

    group = _group(people, result)
    sent = _send_all(group, GROUP_LINES, people, _day_start(1), result=result)
    _read(group, sent, (("kacho", len(sent) - 1), ("shokuin", 2)), people)

    somu = _channel_of(people["kacho"])
    if somu is not None:
        sent = _send_all(somu, DEPARTMENT_LINES, people, _day_start(1), result=result)
        _read(somu, sent, (("shokuin", len(sent) - 1),), people)
    return result


def _day_start(days_ago: int) -> dt.datetime:
    day = clock.today() - dt.timedelta(days=days_ago)
    return dt.datetime.combine(day, dt.time(9, 30), tzinfo=clock.TOKYO)


def _group(people: dict[str, User], result: DemoChatResult) -> Conversation:
    existing = (
        Conversation.objects.filter(kind=Conversation.Kind.GROUP, name=GROUP_NAME)
        .order_by("pk")
        .first()
    )
    if existing is not None:
        return existing
    with clock.frozen_at(_day_start(1) - dt.timedelta(minutes=5)):
        group = do_create_group(
            [people["shokuin"], people["kanri"]], name=GROUP_NAME, acting_user=people["kacho"]
        )
    result.conversations_created.append(GROUP_NAME)
    return group


def _channel_of(user: User) -> Conversation | None:
    """The 所属 channel of ``user``'s primary post (課長: 総務課)."""
    staff = getattr(user, "staff", None)
    if staff is None:
        return None
    return Conversation.objects.filter(
        kind=Conversation.Kind.DEPARTMENT, department_id=staff.department_id
    ).first()


def _send_all(
    conversation: Conversation,
    lines: tuple[Line, ...],
    people: dict[str, User],
    start: dt.datetime,
    *,
    result: DemoChatResult,
) -> list[Message]:
    """Send ``lines`` (each once: a fixed client key per line) with their reactions.
    A rerun finds them all in one query and sends nothing."""
    prefix = f"demo-{conversation.pk}-"
    keys = [f"{prefix}{index}"[:64] for index in range(len(lines))]
    existing = {
        m.client_key: m
        for m in Message.objects.filter(conversation=conversation, client_key__in=keys)
    }
    if len(existing) == len(keys):
        return [existing[key] for key in keys]
    sent: list[Message] = []
    for index, line in enumerate(lines):
        sender = people[line.who]
        member = Membership.objects.select_related("conversation").get(
            conversation=conversation, user=sender
        )
        root = sent[line.reply_to].pk if line.reply_to is not None else None
        with clock.frozen_at(start + dt.timedelta(minutes=line.minutes)), transaction.atomic():
            message, created = check_send_message(
                member,
                text=line.text,
                client_key=f"{prefix}{index}"[:64],
                thread_root_id=root,
                acting_user=sender,
            )
            result.messages_created += int(created)
            for who, emoji in line.reactions:
                message.refresh_from_db()
                do_toggle_reaction(message, emoji=emoji, add=True, acting_user=people[who])
        sent.append(message)
    return sent


def _read(
    conversation: Conversation,
    sent: list[Message],
    read_up_to: tuple[tuple[str, int], ...],
    people: dict[str, User],
) -> None:
    """Move read pointers to the given lines (forward only: a rerun reads the pointers
    in one query and changes nothing)."""
    if not sent:
        return
    members = {
        m.user_id: m
        for m in Membership.objects.select_related("conversation").filter(
            conversation=conversation, user__in=[people[who] for who, _ in read_up_to]
        )
    }
    for who, index in read_up_to:
        member = members.get(people[who].pk)
        target = sent[min(index, len(sent) - 1)].seq
        if member is not None and member.last_read_seq < target:
            do_mark_read(member, up_to_seq=target)


__all__ = ["DemoChatError", "DemoChatResult", "load_demo_chat"]
