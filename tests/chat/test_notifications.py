"""Mention e-mail: an unread mention is mailed after the delay, over real SMTP (a local
aiosmtpd sink) through the outbox and the worker; never when read first, muted, or to
someone who left the conversation."""

from __future__ import annotations

import datetime as dt
import itertools
from email.message import EmailMessage

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.smtp import Sink
from yakuba.audit.record import Actor
from yakuba.chat.access import access_conversation_for_post
from yakuba.chat.actions.conversations import do_remove_member, do_set_notify
from yakuba.chat.actions.messages import check_send_message
from yakuba.chat.actions.reads import do_mark_read
from yakuba.chat.models import Conversation, Membership, MentionNotice, Message
from yakuba.chat.notifications import queue_mention_notices, send_due_mention_mail
from yakuba.directory.actions.staff import do_change_staff
from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.mail.models import OutboundMail
from yakuba.tasks.worker import run_once

START = dt.datetime(2026, 4, 1, 0, 0, tzinfo=dt.UTC)
_keys = itertools.count()


@pytest.fixture(autouse=True)
def _mention_mail_after_ten_minutes(settings: SettingsWrapper) -> None:
    settings.CHAT_MENTION_EMAIL_DELAY_MINUTES = 10
    settings.SITE_URL = "https://yakuba.city.example.lg.jp"


@pytest.fixture
def bob_mail(bob: User) -> User:
    do_change_staff(bob.staff, acting_user=Actor.system("test"), email="bob@city.example.lg.jp")
    bob.refresh_from_db()
    return bob


def send(user: User, conversation: Conversation, text: str) -> Message:
    membership = access_conversation_for_post(user, conversation.pk)
    message, created = check_send_message(
        membership, text=text, client_key=f"k{next(_keys)}", acting_user=user
    )
    assert created
    return message


def membership(user: User, conversation: Conversation) -> Membership:
    return Membership.objects.select_related("conversation").get(
        user=user, conversation=conversation
    )


def work() -> None:
    """What ``yakuba worker`` does in a round: periodic jobs, then queued jobs (mail)."""
    run_once("test-worker")


def mails_to(sink: Sink, address: str) -> list[EmailMessage]:
    return [message for rcpt, message in sink.messages if address in rcpt]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def test_it_mails_an_unread_mention_after_the_delay_over_smtp(
    project: Conversation, alice: User, bob_mail: User, smtp_sink: Sink
) -> None:
    with clock.frozen_at(START):
        message = send(alice, project, "@bob 書庫の鍵を総務課で受け取ってください。")
        notice = MentionNotice.objects.get(user=bob_mail, message=message)
        assert notice.due_at == START + dt.timedelta(minutes=10)
        clock.advance(dt.timedelta(minutes=9))
        work()
        assert smtp_sink.messages == []
        clock.advance(dt.timedelta(minutes=1))
        work()
    [mail] = mails_to(smtp_sink, "bob@city.example.lg.jp")
    assert mail["Subject"].strip() == "【Yakuba チャット】未読のメンションが1件あります"
    body = text_of(mail)
    assert "坂東 歩 さん" in body
    assert "@bob 書庫の鍵を総務課で受け取ってください。" in body
    assert "新庁舎移転プロジェクト" in body
    assert "青木 愛" in body
    assert f"https://yakuba.city.example.lg.jp/chat/#c{project.pk}" in body
    notice.refresh_from_db()
    assert (notice.outcome, notice.handled_at) == ("mailed", START + dt.timedelta(minutes=10))
    assert OutboundMail.objects.get().status == OutboundMail.Status.SENT
    # The next rounds send nothing more.
    with clock.frozen_at(START + dt.timedelta(minutes=20)):
        work()
    assert len(smtp_sink.messages) == 1


def test_it_sends_one_mail_listing_every_due_mention(
    project: Conversation, alice: User, bob_mail: User, smtp_sink: Sink
) -> None:
    with clock.frozen_at(START):
        send(alice, project, "@bob 一つ目")
        clock.advance(dt.timedelta(minutes=1))
        send(alice, project, "@bob 二つ目")
        clock.advance(dt.timedelta(minutes=15))
        work()
    [mail] = smtp_sink.messages
    assert mail[1]["Subject"].strip() == "【Yakuba チャット】未読のメンションが2件あります"
    body = text_of(mail[1])
    assert body.index("一つ目") < body.index("二つ目")


