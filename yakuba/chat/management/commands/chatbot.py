"""``yakuba chatbot``: chat bots, from the operator's shell (IT administrators).

    yakuba chatbot create NAME --conversation ID [--conversation ID …]
                               [--display-name 表示名] [--outgoing-url URL]
    yakuba chatbot list
    yakuba chatbot revoke NAME

``create`` makes a bot account with an API token of scope ``chat:send``, a member of the
named project channels, and prints the token once on its own line (and the outgoing
webhook's signing secret, when a URL is given); neither is shown again.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from yakuba.audit.record import Actor
from yakuba.chat.actions import ChatError
from yakuba.chat.models import Conversation
from yakuba.chat.webhooks import bot_summaries, do_create_bot, do_revoke_bot
from yakuba.directory.models import User

OPERATOR = Actor.system("yakuba chatbot")


class Command(BaseCommand):
    help = "Create, list and revoke chat bots."

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="command", required=True)
        create = commands.add_parser("create", help="create a bot and print its token once")
        create.add_argument("name", help="the bot's username (letters, digits, - _ .)")
        create.add_argument(
            "--conversation",
            action="append",
            type=int,
            default=[],
            help="id of a project channel the bot joins (repeat for several)",
        )
        create.add_argument("--display-name", default="", help="the name people see")
        create.add_argument("--outgoing-url", help="URL called when the bot is mentioned")
        commands.add_parser("list", help="list bots (never their secrets)")
        revoke = commands.add_parser("revoke", help="stop a bot: revoke its tokens and webhook")
        revoke.add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        command = options["command"]
        if command == "create":
            self._create(options)
        elif command == "list":
            self._list()
        else:
            self._revoke(options["name"])

    def _create(self, options: dict[str, Any]) -> None:
        ids: list[int] = options["conversation"]
        conversations = list(Conversation.objects.filter(pk__in=ids))
        missing = sorted(set(ids) - {c.pk for c in conversations})
        if missing:
            raise CommandError(f"会話 {', '.join(map(str, missing))} が見つかりません。")
        try:
            bot = do_create_bot(
                username=options["name"],
                display_name=options["display_name"],
                conversations=conversations,
                outgoing_url=options.get("outgoing_url"),
                acting_user=OPERATOR,
            )
        except ChatError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(
            f"ボット {bot.user.username}（#{bot.user.pk}）を作成しました。"
            "次の行のトークンは今だけ表示されます。"
        )
        self.stdout.write(bot.raw_token)
        if bot.outgoing_secret:
            self.stderr.write("送信先Webhookの署名用シークレット（今だけ表示されます）:")
            self.stdout.write(bot.outgoing_secret)

    def _list(self) -> None:
        bots = list(User.objects.filter(kind=User.Kind.BOT).order_by("username"))
        summaries = bot_summaries(bots)
        for bot in bots:
            summary = summaries[bot.pk]
            self.stdout.write(
                f"{bot.pk}\t{bot.username}\t{bot.display_name}\t"
                f"{','.join(map(str, summary.conversations)) or '-'}\t"
                f"{summary.outgoing_url or '-'}\t{'active' if bot.is_active else 'revoked'}"
            )

    def _revoke(self, name: str) -> None:
        bot = User.objects.filter(username=name, kind=User.Kind.BOT).first()
        if bot is None:
            raise CommandError(f"ボット {name} はありません。")
        if do_revoke_bot(bot, acting_user=OPERATOR):
            self.stdout.write(f"ボット {name} を停止しました。")
        else:
            self.stdout.write(f"ボット {name} は既に停止しています。")
