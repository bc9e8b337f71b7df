"""Door panels (ドアパネル): the tablet by a room's door signs in with a device token.

Pairing makes (or reuses) the room's device account ``panel-<code>``, revokes the tokens
it held (a re-paired room's old tablet is signed out at its next request) and issues a
token with the scope ``rooms.panel`` only.  The raw token is returned once and never
stored.
"""

from __future__ import annotations

from django.db import transaction

from yakuba.audit.models import AuditAction
from yakuba.audit.record import Actor, record
from yakuba.directory import tokens
from yakuba.directory.actions.auth import do_create_token, do_revoke_token
from yakuba.directory.models import ApiToken, User
from yakuba.rooms.models import Room

PANEL_SCOPE = "rooms.panel"


def panel_username(room: Room) -> str:
    return f"panel-{room.code.lower()}"


def do_pair_panel(room: Room, *, acting_user: User | Actor) -> str:
    """Issue a new door-panel token for ``room`` and return the raw token (shown once).
    The caller has checked that ``acting_user`` is a facility manager or IT administrator
    (``access_facility_management``)."""
    with transaction.atomic():
        device = User.objects.filter(username=panel_username(room)).first()
        if device is None:
            device = User.objects.create_user(
                panel_username(room),
                None,
                display_name=f"ドアパネル {room.name}"[:100],
                kind=User.Kind.DEVICE,
            )
        if room.panel_device_id != device.pk:
            Room.objects.filter(pk=room.pk).update(panel_device=device)
            room.panel_device = device
        for old in ApiToken.objects.filter(user=device, revoked_at__isnull=True):
            do_revoke_token(old, acting_user=acting_user)
        token, raw = do_create_token(
            device,
            name=f"ドアパネル {room.code}",
            scopes=[PANEL_SCOPE],
            expires_at=None,
            acting_user=acting_user,
        )
        record(
            AuditAction.ROOM_PANEL_PAIRED,
            actor=acting_user,
            target=room,
            details={"room": room.code, "device": device.username, "prefix": token.prefix},
        )
    return raw


def panel_room(raw: str) -> tuple[User, Room] | None:
    """The device and room a raw panel token signs in, or None (unknown, revoked or
    expired token, inactive device, or a device no longer attached to a room)."""
    if not raw:
        return None
    found = tokens.authenticate_token(raw, scope=PANEL_SCOPE)
    if found is None:
        return None
    device, _token = found
    if device.kind != User.Kind.DEVICE:
        return None
    room = Room.objects.select_related("floor__building").filter(panel_device=device).first()
    if room is None:
        return None
    return device, room
