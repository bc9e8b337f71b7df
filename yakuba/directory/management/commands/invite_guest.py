"""``yakuba invite_guest``: create a guest account (a person outside the ward)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email

from yakuba.audit.record import Actor
from yakuba.directory.actions.staff import DirectoryError, do_invite_guest
from yakuba.lib import clock


class Command(BaseCommand):
    help = "Invite a guest (name, organisation, e-mail) who may sign in until the expiry date."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="氏名, e.g. 山田 花子")
        parser.add_argument("--organisation", default="", help="所属団体, e.g. ○○交通株式会社")
        parser.add_argument("--email", required=True)
        parser.add_argument(
            "--expires", required=True, help="last day of access (Tokyo), e.g. 2026-03-31"
        )
        parser.add_argument("--username", help="default: guest0001, guest0002, …")
        parser.add_argument("--password-file", help="read an initial password from this file")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            last_day = dt.date.fromisoformat(options["expires"])
        except ValueError:
            raise CommandError("--expires は 2026-03-31 の形式で指定してください。") from None
        # Access ends when the last day ends in Tokyo.
        expires_at = dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(), clock.TOKYO)
        try:
            validate_email(options["email"])
        except ValidationError:
            message = f"--email {options['email']} はメールアドレスの形式ではありません。"
            raise CommandError(message) from None
        password = None
        if options["password_file"]:
            try:
                password = Path(options["password_file"]).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise CommandError(f"パスワードのファイルを読めません: {exc}") from None
        try:
            user = do_invite_guest(
                name=options["name"],
                organisation=options["organisation"],
                email=options["email"],
                expires_at=expires_at,
                username=options["username"],
                password=password,
                acting_user=Actor.system("CLI invite_guest"),
            )
        except DirectoryError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"ゲスト {user.username}（{user.display_name}）を登録しました。")
