"""Configuration: bad values stop start-up with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from yakuba.config import ConfigError, Env


def test_it_reads_typed_values_with_defaults() -> None:
    env = Env({"A": "42", "B": "yes", "C": "x, y ,,z", "D": ""})
    assert env.int("A", 1) == 42
    assert env.bool("B", False) is True
    assert env.list("C") == ["x", "y", "z"]
    assert env.str("D", "fallback") == "fallback"
    assert env.int("MISSING", 7) == 7


@pytest.mark.parametrize(
    ("environ", "call", "expected"),
    [
        (
            {"N": "abc"},
            lambda e: e.int("N", 1, minimum=1),
            "N='abc' is not valid: N accepts a whole number ≥ 1",
        ),
        (
            {"N": "0"},
            lambda e: e.int("N", 1, minimum=1, maximum=60),
            "accepts a whole number ≥ 1 and ≤ 60",
        ),
        ({"B": "maybe"}, lambda e: e.bool("B", False), "B accepts true/false"),
        (
            {"C": "purple"},
            lambda e: e.choice("C", "red", ("red", "blue")),
            "C accepts one of red, blue",
        ),
    ],
)
def test_it_names_the_variable_and_what_it_accepts(environ, call, expected) -> None:
    with pytest.raises(ConfigError) as caught:
        call(Env(environ))
    assert expected in str(caught.value)


def test_it_reads_secrets_from_name_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret-value\n", encoding="utf-8")
    assert Env({"YAKUBA_SMTP_PASSWORD_FILE": str(secret)}).str("YAKUBA_SMTP_PASSWORD", "") == (
        "s3cret-value"
    )
    with pytest.raises(ConfigError, match="YAKUBA_X_FILE"):
        Env({"YAKUBA_X_FILE": str(tmp_path / "missing")}).str("YAKUBA_X", "")
    with pytest.raises(ConfigError, match="only when YAKUBA_X is unset"):
        Env({"YAKUBA_X": "a", "YAKUBA_X_FILE": str(secret)}).str("YAKUBA_X", "")


def _yakuba(args: list[str], **environ: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **environ}
    return subprocess.run(
        [sys.executable, "-m", "yakuba.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_it_stops_start_up_on_a_bad_value(tmp_path: Path) -> None:
    result = _yakuba(["check"], YAKUBA_SESSION_IDLE_MINUTES="soon", YAKUBA_VAR_DIR=str(tmp_path))
    assert result.returncode == 2
    assert "YAKUBA_SESSION_IDLE_MINUTES='soon' is not valid" in result.stderr
    assert "Traceback" not in result.stderr


def test_it_refuses_an_unknown_database_url(tmp_path: Path) -> None:
    result = _yakuba(["check"], DATABASE_URL="mysql://db/yakuba", YAKUBA_VAR_DIR=str(tmp_path))
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr


def test_it_reports_a_bad_role_list_as_a_system_check_with_a_stable_id(tmp_path: Path) -> None:
    result = _yakuba(
        ["check"], YAKUBA_TOTP_REQUIRED_ROLES="it_admin,wizard", YAKUBA_VAR_DIR=str(tmp_path)
    )
    assert result.returncode != 0
    assert "yakuba.E001" in result.stderr
    assert "wizard" in result.stderr


def _database_options(**environ: str) -> str:
    script = (
        "import json; from django.conf import settings; "
        "d = settings.DATABASES['default']; "
        "print(json.dumps({'pool': d.get('OPTIONS', {}).get('pool'), 'age': d['CONN_MAX_AGE']}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {script}"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "yakuba.settings", **environ},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.strip()


def test_it_pools_postgresql_connections_unless_told_not_to(tmp_path: Path) -> None:
    url = "postgresql://yakuba@127.0.0.1:5432/yakuba"
    pooled = _database_options(DATABASE_URL=url, YAKUBA_VAR_DIR=str(tmp_path))
    assert '"max_size": 10' in pooled
    assert '"age": 0' in pooled
    unpooled = _database_options(
        DATABASE_URL=url, YAKUBA_PG_POOL_SIZE="0", YAKUBA_VAR_DIR=str(tmp_path)
    )
    assert '"pool": null' in unpooled
