"""``yakuba serve``: the ASGI server (uvicorn), and in the embedded tier the worker too."""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Serve Yakuba over HTTP and WebSocket with uvicorn."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--worker",
            choices=["auto", "yes", "no"],
            default="auto",
            help="run the background worker in this process (auto: yes without REDIS_URL)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        import uvicorn

        embedded_worker = options["worker"] == "yes" or (
            options["worker"] == "auto" and not settings.REDIS_URL
        )
        stop = threading.Event()
        if embedded_worker:
            from yakuba.tasks.worker import run_forever

            threading.Thread(target=run_forever, args=(stop,), name="worker", daemon=True).start()
        self.stdout.write(f"Yakuba: http://{options['host']}:{options['port']}/")
        try:
            uvicorn.run(
                "yakuba.asgi:application",
                host=options["host"],
                port=options["port"],
                log_level="info",
                lifespan="off",
                ws_ping_interval=None,
            )
        finally:
            stop.set()
