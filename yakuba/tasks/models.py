"""A database-backed job queue: rows claimed by ``yakuba worker`` processes."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models import Q

from yakuba.lib import clock


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "待機"
        RUNNING = "running", "実行中"
        DONE = "done", "完了"
        FAILED = "failed", "失敗"
        CANCELLED = "cancelled", "取消"

    name = models.CharField(max_length=100)
    kwargs = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    run_after = models.DateTimeField(default=clock.now)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=5)
    claimed_by = models.CharField(max_length=100, blank=True)
    # A running job whose worker stops heart-beating past this time is taken over.
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["run_after"], condition=Q(status="queued"), name="job_due"),
        ]

    def __str__(self) -> str:
        return f"{self.name}#{self.pk} ({self.status})"
