"""Sending the outbox over SMTP (``EMAIL_*`` settings)."""

from __future__ import annotations

import logging
import smtplib

from django.conf import settings
from django.core.mail import EmailMessage

from yakuba.lib import clock
from yakuba.mail.models import OutboundMail
from yakuba.tasks.registry import job

log = logging.getLogger(__name__)


class MailNotSent(RuntimeError):
    """The relay refused or was unreachable: the job is retried by the worker."""


@job("mail.send")
def send_mail(mail_id: int) -> None:
    """Send one queued message.  Claimed with a conditional UPDATE, so a retried or
    duplicated job never sends a message twice once it was marked sent."""
    mail = OutboundMail.objects.filter(pk=mail_id, status=OutboundMail.Status.QUEUED).first()
    if mail is None or not settings.MAIL_ENABLED:
        return
    message = EmailMessage(subject=mail.subject, body=mail.body, to=mail.to)
    for attachment in mail.attachments:
        message.attach(attachment["filename"], attachment["content"], attachment["content_type"])
    attempts = mail.attempts + 1
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as exc:
        OutboundMail.objects.filter(pk=mail.pk).update(attempts=attempts, last_error=str(exc))
        raise MailNotSent(f"mail {mail.pk}: {exc}") from exc
    OutboundMail.objects.filter(pk=mail.pk, status=OutboundMail.Status.QUEUED).update(
        status=OutboundMail.Status.SENT, sent_at=clock.now(), attempts=attempts, last_error=""
    )
