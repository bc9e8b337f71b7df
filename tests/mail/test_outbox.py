"""The outbox sent to a real SMTP server on loopback (aiosmtpd), and kept for a retry
when the relay cannot be reached."""

from __future__ import annotations

import icalendar
import pytest
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.smtp import Sink, free_port
from yakuba.mail.models import OutboundMail
from yakuba.mail.outbox import Attachment, queue_mail
from yakuba.mail.tasks import MAX_SEND_ATTEMPTS, MailNotSent, send_mail
from yakuba.tasks.models import Job
from yakuba.tasks.worker import run_job

ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//test//JA\r\nMETHOD:REQUEST\r\n"
    "BEGIN:VEVENT\r\nUID:abc@yakuba\r\nDTSTAMP:20250601T000000Z\r\n"
    "DTSTART:20250612T010000Z\r\nDTEND:20250612T020000Z\r\nSUMMARY:係会議\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def _queue() -> OutboundMail:
    mail = queue_mail(
        to=["alice@example.test", "bob@example.test"],
        subject="【会議室予約】係会議",
        body="会議室を予約しました。",
        attachments=[
            Attachment("booking.ics", "text/calendar; method=REQUEST; charset=utf-8", ICS)
        ],
    )
    assert mail is not None
    return mail


def _job_for(mail: OutboundMail) -> Job:
    return Job.objects.filter(name="mail.send", kwargs__mail_id=mail.pk).get()


def _claim(job: Job) -> Job:
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, claimed_by="test", attempts=1)
    job.refresh_from_db()
    return job


def test_it_sends_a_queued_mail_with_its_calendar_attachment(db: None, smtp_sink: Sink) -> None:
    mail = _queue()
    job = _claim(_job_for(mail))
    run_job(job)
    mail.refresh_from_db()
    assert mail.status == OutboundMail.Status.SENT
    assert mail.sent_at is not None
    assert mail.attempts == 1
    job.refresh_from_db()
    assert job.status == Job.Status.DONE
    [(recipients, message)] = smtp_sink.messages
    assert sorted(recipients) == ["alice@example.test", "bob@example.test"]
    assert message["Subject"] == "【会議室予約】係会議"
    [part] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert part.get_param("method") == "REQUEST"
    assert part.get_filename() == "booking.ics"
    calendar = icalendar.Calendar.from_ical(part.get_content())
    assert str(calendar["METHOD"]) == "REQUEST"
    [event] = calendar.walk("VEVENT")
    assert str(event["SUMMARY"]) == "係会議"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    assert "会議室を予約しました。" in body.get_content()

    # A duplicated job never sends it twice.
    send_mail(mail_id=mail.pk)
    assert len(smtp_sink.messages) == 1


def test_it_keeps_the_mail_queued_when_the_relay_refuses(
    db: None, settings: SettingsWrapper
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = free_port()  # nothing listens there
    settings.MAIL_ENABLED = True
    mail = _queue()
    with pytest.raises(MailNotSent):
        send_mail(mail_id=mail.pk)
    mail.refresh_from_db()
    assert mail.status == OutboundMail.Status.QUEUED
    assert mail.attempts == 1
    assert "refused" in mail.last_error.lower() or "111" in mail.last_error

    # Through the worker: the job goes back to the queue for a retry with a backoff.
    job = _claim(_job_for(mail))
    run_job(job)
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED
    assert "MailNotSent" in job.last_error
    mail.refresh_from_db()
    assert (mail.status, mail.attempts) == (OutboundMail.Status.QUEUED, 2)


def test_it_marks_the_mail_failed_after_the_last_attempt(
    db: None, settings: SettingsWrapper
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = free_port()
    settings.MAIL_ENABLED = True
    mail = _queue()
    OutboundMail.objects.filter(pk=mail.pk).update(attempts=MAX_SEND_ATTEMPTS - 1)
    with pytest.raises(MailNotSent):
        send_mail(mail_id=mail.pk)
    mail.refresh_from_db()
    assert mail.status == OutboundMail.Status.FAILED
    assert mail.last_error


def test_it_fails_a_mail_that_can_never_be_sent_at_once(db: None, smtp_sink: Sink) -> None:
    mail = queue_mail(to=["alice@example.test"], subject="件名", body="本文")
    assert mail is not None
    # A subject with a line break is refused by Django before any SMTP (header injection).
    OutboundMail.objects.filter(pk=mail.pk).update(subject="件名\nBcc: mallory@example.test")
    job = _claim(_job_for(mail))
    run_job(job)
    mail.refresh_from_db()
    assert mail.status == OutboundMail.Status.FAILED
    assert mail.attempts == 1
    assert "BadHeaderError" in mail.last_error
    job.refresh_from_db()
    assert job.status == Job.Status.DONE  # no pointless retries
    assert smtp_sink.messages == []
