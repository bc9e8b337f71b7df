"""``yakuba asr check [--json]``: which speech-recognition engines can run here.

One line per engine: its name, usable or not, and what it will use (package version,
model, device) or exactly what is missing and which variable to set.  The configured
engine (YAKUBA_ASR_ENGINE) is marked with ``*``.  No model is loaded.

Exit status 0 when the configured engine is usable, 1 when it is not.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from yakuba.minutes import asr


class Command(BaseCommand):
    help = "Report which speech-recognition engines and models are usable, and why not."
    # This command is how an operator finds out what the W301 check means: it must run
    # (and say more) exactly when that check fires.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        check = sub.add_parser(
            "check", help="report every engine (exit 1: configured one unusable)"
        )
        check.add_argument("--json", action="store_true", help="one JSON object, for scripts")

    def handle(self, *args: Any, **options: Any) -> None:
        configured = str(settings.MINUTES_ASR_ENGINE)
        statuses = asr.all_statuses()
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "configured": configured,
                        "engines": [
                            {
                                "name": s.name,
                                "usable": s.usable,
                                "detail": s.detail,
                                "language": s.language,
                                "supports_hotwords": s.supports_hotwords,
                                "configured": s.name == configured,
                            }
                            for s in statuses
                        ],
                    },
                    ensure_ascii=False,
                )
            )
        else:
            width = max(len(name) for name in asr.ENGINE_NAMES)
            for s in statuses:
                mark = "*" if s.name == configured else " "
                state = "usable    " if s.usable else "NOT usable"
                self.stdout.write(f"{mark} {s.name:<{width}}  {state}  {s.detail}")
        if not next(s for s in statuses if s.name == configured).usable:
            raise CommandError(
                f"the configured engine (YAKUBA_ASR_ENGINE={configured}) is not usable",
                returncode=1,
            )
