"""Sending the outbox over SMTP (``EMAIL_*`` settings)."""

from __future__ import annotations

import logging
import smtplib
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.text import MIMEText
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage

from yakuba.lib import clock
from yakuba.mail.models import OutboundMail
from yakuba.tasks.models import Job
from yakuba.tasks.registry import job

log = logging.getLogger(__name__)

# The worker tries a job this many times (Job.max_attempts' default); after the last
# failed attempt the message is marked FAILED so that an operator sees it.
MAX_SEND_ATTEMPTS: int = Job._meta.get_field("max_attempts").default


class MailNotSent(RuntimeError):
    """The relay refused or was unreachable: the job is retried by the worker."""


def mime_attachment(attachment: dict[str, Any]) -> MIMEBase:
    """An attachment part keeping the content type's parameters: a calendar invitation
    needs ``text/calendar; method=REQUEST`` on its part, or Outlook shows a plain file.
    (Django's ``attach`` would put the parameters into the subtype and add a second
    charset.)"""
    header = Message()
    header["Content-Type"] = attachment["content_type"]
    maintype, subtype = header.get_content_maintype(), header.get_content_subtype()
    content = attachment["content"]
    part: MIMEBase
    if maintype == "text":
        part = MIMEText(content, subtype, "utf-8")
    else:
        part = MIMEBase(maintype, subtype)
        part.set_payload(content)
    for name, value in (header.get_params() or [])[1:]:
        if name.lower() != "charset":
            part.set_param(name, value)
    part.add_header("Content-Disposition", "attachment", filename=attachment["filename"])
    return part


@job("mail.send")
def send_mail(mail_id: int) -> None:
    """Send one queued message.  Claimed with a conditional UPDATE, so a retried or
    duplicated job never sends a message twice once it was marked sent.  A failure
    of the relay leaves it queued with ``last_error`` and raises so that the worker
    retries; the last attempt marks it FAILED.  A message that can never be sent (a bad
    header) is marked FAILED at once."""
    mail = OutboundMail.objects.filter(pk=mail_id, status=OutboundMail.Status.QUEUED).first()
    if mail is None or not settings.MAIL_ENABLED:
        return
    message = EmailMessage(subject=mail.subject, body=mail.body, to=mail.to)
    for attachment in mail.attachments:
        message.attach(mime_attachment(attachment))
    attempts = mail.attempts + 1
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as exc:
        status = (
            OutboundMail.Status.FAILED
            if attempts >= MAX_SEND_ATTEMPTS
            else OutboundMail.Status.QUEUED
        )
        OutboundMail.objects.filter(pk=mail.pk).update(
            attempts=attempts, last_error=str(exc)[:2000], status=status
        )
        raise MailNotSent(f"mail {mail.pk}: {exc}") from exc
    except Exception as exc:
        # Not the relay: the message itself cannot be sent (a header with a line break,
        # an address Python cannot encode).  Retrying cannot help, so it fails now and
        # the operator sees it; left QUEUED it would stay there for ever.
        log.error("mail %s cannot be sent: %r", mail.pk, exc)
        OutboundMail.objects.filter(pk=mail.pk, status=OutboundMail.Status.QUEUED).update(
            attempts=attempts, last_error=repr(exc)[:2000], status=OutboundMail.Status.FAILED
        )
        return
    OutboundMail.objects.filter(pk=mail.pk, status=OutboundMail.Status.QUEUED).update(
        status=OutboundMail.Status.SENT, sent_at=clock.now(), attempts=attempts, last_error=""
    )
