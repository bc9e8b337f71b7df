"""``yakuba panel-token ROOM_CODE``: pair a room's door panel from the operator's shell.

Prints the raw token once, on its own line (it is never stored or logged); enter it on
the tablet at /rooms/panel/.  Running it again issues a new token and revokes the old
one, which signs the old tablet out.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from yakuba.audit.record import Actor
from yakuba.rooms.actions.panel import do_pair_panel
from yakuba.rooms.models import Room


class Command(BaseCommand):
    help = "Issue the door-panel token of a room (printed once; the old one is revoked)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("room", help="the room's code, e.g. R301")

    def handle(self, *args: Any, **options: Any) -> None:
        code = str(options["room"]).strip()
        room = Room.objects.filter(code__iexact=code).first()
        if room is None:
            raise CommandError(f"会議室コード {code} の会議室がありません。")
        raw = do_pair_panel(room, acting_user=Actor.system("yakuba panel-token"))
        self.stdout.write(raw)
