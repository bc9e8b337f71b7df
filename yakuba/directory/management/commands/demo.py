"""``yakuba demo``: build the demo ward (idempotent) and print the demo accounts."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from yakuba.directory.demo_data import (
    DEFAULT_STAFF,
    DEMO_PASSWORD,
    describe_accounts,
    do_load_demo,
)


class Command(BaseCommand):
    help = "Load the demo ward: about 100 所属, 2,300 staff, every role, a few guests."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--staff", type=int, default=DEFAULT_STAFF, help="number of staff (default 2300)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        result = do_load_demo(staff_count=max(options["staff"], 1))
        elapsed = time.monotonic() - started
        if result.has_changes:
            self.stdout.write(
                f"デモ区を作成・更新しました（{elapsed:.1f}秒）: "
                f"所属 新規 {len(result.departments.created)}・更新 "
                f"{len(result.departments.changed)}、職員 新規 {len(result.staff.created)}・"
                f"更新 {len(result.staff.changed)}、ロール {result.roles_added}、"
                f"ゲスト {result.guests_added}"
            )
        else:
            self.stdout.write("no changes: デモ区は既に最新です（変更はありません）。")
        from yakuba.rooms.demo import load_demo_rooms

        rooms = load_demo_rooms()
        self.stdout.write(
            f"会議室: 新規 {len(rooms.rooms_created)} 室、予約 {rooms.bookings_created} 件"
        )
        from yakuba.minutes.demo import load_demo_minutes

        minutes = load_demo_minutes()
        self.stdout.write(f"議事録: 新規 {len(minutes.created)} 件の会議")
        from yakuba.chat.demo import load_demo_chat

        chat = load_demo_chat()
        self.stdout.write(
            f"チャット: 新規 {len(chat.conversations_created)} 件の会話、"
            f"メッセージ {chat.messages_created} 件"
        )
        self.stdout.write(f"\nデモ用アカウント（パスワードはすべて {DEMO_PASSWORD}）:")
        for username, name, note in describe_accounts():
            self.stdout.write(f"  {username:<10} {name:<8} {note}")
