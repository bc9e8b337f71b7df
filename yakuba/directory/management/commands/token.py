"""``yakuba token``: API tokens for bots and devices, from the operator's shell.

    yakuba token create USER --name NAME --scope api:read [--scope realtime …] [--days N]
    yakuba token list [USER]
    yakuba token revoke TOKEN_ID

``create`` prints the raw token once, on its own line; it is never stored or logged.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from yakuba.audit.record import Actor
from yakuba.directory.actions.auth import do_create_token, do_revoke_token
from yakuba.directory.models import ApiToken, User
from yakuba.directory.tokens import TOKEN_SCOPES, UnknownScope
from yakuba.lib import clock

OPERATOR = Actor.system("yakuba token")


class Command(BaseCommand):
    help = "Create, list and revoke API tokens for bots and devices."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="command", required=True)
        create = commands.add_parser("create", help="issue a token and print it once")
        create.add_argument("user", help="username of the bot, device or person")
        create.add_argument("--name", required=True, help="what the token is for")
        create.add_argument(
            "--scope",
            action="append",
            required=True,
            choices=sorted(TOKEN_SCOPES),
            help="repeat for several scopes",
        )
        create.add_argument("--days", type=int, help="days until it expires (default: never)")
        listing = commands.add_parser("list", help="list tokens (never their secrets)")
        listing.add_argument("user", nargs="?")
        revoke = commands.add_parser("revoke", help="revoke a token by its id")
        revoke.add_argument("token_id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        command = options["command"]
        if command == "create":
            self._create(options)
        elif command == "list":
            self._list(options.get("user"))
        else:
            self._revoke(options["token_id"])

    def _create(self, options: dict[str, Any]) -> None:
        user = User.objects.filter(username=options["user"]).first()
        if user is None or not user.is_active:
            raise CommandError(f"有効な利用者 {options['user']} が見つかりません。")
        days = options.get("days")
        if days is not None and days < 1:
            raise CommandError("--days は1以上で指定してください。")
        expires_at = clock.now() + dt.timedelta(days=days) if days else None
        try:
            token, raw = do_create_token(
                user,
                name=options["name"],
                scopes=options["scope"],
                expires_at=expires_at,
                acting_user=OPERATOR,
            )
        except UnknownScope as exc:
            raise CommandError(f"不明なスコープ: {exc}") from None
        self.stderr.write(
            f"トークン #{token.pk}（{token.name}）を {user.username} に発行しました。"
            "次の行は今だけ表示されます。"
        )
        self.stdout.write(raw)

    def _list(self, username: str | None) -> None:
        rows = ApiToken.objects.select_related("user").order_by("pk")
        if username:
            rows = rows.filter(user__username=username)
        now = clock.now()
        for token in rows:
            state = (
                "revoked"
                if token.revoked_at
                else "expired"
                if not token.is_usable(now)
                else "active"
            )
            expires = token.expires_at.isoformat() if token.expires_at else "never"
            self.stdout.write(
                f"{token.pk}\t{token.user.username}\t{token.name}\t{token.prefix}\t"
                f"{','.join(token.scopes)}\t{expires}\t{state}"
            )

    def _revoke(self, token_id: int) -> None:
        token = ApiToken.objects.filter(pk=token_id).first()
        if token is None:
            raise CommandError(f"トークン #{token_id} はありません。")
        if do_revoke_token(token, acting_user=OPERATOR):
            self.stdout.write(f"トークン #{token_id} を失効させました。")
        else:
            self.stdout.write(f"トークン #{token_id} は既に失効しています。")
