"""要点筆記 by the ward's own LLM: an OpenAI-compatible server inside the network
(llama.cpp's server, vLLM, Ollama's /v1, …) at ``settings.MINUTES_LLM_URL``.

Off by default: without a URL the extractive method is the only one.  The request is
made with the standard library (no client package to install offline), goes straight
to the configured host (environment proxies are ignored: the server is inside the
ward's network, and a proxy would carry the transcript elsewhere), and has a timeout.
Every failure becomes an ``LlmError`` with a Japanese message; nothing is retried.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from yakuba.lib.wareki import ERAS

# What the prompt may carry of the transcript; a longer one is cut (and says so), since
# local models have small context windows and a 3-hour meeting is ~100,000 characters.
MAX_TRANSCRIPT_CHARS = 40_000

SYSTEM_PROMPT = (
    "あなたは地方自治体の会議録を作成する職員です。"
    "与えられた会議の文字起こしだけを根拠に、事実を正確に、簡潔な常体（である調）で書いてください。"
    "文字起こしにないことは書かないでください。"
)

INSTRUCTIONS = """次の会議の文字起こしから、議事録の要点筆記を作成してください。

出力の形式（この形式だけで出力し、前置きや説明は書かないこと）:
■議題名
・要点
・要点
（議題ごとに繰り返す。議題名は下の議題一覧のとおりに書く）
【決定事項】
・決定した事項
【今後の予定】
・内容／担当／期限"""


class LlmError(Exception):
    """The LLM could not make a summary.  ``message`` is Japanese (for people),
    ``english`` for logs."""

    def __init__(self, message: str, english: str) -> None:
        super().__init__(english)
        self.message = message
        self.english = english


@dataclass(frozen=True)
class LlmResult:
    model: str
    prompt: str  # the messages as sent, for the editor to see
    output: str  # the model's answer, unchanged


def is_configured() -> bool:
    return bool(settings.MINUTES_LLM_URL)


def check_url(base: str) -> str:
    """``base`` if it is an http(s) URL with a host; refuses file:, ftp: and the like,
    which urllib would otherwise open."""
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LlmError(
            "庁内LLMのURLは http:// か https:// で始まる必要があります。"
            "YAKUBA_MINUTES_LLM_URL を確認してください。",
            f"MINUTES_LLM_URL must be an http(s) URL, not {base!r}",
        )
    return base.rstrip("/")


def build_messages(
    *, title: str, date_text: str, agenda: list[str], transcript: str
) -> list[dict[str, str]]:
    """The system and user messages (Japanese) for one meeting."""
    if len(transcript) > MAX_TRANSCRIPT_CHARS:
        transcript = transcript[:MAX_TRANSCRIPT_CHARS] + "\n（以下省略）"
    items = "\n".join(f"{n}. {item}" for n, item in enumerate(agenda, 1)) or "（議題の登録なし）"
    user = (
        f"{INSTRUCTIONS}\n\n会議名: {title}\n日時: {date_text}\n議題:\n{items}\n\n"
        f"文字起こし（話者名：発言）:\n{transcript}"
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def prompt_text(messages: list[dict[str, str]]) -> str:
    """The messages as one text, as kept on the minutes."""
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


def complete(messages: list[dict[str, str]]) -> LlmResult:
    """Ask the configured server for a chat completion (temperature 0)."""
    if not is_configured():
        raise LlmError(
            "庁内LLMは設定されていません。抽出要約を使ってください。",
            "MINUTES_LLM_URL is not set",
        )
    base = check_url(settings.MINUTES_LLM_URL)
    model = settings.MINUTES_LLM_MODEL
    body = json.dumps({"model": model, "messages": messages, "temperature": 0}).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if settings.MINUTES_LLM_API_KEY:
        headers["Authorization"] = f"Bearer {settings.MINUTES_LLM_API_KEY}"
    request = urllib.request.Request(  # noqa: S310  (scheme checked: http or https only)
        f"{base}/chat/completions", data=body, headers=headers, method="POST"
    )
    answer = _send(request, settings.MINUTES_LLM_TIMEOUT_SECONDS)
    return LlmResult(model=model, prompt=prompt_text(messages), output=_content(answer))


def _send(request: urllib.request.Request, timeout: float) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise LlmError(
            f"庁内LLMがエラーを返しました（HTTP {exc.code}）。"
            "しばらくしてから再度お試しいただくか、情報政策担当に連絡してください。",
            f"LLM server answered HTTP {exc.code}",
        ) from exc
    except TimeoutError as exc:
        raise _timeout(timeout) from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise _timeout(timeout) from exc
        raise LlmError(
            "庁内LLMに接続できません。サーバーが動いているか、情報政策担当に確認してください。",
            f"cannot reach the LLM server: {exc.reason}",
        ) from exc
    except OSError as exc:  # a connection reset while reading the answer
        raise LlmError(
            "庁内LLMとの通信が途中で切れました。もう一度お試しください。",
            f"connection to the LLM server failed: {exc}",
        ) from exc
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise _bad_answer("the answer is not JSON") from exc


def _timeout(seconds: float) -> LlmError:
    return LlmError(
        f"庁内LLMが{seconds:g}秒以内に応答しませんでした。しばらくしてから再度お試しください。",
        f"the LLM server did not answer within {seconds:g} s",
    )


def _bad_answer(why: str) -> LlmError:
    return LlmError(
        "庁内LLMの応答の形式が正しくありません。サーバーがOpenAI互換APIか確認してください。",
        f"unexpected answer from the LLM server: {why}",
    )


def _content(answer: Any) -> str:
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise _bad_answer("no choices[0].message.content") from exc
    if not isinstance(content, str) or not content.strip():
        raise _bad_answer("empty content")
    return content.strip()


@dataclass(frozen=True)
class ParsedSummary:
    summary: str  # 「■議題」 lines and points
    decisions: list[str]
    plans: list[str]  # 今後の予定 lines as written (内容／担当／期限)


def parse_output(output: str) -> ParsedSummary:
    """Split the answer into the summary and the 【決定事項】 and 【今後の予定】 lists.
    A model that ignores the format still gives a usable summary: the whole answer."""
    summary: list[str] = []
    sections: dict[str, list[str]] = {"決定事項": [], "今後の予定": []}
    current: list[str] = summary
    for raw in output.splitlines():
        line = raw.strip()
        heading = line.strip("【】[]#＃ 　:：")
        if line.startswith(("【", "[", "#", "＃")) and heading in sections:
            current = sections[heading]
            continue
        if current is summary:
            summary.append(raw.rstrip())
        elif line:
            current.append(line.lstrip("・-*＊ 　").strip())
    return ParsedSummary(
        summary="\n".join(summary).strip(),
        decisions=[d for d in sections["決定事項"] if d and d not in ("なし", "特になし")],
        plans=[p for p in sections["今後の予定"] if p and p not in ("なし", "特になし")],
    )


@dataclass(frozen=True)
class PlanRow:
    """One 今後の予定 line of the answer, split: 内容, 担当, 期限 (None when the model
    wrote no date it could be read from; the text then stays in ``task``)."""

    task: str
    assignee: str
    due: dt.date | None


_PLAN_SEPARATOR = re.compile(r"\s*[／|｜]\s*")
_ERA_DATE = re.compile(r"(令和|平成)\s*(元|\d{1,2})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
_WESTERN_DATE = re.compile(r"(\d{4})\s*[年/\-.]\s*(\d{1,2})\s*[月/\-.]\s*(\d{1,2})\s*日?")


def parse_due(text: str) -> dt.date | None:
    """A date written as 令和7年7月31日, 令和元年…, 2025年7月31日 or 2025-07-31."""
    text = text.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    if found := _ERA_DATE.search(text):
        era = next(e for e in ERAS if e.name == found[1])
        year = era.first_year + (0 if found[2] == "元" else int(found[2]) - 1)
        parts = (year, int(found[3]), int(found[4]))
    elif found := _WESTERN_DATE.search(text):
        parts = (int(found[1]), int(found[2]), int(found[3]))
    else:
        return None
    try:
        return dt.date(*parts)
    except ValueError:  # 2月30日 and the like: keep the text rather than guess
        return None


def parse_plan(line: str) -> PlanRow:
    """``内容／担当／期限`` as the prompt asks; fewer fields are tolerated."""
    fields = [part.strip() for part in _PLAN_SEPARATOR.split(line.strip())]
    if len(fields) > 3:  # a ／ inside the task itself: the last two are 担当 and 期限
        fields = ["／".join(fields[:-2]), *fields[-2:]]
    task, assignee, due_text = [*fields, "", ""][:3]
    due = parse_due(due_text) if due_text else None
    if due_text and due is None and due_text not in ("未定", "—", "-"):
        task = f"{task}（期限：{due_text}）"
    return PlanRow(task=task, assignee=assignee, due=due)
