"""``queue_mail``: the one way to send mail.  Call it inside the action's transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction

from yakuba.mail.models import OutboundMail


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # e.g. "text/calendar; method=REQUEST"
    content: str


def queue_mail(
    *, to: Iterable[str], subject: str, body: str, attachments: Iterable[Attachment] = ()
) -> OutboundMail | None:
    """Write a message to the outbox and have the worker send it after commit.  Empty
    addresses are dropped; with none left nothing is queued (a person without e-mail)."""
    from yakuba.tasks.registry import enqueue

    addresses = sorted({address.strip() for address in to if address and address.strip()})
    if not addresses:
        return None
    # No savepoint inside the caller's transaction: two round trips saved per
    # write, and an error here fails the whole action anyway.
    with transaction.atomic(savepoint=False):
        mail = OutboundMail.objects.create(
            to=addresses,
            subject=subject[:300],
            body=body,
            attachments=[
                {"filename": a.filename, "content_type": a.content_type, "content": a.content}
                for a in attachments
            ],
        )
        enqueue("mail.send", mail_id=mail.pk)
    return mail
