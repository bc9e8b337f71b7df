"""Mention e-mail: a mention nobody has read after ``CHAT_MENTION_EMAIL_DELAY_MINUTES``
reaches the person by e-mail, through the outbox and the worker.

Two steps, so that a send never waits for mail and nothing is lost in between:

1. ``queue_mention_notices`` runs inside the send's transaction and writes one
   ``MentionNotice`` per person to notify (those mentioned by name or through a 所属,
   and every member for a mention of the whole channel), due after the delay.  People
   who chose 「通知しない」 or muted the conversation, bots, and the sender are left out.
2. The periodic job ``chat.mention_mail`` (every minute) takes the due notices and
   settles each: ``read`` when the person's read pointer (or their pointer in the
   thread) reached the message first, ``muted`` when they muted it meanwhile,
   ``not_member`` when they left the conversation (a person transferred out must not get
   its messages by mail), ``deleted`` when the message was deleted, ``no_address`` when
   they have no e-mail address or their account is stopped; the rest become one e-mail
   per person listing their due mentions (``mailed``).  The notices are settled and the
   mail queued in one transaction, so a crash sends nothing twice and loses nothing.

A delay of 0 turns mention e-mail off: no notices are written.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings
from django.db import connection, transaction
from django.utils import translation
from django.utils.translation import gettext as _

from yakuba.chat.models import Membership, MentionNotice, Message, ThreadRead
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.mail.outbox import queue_mail
from yakuba.tasks.registry import periodic

log = logging.getLogger(__name__)

# Notices settled per run of the job (the next run takes the rest a minute later).
BATCH = 2000
# Characters of each message quoted in the e-mail.
EXCERPT = 200
# Mentions listed in one e-mail; the rest are counted.
LISTED = 20


def conversation_url(conversation_id: int) -> str:
    return f"{settings.SITE_URL}/chat/#c{conversation_id}"


def queue_mention_notices(message: Message, user_ids: Iterable[int]) -> int:
    """Write the notices for a new message that mentions ``user_ids`` (and everyone,
    when ``message.mentions_channel``).  Call it inside the send's transaction.
    Returns the number written."""
    delay: int = settings.CHAT_MENTION_EMAIL_DELAY_MINUTES
    if delay <= 0:
        return 0
    wanted = {int(uid) for uid in user_ids}
    members = Membership.objects.filter(
        conversation_id=message.conversation_id,
        muted=False,
        user__is_active=True,
        user__kind__in=(User.Kind.STAFF, User.Kind.GUEST),
    ).exclude(notify=Membership.Notify.NONE)
    if message.sender_id is not None:
        members = members.exclude(user_id=message.sender_id)
    if not message.mentions_channel:
        if not wanted:
            return 0
        members = members.filter(user_id__in=wanted)
    due_at = clock.now() + dt.timedelta(minutes=delay)
    notices = [
        MentionNotice(user_id=uid, message_id=message.pk, due_at=due_at)
        for uid in members.values_list("user_id", flat=True)
    ]
    MentionNotice.objects.bulk_create(notices, ignore_conflicts=True)
    return len(notices)


@periodic("chat.mention_mail", every=dt.timedelta(minutes=1))
def mention_mail() -> None:
    sent = send_due_mention_mail()
    if sent:
        log.info("mailed unread mentions to %d people", sent)


def send_due_mention_mail(now: dt.datetime | None = None) -> int:
    """Settle the notices due by ``now`` and queue one e-mail per person; returns the
    number of e-mails queued.  Safe to run in several workers at once: the notices are
    taken with ``SKIP LOCKED`` on PostgreSQL; on SQLite the transaction holds the write
    lock from its start (``BEGIN IMMEDIATE``)."""
    now = now or clock.now()
    with transaction.atomic():
        due = (
            MentionNotice.objects.filter(handled_at__isnull=True, due_at__lte=now)
            .select_related("user", "message__conversation", "message__sender")
            .order_by("due_at", "pk")
        )
        if connection.vendor == "postgresql":
            due = due.select_for_update(skip_locked=True, of=("self",))
        notices = list(due[:BATCH])
        if not notices:
            return 0
        outcomes = _settle(notices)
        by_outcome: dict[str, list[int]] = defaultdict(list)
        for notice in notices:
            by_outcome[outcomes[notice.pk]].append(notice.pk)
        for outcome, ids in by_outcome.items():
            MentionNotice.objects.filter(pk__in=ids, handled_at__isnull=True).update(
                handled_at=now, outcome=outcome
            )
        to_mail: dict[int, list[MentionNotice]] = defaultdict(list)
        for notice in notices:
            if outcomes[notice.pk] == "mailed":
                to_mail[notice.user_id].append(notice)
        for mentions in to_mail.values():
            _queue_mail(mentions)
    return len(to_mail)


def _settle(notices: list[MentionNotice]) -> dict[int, str]:
    """The outcome of each notice (by its id), read in two queries."""
    pairs = {(n.message.conversation_id, n.user_id) for n in notices}
    memberships = {
        (m.conversation_id, m.user_id): m
        for m in Membership.objects.filter(
            conversation_id__in={c for c, _u in pairs}, user_id__in={u for _c, u in pairs}
        )
    }
    roots = {n.message.thread_root_id for n in notices if n.message.thread_root_id}
    thread_reads = {
        (t.root_id, t.user_id): t.last_read_seq
        for t in ThreadRead.objects.filter(
            root_id__in=roots, user_id__in={n.user_id for n in notices}
        )
    }
    outcomes: dict[int, str] = {}
    for notice in notices:
        message, user = notice.message, notice.user
        membership = memberships.get((message.conversation_id, user.pk))
        read_in_thread = (
            message.thread_root_id is not None
            and thread_reads.get((message.thread_root_id, user.pk), 0) >= message.seq
        )
        if membership is None:
            outcome = "not_member"
        elif message.deleted_at is not None:
            outcome = "deleted"
        elif membership.last_read_seq >= message.seq or read_in_thread:
            outcome = "read"
        elif membership.muted or membership.notify == Membership.Notify.NONE:
            outcome = "muted"
        elif not user.is_active or not user.email.strip():
            outcome = "no_address"
        else:
            outcome = "mailed"
        outcomes[notice.pk] = outcome
    return outcomes


def _queue_mail(notices: list[MentionNotice]) -> None:
    """One e-mail to one person about their due mentions (Japanese unless they chose
    English)."""
    user = notices[0].user
    notices.sort(key=lambda n: (n.message.created_at, n.message.pk))
    with translation.override(user.language or "ja"):
        count = len(notices)
        subject = _("【Yakuba チャット】未読のメンションが{count}件あります").format(count=count)
        lines = [
            _("{name} さん").format(name=user.display_name or user.username),
            "",
            _("チャットであなた宛てのメンションが{count}件あり、まだ読まれていません。").format(
                count=count
            ),
            "",
        ]
        for notice in notices[:LISTED]:
            message = notice.message
            sender = (
                message.sender_label
                or (str(message.sender) if message.sender_id else "")
                or _("（不明）")
            )
            when = clock.local(message.created_at).strftime("%Y-%m-%d %H:%M")
            text = " ".join(message.text.split())
            if len(text) > EXCERPT:
                text = text[:EXCERPT] + "…"
            lines += [
                _("■ {conversation}　{sender}（{when}）").format(
                    conversation=message.conversation, sender=sender, when=when
                ),
                text,
                conversation_url(message.conversation_id),
                "",
            ]
        if count > LISTED:
            lines += [
                _("ほか{rest}件はチャットで確認してください。").format(rest=count - LISTED),
                "",
            ]
        lines += [
            "--",
            _(
                "このメールは、メンションが{minutes}分たっても読まれていないときに送られます。"
            ).format(minutes=settings.CHAT_MENTION_EMAIL_DELAY_MINUTES),
            _("会話ごとの「通知」の設定で、通知しない・ミュートにできます。"),
        ]
    queue_mail(to=[user.email], subject=subject, body="\n".join(lines))
