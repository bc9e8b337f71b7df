"""``yakuba apply-transfers``: schedule a personnel-transfer batch (人事異動) from CSV, or
apply the batches that are due now (the worker does the latter every minute)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count

from yakuba.audit.record import Actor
from yakuba.directory.actions.staff import (
    DirectoryError,
    check_schedule_transfers,
    do_apply_due_transfers,
)
from yakuba.directory.csv_io import CsvRejected
from yakuba.directory.management.commands._csv import ENCODING_HELP, read_input, rejected
from yakuba.directory.models import TransferBatch
from yakuba.lib import clock
from yakuba.lib.wareki import wareki


class Command(BaseCommand):
    help = (
        "Apply the personnel-transfer batches whose date has come; with --schedule FILE "
        "--effective-on DATE, register a new batch from CSV instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--schedule", metavar="FILE", help="transfers CSV to register")
        parser.add_argument("--effective-on", help="発令日 of the new batch, e.g. 2026-04-01")
        parser.add_argument("--name", help="name of the new batch (default: 人事異動 DATE)")
        parser.add_argument("--encoding", default="auto", help=ENCODING_HELP)
        parser.add_argument("--list", action="store_true", help="list batches and their state")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            self._list()
        elif options["schedule"]:
            self._schedule(options)
        else:
            applied = do_apply_due_transfers(acting_user=Actor.system("CLI apply-transfers"))
            if not applied:
                self.stdout.write("発令日を迎えた未発令の人事異動はありません。")
            for batch in TransferBatch.objects.filter(pk__in=applied).order_by("pk"):
                self.stdout.write(f"発令しました: {batch.name}（{batch.transfers.count()}名）")

    def _schedule(self, options: dict[str, Any]) -> None:
        if not options["effective_on"]:
            raise CommandError("--effective-on で発令日（例: 2026-04-01）を指定してください。")
        try:
            effective_on = dt.date.fromisoformat(options["effective_on"])
        except ValueError:
            raise CommandError("発令日は 2026-04-01 の形式で指定してください。") from None
        name = options["name"] or f"人事異動 {wareki(effective_on)}"
        try:
            batch = check_schedule_transfers(
                read_input(options["schedule"]),
                name=name,
                effective_on=effective_on,
                encoding=options["encoding"],
                acting_user=Actor.system("CLI apply-transfers"),
            )
        except CsvRejected as exc:
            raise rejected(exc) from None
        except (DirectoryError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        count = batch.transfers.count()
        when = "次回の処理で" if effective_on <= clock.today() else f"{wareki(effective_on)}に"
        self.stdout.write(
            f"登録しました: {batch.name}（{count}名、{Path(options['schedule']).name}）。"
            f"{when}発令されます。"
        )

    def _list(self) -> None:
        batches = TransferBatch.objects.annotate(size=Count("transfers"))
        for batch in batches.order_by("-effective_on", "-pk"):
            label = TransferBatch.Status(batch.status).label
            self.stdout.write(
                f"{batch.pk}\t{batch.effective_on}\t{label}\t{batch.name}\t{batch.size}名"
            )
