"""``yakuba createadmin``: create the first IT administrator (情報政策)."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Create an IT administrator account who can sign in to the admin pages."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="display name, e.g. 情報 太郎")
        parser.add_argument("--email", default="")
        parser.add_argument("--password-file", help="read the password from this file")

    def handle(self, *args: Any, **options: Any) -> None:
        from yakuba.directory.actions.auth import do_create_admin

        if options["password_file"]:
            with open(options["password_file"], encoding="utf-8") as handle:
                password = handle.read().strip()
        else:
            password = getpass.getpass("パスワード: ")
            if password != getpass.getpass("パスワード（確認）: "):
                raise CommandError("パスワードが一致しません。")
        try:
            user = do_create_admin(
                options["username"], password, display_name=options["name"], email=options["email"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"created IT administrator {user.username}")
