"""Matrix Synapse as the peer of ``make bench-chat``: its venv, config, start, users and
rooms, and teardown.  Everything on 127.0.0.1; nothing is downloaded here (the pinned
``matrix-synapse`` is installed by ``make bench-chat`` into ``bench/.venv-synapse``).

The config follows docs (DESIGN.md, "Matrix Synapse as the chat benchmark peer"): server
name ``localhost``, the client listener on 127.0.0.1 only, no federation listener,
``trusted_key_servers: []``, registration only with the shared secret, the rate limits
(``rc_message``, ``rc_login``, ``rc_registration``, ``rc_joins`` and the others) raised
so that it never answers 429, presence on (as in Yakuba), and logging at WARNING (its
default INFO log of every request would cost it CPU that Yakuba's server does not
spend on logs either).  ``bcrypt_rounds: 4`` only makes registering the users quick.
The config is written as JSON, which YAML reads as it is.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import hmac
import http.client
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "bench" / ".venv-synapse"
PYTHON = VENV / "bin" / "python"
PG_NAME = "bench_synapse"
# Effectively unlimited: {per_second, burst_count} for every limiter the ladder meets.
UNLIMITED = {"per_second": 100000, "burst_count": 100000}


def installed() -> bool:
    return (
        PYTHON.exists()
        and subprocess.run(
            [str(PYTHON), "-c", "import synapse"], capture_output=True, check=False
        ).returncode
        == 0
    )


def version() -> str:
    done = subprocess.run(
        [str(PYTHON), "-c", "import synapse; print(synapse.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip().split(" ")[0] or "?"


def config(directory: Path, port: int, db: str, server_url: str) -> dict[str, Any]:
    if db == "sqlite":
        database: dict[str, Any] = {
            "name": "sqlite3",
            "args": {"database": str(directory / "homeserver.db")},
        }
    else:
        from urllib.parse import urlparse

        url = urlparse(server_url)
        database = {
            "name": "psycopg2",
            "args": {
                "user": url.username or "postgres",
                "password": url.password or "",
                "host": url.hostname or "127.0.0.1",
                "port": url.port or 5432,
                "database": PG_NAME,
                "cp_min": 5,
                "cp_max": 10,
            },
        }
    return {
        "server_name": "localhost",
        "pid_file": str(directory / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": database,
        "log_config": str(directory / "log.yaml"),
        "media_store_path": str(directory / "media"),
        "signing_key_path": str(directory / "localhost.signing.key"),
        "registration_shared_secret": secrets.token_urlsafe(32),
        "macaroon_secret_key": secrets.token_urlsafe(32),
        "form_secret": secrets.token_urlsafe(32),
        "report_stats": False,
        "enable_metrics": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        "url_preview_enabled": False,
        "enable_registration": False,
        "bcrypt_rounds": 4,
        "presence": {"enabled": True},
        "rc_message": UNLIMITED,
        "rc_registration": UNLIMITED,
        "rc_login": {
            "address": UNLIMITED,
            "account": UNLIMITED,
            "failed_attempts": UNLIMITED,
        },
        "rc_joins": {"local": UNLIMITED, "remote": UNLIMITED},
        "rc_joins_per_room": UNLIMITED,
        "rc_invites": {"per_room": UNLIMITED, "per_user": UNLIMITED, "per_issuer": UNLIMITED},
        "rc_room_creation": UNLIMITED,
        "rc_presence": {"per_user": UNLIMITED},
        "rc_admin_redaction": UNLIMITED,
        "rc_3pid_validation": UNLIMITED,
    }


LOG_CONFIG = {
    "version": 1,
    "formatters": {"precise": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
    "handlers": {
        "file": {
            "class": "logging.FileHandler",
            "formatter": "precise",
            "filename": "",
            "encoding": "utf8",
        }
    },
    "root": {"level": "WARNING", "handlers": ["file"]},
    "disable_existing_loggers": False,
}


@dataclass
class Synapse:
    directory: Path
    port: int
    db: str
    server_url: str
    process: subprocess.Popen[bytes] | None = None
    secret: str = ""
    users: list[dict[str, str]] = field(default_factory=list)

    # --- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        if self.db == "postgresql":
            create_database(self.server_url)
        cfg = config(self.directory, self.port, self.db, self.server_url)
        self.secret = cfg["registration_shared_secret"]
        (self.directory / "media").mkdir(parents=True, exist_ok=True)
        log_config = json.loads(json.dumps(LOG_CONFIG))
        log_config["handlers"]["file"]["filename"] = str(self.directory / "homeserver.log")
        (self.directory / "log.yaml").write_text(json.dumps(log_config))
        path = self.directory / "homeserver.yaml"
        path.write_text(json.dumps(cfg, indent=1))
        command = [str(PYTHON), "-m", "synapse.app.homeserver", "-c", str(path)]
        subprocess.run([*command, "--generate-keys"], check=True, capture_output=True)
        output = (self.directory / "stdout.log").open("wb")
        self.process = subprocess.Popen(command, stdout=output, stderr=output, cwd=self.directory)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.stderr.write((self.directory / "stdout.log").read_text()[-3000:])
                raise SystemExit("Synapse exited at start")
            try:
                status, _ = self.call("GET", "/_matrix/client/versions")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("Synapse did not answer within two minutes")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self.db == "postgresql":
            drop_database(self.server_url)

    # --- HTTP -------------------------------------------------------------------------

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            connection.request(
                method, path, body=None if body is None else json.dumps(body), headers=headers
            )
            answer = connection.getresponse()
            data = answer.read()
        finally:
            connection.close()
        try:
            return answer.status, json.loads(data) if data else None
        except ValueError:
            return answer.status, data

    def register(self, username: str, *, admin: bool = False) -> dict[str, str]:
        """What ``register_new_matrix_user`` does: the shared-secret admin API (a nonce,
        then an HMAC-SHA1 of nonce, user, password and admin flag)."""
        status, answer = self.call("GET", "/_synapse/admin/v1/register")
        if status != 200:
            raise SystemExit(f"Synapse register nonce: {status} {answer}")
        nonce = answer["nonce"]
        password = secrets.token_urlsafe(16)
        mac = hmac.new(self.secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce, username, password):
            mac.update(part.encode() + b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        status, answer = self.call(
            "POST",
            "/_synapse/admin/v1/register",
            {
                "nonce": nonce,
                "username": username,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            },
        )
        if status != 200:
            raise SystemExit(f"Synapse register {username}: {status} {answer}")
        return {"user_id": answer["user_id"], "token": answer["access_token"]}

    def populate(self, users: int, room_size: int) -> list[dict[str, Any]]:
        """``users`` users in rooms of ``room_size`` (the first member creates the room,
        the others join).  Returns ``[{"id": room_id, "members": [user index]}]``."""
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            self.users = list(pool.map(lambda n: self.register(f"bench{n:05d}"), range(users)))
            rooms = []
            for first in range(0, users, room_size):
                members = list(range(first, min(users, first + room_size)))
                status, answer = self.call(
                    "POST",
                    "/_matrix/client/v3/createRoom",
                    {"preset": "public_chat", "name": f"bench room {first // room_size}"},
                    token=self.users[members[0]]["token"],
                )
                if status != 200:
                    raise SystemExit(f"Synapse createRoom: {status} {answer}")
                room_id = answer["room_id"]

                def join(member: int, room_id: str = room_id) -> None:
                    status, answer = self.call(
                        "POST",
                        f"/_matrix/client/v3/join/{quote(room_id, safe='')}",
                        {},
                        token=self.users[member]["token"],
                    )
                    if status != 200:
                        raise SystemExit(f"Synapse join: {status} {answer}")

                list(pool.map(join, members[1:]))
                rooms.append({"id": room_id, "members": members})
        return rooms


def create_database(server_url: str) -> None:
    """``bench_synapse`` as Synapse requires it: UTF8 with C collation, from template0."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as server:
        server.execute(f"DROP DATABASE IF EXISTS {PG_NAME} WITH (FORCE)")
        server.execute(
            f"CREATE DATABASE {PG_NAME} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' "
            "TEMPLATE template0"
        )


def drop_database(server_url: str) -> None:
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as server:
        server.execute(f"DROP DATABASE IF EXISTS {PG_NAME} WITH (FORCE)")


def pids(process: subprocess.Popen[bytes] | None) -> list[int]:
    return [] if process is None else [process.pid]


if __name__ == "__main__":  # a quick manual check: start, populate, stop
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="bench-synapse-"))
    server = Synapse(
        scratch,
        int(os.environ.get("PORT", "18008")),
        sys.argv[1] if len(sys.argv) > 1 else "sqlite",
        os.environ.get("BENCH_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    server.start()
    try:
        started = time.monotonic()
        print(server.populate(10, 5), time.monotonic() - started)
    finally:
        server.stop()
