"""Every write of the chat app, by subject: ``conversations`` (channels, direct and
group messages, their members and settings), ``messages`` (sending, editing, reactions,
pins, read pointers) and the integrations.  Each action checks what it is given, writes
inside ``transaction.atomic()``, audits what the design says is audited and sends its
events after commit.  A refused change raises ``ChatError``."""

from __future__ import annotations

from typing import Any


class ChatError(ValueError):
    """A change that cannot be made.  ``message`` is Japanese and says what to do;
    ``english`` is for logs and the API (``str(error)``); ``code`` is stable; ``status``
    is the HTTP status the API answers with; ``field`` names the input at fault."""

    def __init__(
        self,
        message: str,
        english: str,
        *,
        code: str = "invalid",
        status: int = 400,
        field: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(english)
        self.message = message
        self.english = english
        self.code = code
        self.status = status
        self.field = field
        self.details = details or {}

    def __str__(self) -> str:
        return self.english
