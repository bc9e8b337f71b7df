"""Signals other apps use to follow the directory.

``memberships_changed`` is sent inside the transaction that changed people's 所属, 兼務
or 在職状況 (or ended or restored their account), with ``user_ids``.  A receiver runs in
that same transaction, so what it derives (the members of 所属 chat channels) can never
disagree with the directory after commit: a person moved out on the transfer date cannot
read the old channel a moment later.
"""

from __future__ import annotations

from django.dispatch import Signal

memberships_changed = Signal()
