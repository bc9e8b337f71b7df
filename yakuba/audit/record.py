"""``record``: the one audit writer, called inside every action's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connection, models, transaction

from yakuba.audit.models import ActorKind, AuditAction, AuditEntry, CanonicalJSONEncoder
from yakuba.lib import clock
from yakuba.lib.request_context import source_address

if TYPE_CHECKING:
    from yakuba.directory.models import User


class AuditOutsideTransaction(RuntimeError):
    """``record`` was called outside a transaction: the entry could outlive a rolled-back
    change, or the change could commit without its entry."""


@dataclass(frozen=True)
class Actor:
    """Who performed an action: staff, guest, device/bot, the system, or nobody signed in."""

    kind: str
    id: int | None
    label: str

    @classmethod
    def of(cls, user: User | None) -> Actor:
        if user is None or not getattr(user, "is_authenticated", False):
            return cls.anonymous()
        kind = {
            "staff": ActorKind.STAFF,
            "guest": ActorKind.GUEST,
            "bot": ActorKind.DEVICE,
            "device": ActorKind.DEVICE,
        }[user.kind]
        return cls(kind=kind, id=user.pk, label=f"{user.display_name} ({user.username})")

    @classmethod
    def system(cls, label: str = "システム") -> Actor:
        return cls(kind=ActorKind.SYSTEM, id=None, label=label)

    @classmethod
    def anonymous(cls, label: str = "") -> Actor:
        return cls(kind=ActorKind.ANONYMOUS, id=None, label=label)


def _target_fields(target: models.Model | tuple[str, str, str] | None) -> tuple[str, str, str]:
    if target is None:
        return "", "", ""
    if isinstance(target, tuple):
        return target
    return target._meta.label_lower, str(target.pk), str(target)[:300]


def record(
    action: AuditAction,
    *,
    actor: Actor | User | None,
    target: models.Model | tuple[str, str, str] | None = None,
    details: dict[str, Any] | None = None,
    source_ip: str | None = None,
) -> AuditEntry:
    """Append an audit entry in the caller's transaction.

    ``target`` is a model instance or a ``(type, id, label)`` triple.  ``details`` must be
    JSON-serialisable.  The source address defaults to the current request's.
    """
    if not isinstance(action, AuditAction):
        raise TypeError(f"audit action must be an AuditAction, not {action!r}")
    if not connection.in_atomic_block:
        raise AuditOutsideTransaction(f"record({action.value}) called outside transaction.atomic()")
    who = actor if isinstance(actor, Actor) else Actor.of(actor)
    target_type, target_id, target_label = _target_fields(target)
    # Positional arguments take Django's fast path for building an instance (4 µs
    # instead of 8 µs here, on every audited action); the order is checked against
    # the model once, at import (_ENTRY_FIELDS).
    entry = AuditEntry(
        None,
        clock.now(),
        who.kind,
        who.id,
        who.label,
        action.value,
        target_type,
        target_id,
        target_label,
        details or {},
        _source_ip(source_ip or source_address.get()),
    )
    entry.pk = _insert(entry)
    entry._state.adding = False
    transaction.on_commit(_wake_sealer)
    return entry


_ENTRY_FIELDS = (
    "id",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "details",
    "source_ip",
)
if tuple(f.attname for f in AuditEntry._meta.concrete_fields) != _ENTRY_FIELDS:
    raise RuntimeError("AuditEntry's fields changed: update record()'s positional arguments")

_INSERT = (
    "INSERT INTO audit_auditentry (occurred_at, actor_kind, actor_id, actor_label, action, "
    "target_type, target_id, target_label, details, source_ip) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
)


def _insert(entry: AuditEntry) -> int:
    """One INSERT, without the ORM's per-call SQL compilation: this runs in every
    action of the ward, so its cost is paid on every write (see bench/audit.py)."""
    ops = connection.ops
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT,
            [
                ops.adapt_datetimefield_value(entry.occurred_at),
                entry.actor_kind,
                entry.actor_id,
                entry.actor_label,
                entry.action,
                entry.target_type,
                entry.target_id,
                entry.target_label,
                ops.adapt_json_value(entry.details, CanonicalJSONEncoder),
                ops.adapt_ipaddressfield_value(entry.source_ip),
            ],
        )
        return int(cursor.fetchone()[0])


def _source_ip(address: str | None) -> str | None:
    """The address as the model field stores it (IPv6 in its normal short form)."""
    return _IP_FIELD.get_prep_value(address) if address else None


_IP_FIELD = AuditEntry._meta.get_field("source_ip")


def _wake_sealer() -> None:
    """Tell a sealer in this process that new entries were committed."""
    from yakuba.audit import sealer

    sealer.wake()


def record_denial(
    *,
    actor: Actor | User | None,
    what: str,
    target: models.Model | tuple[str, str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Log a permission denial (every 403).  Runs in its own transaction, because the
    request that was refused has usually changed nothing."""
    with transaction.atomic():
        record(
            AuditAction.PERMISSION_DENIED,
            actor=actor,
            target=target,
            details={"what": what, **(details or {})},
        )
