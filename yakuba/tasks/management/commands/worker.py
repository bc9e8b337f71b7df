"""``yakuba worker``: run queued and periodic background jobs until stopped."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from yakuba.tasks.worker import run_forever, run_once


class Command(BaseCommand):
    help = "Run background jobs (audit sealing, personnel transfers, mail, retention)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="run what is due, then exit")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["once"]:
            count = run_once()
            self.stdout.write(f"ran {count} job(s)")
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        run_forever(stop)
