"""Typed readers for the environment: the only place that reads ``os.environ``.

Every setting an operator can change is read here through one of these helpers,
so that a bad value stops start-up with a message naming the variable and what
it accepts, and every secret can come from a file (``NAME_FILE``), which is how
systemd credentials and container secrets are usually handed over.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Mapping
from pathlib import Path


class ConfigError(Exception):
    """A configuration variable holds a value Yakuba cannot use."""

    def __init__(self, name: str, value: str, accepts: str) -> None:
        self.name = name
        super().__init__(f"{name}={value!r} is not valid: {name} accepts {accepts}.")


class Env:
    """Reads variables from a mapping (``os.environ`` by default)."""

    def __init__(self, environ: Mapping[builtins.str, builtins.str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def raw(self, name: builtins.str) -> builtins.str | None:
        """The value of ``name``, or of the file named by ``NAME_FILE``."""
        value = self.environ.get(name)
        file_name = self.environ.get(f"{name}_FILE")
        if value is not None and file_name:
            raise ConfigError(f"{name}_FILE", file_name, f"a file name only when {name} is unset")
        if file_name:
            try:
                return Path(file_name).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"{name}_FILE", file_name, f"the path of a readable file ({exc.strerror})"
                ) from exc
        return value

    def str(self, name: builtins.str, default: builtins.str) -> builtins.str:
        value = self.raw(name)
        return default if value is None or value == "" else value

    def int(
        self,
        name: builtins.str,
        default: builtins.int,
        *,
        minimum: builtins.int = 0,
        maximum: builtins.int | None = None,
    ) -> builtins.int:
        value = self.raw(name)
        if value is None or value == "":
            return default
        bounds = f"a whole number ≥ {minimum}" + (
            f" and ≤ {maximum}" if maximum is not None else ""
        )
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(name, value, bounds) from None
        if number < minimum or (maximum is not None and number > maximum):
            raise ConfigError(name, value, bounds)
        return number

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        value = self.raw(name)
        if value is None or value == "":
            return default
        lowered = value.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(name, value, "true/false, yes/no, on/off or 1/0")

    def choice(
        self, name: builtins.str, default: builtins.str, choices: tuple[builtins.str, ...]
    ) -> builtins.str:
        value = self.str(name, default)
        if value not in choices:
            raise ConfigError(name, value, "one of " + ", ".join(choices))
        return value

    def list(
        self, name: builtins.str, default: tuple[builtins.str, ...] = ()
    ) -> builtins.list[builtins.str]:
        value = self.raw(name)
        if value is None or value.strip() == "":
            return list(default)
        return [item.strip() for item in value.split(",") if item.strip()]
