import datetime as dt
import json
import re

import pytest
from django.db import DatabaseError
from django.test import Client, override_settings

from yakuba.directory.models import User
from yakuba.lib import clock
from yakuba.tasks.models import Job

# One sample line of the text exposition format: name{labels} value
SAMPLE = re.compile(r'^[a-z_][a-z0-9_]*(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+]+$')


def test_it_reports_healthy(client: Client, db: None) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    report = json.loads(response.content)
    assert report["status"] == "ok"
    assert report["database"] == "ok"
    assert report["bus"] in {"ok", "unknown"}


def test_it_answers_503_naming_the_part_that_failed(
    client: Client, db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yakuba.realtime.bus

    monkeypatch.setattr(yakuba.realtime.bus, "healthy", lambda *args: False, raising=False)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert json.loads(response.content) == {"status": "error", "database": "ok", "bus": "error"}


def test_it_answers_503_when_the_database_is_down(
    client: Client, db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    class GoneDatabase:
        def cursor(self) -> None:
            raise DatabaseError("database is gone")

    # Only the health check's handle: the test's own transaction must still work.
    monkeypatch.setattr("yakuba.web.health.connection", GoneDatabase())
    response = client.get("/healthz")
    assert response.status_code == 503
    assert json.loads(response.content)["database"] == "error"


def test_it_exposes_metrics_to_the_machine_itself(client: Client, db: None) -> None:
    Job.objects.create(name="mail.send")
    Job.objects.create(name="mail.send", status=Job.Status.FAILED)
    client.get("/no-such-page/")
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.content.decode()
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or SAMPLE.match(line), line
    assert "# TYPE yakuba_process_start_time_seconds gauge" in text
    assert 'yakuba_jobs{status="queued"} 1' in text
    assert 'yakuba_jobs{status="failed"} 1' in text
    count_4xx = re.search(r'yakuba_http_responses_total\{class="4xx"\} (\d+)', text)
    assert count_4xx is not None
    assert int(count_4xx.group(1)) >= 1


def test_it_refuses_metrics_to_other_hosts_and_to_proxied_requests(
    client: Client, db: None
) -> None:
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 403
    # nginx on the same machine connects from 127.0.0.1 on behalf of a remote visitor.
    proxied = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.7")
    assert proxied.status_code == 403


@override_settings(METRICS_TOKEN="scrape-secret-0123456789")
def test_it_accepts_the_metrics_token_from_another_host(client: Client, db: None) -> None:
    good = {"Authorization": "Bearer scrape-secret-0123456789"}
    bad = {"Authorization": "Bearer wrong"}
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7", headers=good).status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7", headers=bad).status_code == 403


def test_it_includes_the_real_time_counters(
    client: Client, db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yakuba.realtime.metrics

    monkeypatch.setattr(
        yakuba.realtime.metrics,
        "snapshot",
        lambda: {"yakuba_realtime_events_published_total": 12, "connections": 3},
    )
    text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "# TYPE yakuba_realtime_events_published_total counter" in text
    assert "yakuba_realtime_events_published_total 12" in text
    assert "yakuba_realtime_connections 3" in text


def test_it_includes_presences_cpu_time(client: Client, db: None) -> None:
    text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()

    assert "# TYPE yakuba_chat_presence_cpu_seconds_total counter" in text
    assert "# TYPE yakuba_chat_presence_connected_users gauge" in text
    assert "yakuba_chat_presence_frames_total " in text


def test_it_reports_the_audit_seal_lag_from_the_tables(
    client: Client, alice: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import types

    from yakuba.audit.record import record_denial
    from yakuba.audit.sealer import seal_pending

    # As long as the audit app offers no snapshot() of its own.
    monkeypatch.setitem(sys.modules, "yakuba.audit.metrics", types.ModuleType("empty"))
    with clock.frozen_at(dt.datetime(2025, 4, 1, 9, 0, tzinfo=dt.UTC)):
        record_denial(actor=alice, what="test")
    with clock.frozen_at(dt.datetime(2025, 4, 1, 9, 0, 5, tzinfo=dt.UTC)):
        text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "yakuba_audit_unsealed_entries 1" in text
    assert "yakuba_audit_seal_lag_seconds 5.0" in text
    seal_pending()
    text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "yakuba_audit_unsealed_entries 0" in text
    assert "yakuba_audit_seal_lag_seconds 0.0" in text
