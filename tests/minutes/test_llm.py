"""要点筆記 by the ward's LLM, against a tiny fake OpenAI-compatible server on loopback:
the request it receives, what the minutes keep, and every failure leaving the minutes
as they were with a Japanese message."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client

from yakuba.audit.models import AuditEntry
from yakuba.directory.models import User
from yakuba.minutes.actions.document import ActionItemInput, do_save_minutes, minutes_for
from yakuba.minutes.llm import parse_plan
from yakuba.minutes.models import Meeting, Minutes

from .test_document import add_transcript, url

pytestmark = pytest.mark.django_db

ANSWER = """■文書保存年限の見直し
・保存年限を三十年から十年に短縮する。
■電子決裁の導入
・来年度から試行する。
【決定事項】
・文書保存年限は原則十年とする。
【今後の予定】
・試行部署の選定／総務課／令和7年7月31日"""


@dataclass
class FakeLLM:
    """What the fake server answers, and what it was sent."""

    status: int = 200
    body: bytes = b""
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def answer(self, content: str) -> None:
        self.body = json.dumps(
            {"choices": [{"message": {"role": "assistant", "content": content}}]}
        ).encode()


@pytest.fixture
def fake_llm(settings: Any) -> Iterator[FakeLLM]:
    fake = FakeLLM()
    fake.answer(ANSWER)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            fake.requests.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers),
                    "json": json.loads(self.rfile.read(length)),
                }
            )
            time.sleep(fake.delay)
            try:
                self.send_response(fake.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(fake.body)))
                self.end_headers()
                self.wfile.write(fake.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first (the timeout test): nothing to tell it

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_port}/v1"
    settings.MINUTES_LLM_URL = fake.url
    settings.MINUTES_LLM_MODEL = "ward-llm-7b"
    settings.MINUTES_LLM_API_KEY = "secret-key"
    settings.MINUTES_LLM_TIMEOUT_SECONDS = 5
    yield fake
    server.shutdown()
    server.server_close()


def summarise(client: Client, meeting: Meeting) -> Any:
    return client.post(url(meeting, "summarise"), {"method": "llm"})


def test_it_asks_the_ward_llm_and_keeps_prompt_and_output(
    client: Client, meeting: Meeting, bob: User, fake_llm: FakeLLM
) -> None:
    add_transcript(meeting)
    client.force_login(bob)
    assert 'value="llm" disabled' not in client.get(url(meeting)).content.decode()

    response = summarise(client, meeting)

    assert response.status_code == 302
    [request] = fake_llm.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer secret-key"
    sent = request["json"]
    assert sent["model"] == "ward-llm-7b"
    assert sent["temperature"] == 0
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    prompt = sent["messages"][1]["content"]
    assert "要点筆記" in prompt
    assert "決定事項" in prompt
    assert "今後の予定" in prompt
    assert "1. 文書保存年限の見直し\n2. 電子決裁の導入" in prompt
    assert "坂東：保存年限を十年に短縮すると書庫の容量に余裕ができます。" in prompt
    assert "令和7年6月11日（水）午前10時00分～午前11時00分" in prompt

    minutes = Minutes.objects.get(meeting=meeting)
    assert minutes.summary_method == Minutes.SummaryMethod.LLM
    assert minutes.style == Minutes.Style.SUMMARY
    assert minutes.llm_model == "ward-llm-7b"
    assert minutes.llm_output == ANSWER
    assert "坂東：保存年限を十年に短縮すると" in minutes.llm_prompt
    assert minutes.summary == (
        "■文書保存年限の見直し\n・保存年限を三十年から十年に短縮する。\n"
        "■電子決裁の導入\n・来年度から試行する。"
    )
    assert minutes.decision_list() == ["文書保存年限は原則十年とする。"]
    # 今後の予定 become the plans (there were none): 内容, 担当 and the 和暦 期限 read.
    assert [(i.task, i.assignee, i.due_date) for i in minutes.action_items.all()] == [
        ("試行部署の選定", "総務課", dt.date(2025, 7, 31))
    ]
    [entry] = AuditEntry.objects.filter(action="minutes.summarised")
    assert entry.details["method"] == "llm"
    assert entry.details["model"] == "ward-llm-7b"
    assert entry.details["plans_proposed"] == 1
    html = client.get(url(meeting)).content.decode()
    assert "庁内LLMへの指示と応答" in html
    assert "試行部署の選定／総務課／令和7年7月31日" in html  # the raw output, shown


def test_no_key_no_authorization_header(
    client: Client, meeting: Meeting, bob: User, fake_llm: FakeLLM, settings: Any
) -> None:
    settings.MINUTES_LLM_API_KEY = ""
    add_transcript(meeting)
    client.force_login(bob)

    assert summarise(client, meeting).status_code == 302
    assert "Authorization" not in fake_llm.requests[0]["headers"]


def test_the_llm_never_replaces_plans_people_wrote(
    client: Client, meeting: Meeting, bob: User, fake_llm: FakeLLM
) -> None:
    add_transcript(meeting)
    minutes = minutes_for(meeting)
    do_save_minutes(
        minutes,
        user=bob,
        revision=minutes.revision,
        style="verbatim",
        summary_text="",
        decisions="",
        action_items=[ActionItemInput(task="書庫の棚卸し", assignee="文書係")],
    )
    client.force_login(bob)

    assert summarise(client, meeting).status_code == 302

    minutes.refresh_from_db()
    assert [i.task for i in minutes.action_items.all()] == ["書庫の棚卸し"]
    assert minutes.decision_list() == ["文書保存年限は原則十年とする。"]  # was empty: filled
    entry = AuditEntry.objects.get(action="minutes.summarised")
    assert entry.details["plans_proposed"] == 0


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "試行部署の選定／総務課／令和7年7月31日",
            ("試行部署の選定", "総務課", dt.date(2025, 7, 31)),
        ),
        ("規程の改正 | 文書係 | 2025-09-01", ("規程の改正", "文書係", dt.date(2025, 9, 1))),
        ("説明会／総務課／令和元年５月７日", ("説明会", "総務課", dt.date(2019, 5, 7))),
        ("A／B案の比較／企画課／2026年1月5日", ("A／B案の比較", "企画課", dt.date(2026, 1, 5))),
        ("周知／広報課／来月中", ("周知（期限：来月中）", "広報課", None)),
        ("周知／広報課／令和7年2月30日", ("周知（期限：令和7年2月30日）", "広報課", None)),
        ("周知／広報課／未定", ("周知", "広報課", None)),
        ("周知", ("周知", "", None)),
    ],
)
def test_it_reads_plan_lines_as_the_prompt_asks(
    line: str, expected: tuple[str, str, dt.date | None]
) -> None:
    plan = parse_plan(line)
    assert (plan.task, plan.assignee, plan.due) == expected


def refused(client: Client, meeting: Meeting, message: str) -> None:
    response = summarise(client, meeting)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Minutes.objects.filter(meeting=meeting).exclude(summary="").exists()
    assert not AuditEntry.objects.filter(action="minutes.summarised").exists()


def test_an_http_error_changes_nothing(
    client: Client, meeting: Meeting, bob: User, fake_llm: FakeLLM
) -> None:
    add_transcript(meeting)
    client.force_login(bob)
    fake_llm.status, fake_llm.body = 500, b'{"error": "model not loaded"}'

    refused(client, meeting, "庁内LLMがエラーを返しました（HTTP 500）")
    fake_llm.status = 404
    refused(client, meeting, "（HTTP 404）")


def test_a_bad_answer_changes_nothing(
    client: Client, meeting: Meeting, bob: User, fake_llm: FakeLLM
) -> None:
    add_transcript(meeting)
    client.force_login(bob)

    fake_llm.body = b"<html>not json</html>"
    refused(client, meeting, "応答の形式が正しくありません")
    fake_llm.body = b'{"choices": []}'
    refused(client, meeting, "応答の形式が正しくありません")
    fake_llm.answer("   ")
    refused(client, meeting, "応答の形式が正しくありません")


def test_a_slow_server_times_out(
    client: Client, meeting: Meeting, bob: User, fake_llm: FakeLLM, settings: Any
) -> None:
    add_transcript(meeting)
    client.force_login(bob)
    settings.MINUTES_LLM_TIMEOUT_SECONDS = 1
    fake_llm.delay = 2.0

    refused(client, meeting, "庁内LLMが1秒以内に応答しませんでした")


def test_a_server_that_is_down_is_reported(
    client: Client, meeting: Meeting, bob: User, settings: Any
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.MINUTES_LLM_URL = f"http://127.0.0.1:{port}/v1"
    add_transcript(meeting)
    client.force_login(bob)

    refused(client, meeting, "庁内LLMに接続できません")


@pytest.mark.parametrize("bad_url", ["file:///etc/passwd", "ftp://127.0.0.1/v1", "http:///v1"])
def test_it_refuses_urls_that_are_not_http(
    client: Client, meeting: Meeting, bob: User, settings: Any, bad_url: str
) -> None:
    settings.MINUTES_LLM_URL = bad_url
    add_transcript(meeting)
    client.force_login(bob)

    refused(client, meeting, "http:// か https:// で始まる必要があります")