def test_it_does_not_mail_a_mention_read_before_the_delay(
    project: Conversation, alice: User, bob_mail: User, smtp_sink: Sink
) -> None:
    with clock.frozen_at(START):
        message = send(alice, project, "@bob 確認お願いします")
        clock.advance(dt.timedelta(minutes=5))
        do_mark_read(membership(bob_mail, project), up_to_seq=message.seq)
        clock.advance(dt.timedelta(minutes=10))
        work()
    assert smtp_sink.messages == []
    assert MentionNotice.objects.get(message=message).outcome == "read"


def test_it_settles_a_mention_read_through_the_pointer_as_read_in_the_job(
    project: Conversation, alice: User, bob_mail: User
) -> None:
    # The pointer may have moved without settling the notice (another path, a race):
    # the job reads the pointer itself.
    with clock.frozen_at(START):
        message = send(alice, project, "@bob 確認お願いします")
        Membership.objects.filter(user=bob_mail, conversation=project).update(
            last_read_seq=message.seq
        )
        assert send_due_mention_mail(START + dt.timedelta(minutes=11)) == 0
    assert MentionNotice.objects.get(message=message).outcome == "read"
    assert not OutboundMail.objects.exists()


def test_it_does_not_mail_a_muted_conversation(
    project: Conversation, alice: User, bob_mail: User, smtp_sink: Sink
) -> None:
    with clock.frozen_at(START):
        message = send(alice, project, "@bob ミュート後に届くか")
        do_set_notify(membership(bob_mail, project), muted=True)
        clock.advance(dt.timedelta(minutes=11))
        work()
        # Muted before the mention: no notice, or one settled as muted.
        send(alice, project, "@bob もう一度")
        clock.advance(dt.timedelta(minutes=11))
        work()
    assert smtp_sink.messages == []
    assert MentionNotice.objects.get(message=message).outcome == "muted"
    assert set(MentionNotice.objects.values_list("outcome", flat=True)) == {"muted"}


def test_it_does_not_mail_someone_who_left_or_has_no_address(
    project: Conversation, alice: User, bob_mail: User, charlie: User, smtp_sink: Sink
) -> None:
    from yakuba.chat.actions.conversations import do_add_members

    do_add_members(project, [charlie], acting_user=alice)
    with clock.frozen_at(START):
        message = send(alice, project, "@bob @charlie 会議の件")
        do_remove_member(project, bob_mail, acting_user=alice)
        clock.advance(dt.timedelta(minutes=11))
        work()
    assert smtp_sink.messages == []
    outcomes = dict(
        MentionNotice.objects.filter(message=message).values_list("user__username", "outcome")
    )
    assert outcomes == {"bob": "not_member", "charlie": "no_address"}


def test_it_writes_no_notices_when_mention_mail_is_off(
    project: Conversation, alice: User, bob_mail: User, settings: SettingsWrapper
) -> None:
    settings.CHAT_MENTION_EMAIL_DELAY_MINUTES = 0
    message = send(alice, project, "@bob 連絡")
    assert not MentionNotice.objects.exists()
    assert queue_mention_notices(message, [bob_mail.pk]) == 0


def test_it_queues_notices_for_a_channel_mention_except_the_sender_and_the_muted(
    project: Conversation, alice: User, bob_mail: User, charlie: User, dora: User
) -> None:
    from yakuba.chat.actions.conversations import do_add_members

    do_add_members(project, [charlie, dora], acting_user=alice)
    do_set_notify(membership(dora, project), notify=Membership.Notify.NONE)
    with clock.frozen_at(START):
        message = send(alice, project, "@channel 来週の移転作業について")
        queue_mention_notices(message, [])
    assert message.mentions_channel
    assert set(MentionNotice.objects.values_list("user__username", flat=True)) == {
        "bob",
        "charlie",
    }
