"""The ``yakuba`` command: Django's management commands under friendlier names.

yakuba serve | migrate | demo | worker | audit … | createadmin | import-staff …
"""

from __future__ import annotations

import os
import sys

# Our commands use dashes on the command line and underscores as module names.
# Dashed names for our commands ("import-holidays" runs import_holidays).
ALIASES = {
    "import-staff": "import_staff",
    "export-staff": "export_staff",
    "import-departments": "import_departments",
    "export-departments": "export_departments",
    "apply-transfers": "apply_transfers",
    "invite-guest": "invite_guest",
}


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "yakuba.settings")
    from yakuba.config import ConfigError

    if args:
        args[0] = ALIASES.get(args[0], args[0].replace("-", "_"))
    try:
        from django.core.management import execute_from_command_line

        execute_from_command_line(["yakuba", *args])
    except ConfigError as exc:
        print(f"yakuba: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
