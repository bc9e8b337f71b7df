"""The mail outbox: mail is written here in the action's transaction and sent by the
worker, so a slow or absent SMTP relay never slows a request or loses a message."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from yakuba.lib import clock


class OutboundMail(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("送信待ち")
        SENT = "sent", _("送信済")
        FAILED = "failed", _("送信失敗")

    to = models.JSONField(_("宛先"), default=list)
    subject = models.CharField(_("件名"), max_length=300)
    body = models.TextField(_("本文"))
    # [{"filename", "content_type", "content" (text)}]: calendar files and the like.
    attachments = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=clock.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        verbose_name = _("送信メール")
        verbose_name_plural = _("送信メール")
        indexes: ClassVar = [
            models.Index(fields=["created_at"], condition=Q(status="queued"), name="mail_queued")
        ]

    def __str__(self) -> str:
        return f"{self.subject} → {', '.join(self.to)}"
