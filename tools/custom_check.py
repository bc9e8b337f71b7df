"""Architecture rules as lint rules (run by ``make lint``).

Each rule names the habit it protects and shows a good and a bad line.  A line can opt out
with a trailing ``# custom-check: allow RULE_ID (reason)`` comment.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rule:
    id: str
    pattern: re.Pattern[str]
    message: str
    applies_to: re.Pattern[str]
    exempt: re.Pattern[str] | None = None
    good: str = ""
    bad: str = ""


RULES = (
    Rule(
        id="one-clock",
        pattern=re.compile(r"\b(timezone\.now|datetime\.now|dt\.datetime\.now|date\.today)\("),
        message="ask yakuba.lib.clock (now()/today()) so tests can move time",
        applies_to=re.compile(r"^yakuba/.*\.py$"),
        exempt=re.compile(r"^yakuba/lib/clock\.py$"),
        good="started = clock.now()",
        bad="started = timezone.now()",
    ),
    Rule(
        id="one-config-reader",
        pattern=re.compile(r"\bos\.environ\b|\bos\.getenv\("),
        message="read configuration in yakuba/settings.py through yakuba.config.Env",
        applies_to=re.compile(r"^yakuba/.*\.py$"),
        exempt=re.compile(r"^yakuba/(config|settings|cli|asgi)\.py$"),
        good="timeout = settings.SESSION_IDLE_TIMEOUT_MINUTES",
        bad='timeout = int(os.environ["YAKUBA_SESSION_IDLE_MINUTES"])',
    ),
    Rule(
        id="thin-views",
        pattern=re.compile(r"\.objects\.get\(|\.save\(|\.delete\(\)|\.objects\.create\("),
        message="views parse and delegate: fetch with access_*, write with do_*",
        applies_to=re.compile(r"^yakuba/.*/views(/.*)?\.py$|^yakuba/.*/api\.py$|^yakuba/api\.py$"),
        good="staff = access_staff(request.user, number)",
        bad="staff = StaffProfile.objects.get(employee_number=number)",
    ),
    Rule(
        id="events-after-commit",
        pattern=re.compile(r"\bbus\.publish\("),
        message="send events with send_event_on_commit, never straight to the bus",
        applies_to=re.compile(r"^yakuba/.*\.py$"),
        exempt=re.compile(r"^yakuba/realtime/"),
        good='send_event_on_commit({"type": "x", "op": "y"}, [user.id])',
        bad='bus.publish({"type": "x", "op": "y"}, deliveries)',
    ),
)

ALLOW = re.compile(r"#\s*custom-check:\s*allow\s+([\w-]+)")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: Rule
    text: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}"
        return f"{where}: [{self.rule.id}] {self.rule.message}\n    {self.text.strip()}"


def check_text(path: str, text: str) -> Iterator[Finding]:
    rules = [
        rule
        for rule in RULES
        if rule.applies_to.search(path) and not (rule.exempt and rule.exempt.search(path))
    ]
    if not rules:
        return
    for number, line in enumerate(text.splitlines(), start=1):
        code = line.split("#", 1)[0]
        allowed = set(ALLOW.findall(line))
        for rule in rules:
            if rule.id not in allowed and rule.pattern.search(code):
                yield Finding(path, number, rule, line)


def main(root: Path) -> int:
    findings: list[Finding] = []
    for file in sorted(root.glob("yakuba/**/*.py")):
        relative = file.relative_to(root).as_posix()
        if "/migrations/" in relative:
            continue
        findings.extend(check_text(relative, file.read_text(encoding="utf-8")))
    for finding in findings:
        print(finding)
    if findings:
        print(f"custom-check: {len(findings)} finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(Path(__file__).resolve().parent.parent))
