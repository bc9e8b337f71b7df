"""Light formatting of message text into safe HTML.

What a sender may write (a small Markdown subset that office staff already type):

- ``**bold**`` and ```inline code```;
- fenced code blocks between lines of three backquotes;
- quotes: lines starting with ``> ``;
- lists: lines starting with ``- `` or ``* `` (bullets) or ``1. `` (numbered);
- line breaks as typed.

Everything else is escaped: no HTML of the sender's ever reaches the page.  A URL is
shown as text in ``<span class="url">`` and never becomes a link or a preview (closed
network: a preview fetch would leave it, and a link to the internet cannot be opened
there anyway).  An ``@mention`` is wrapped in ``<span class="mention">``; which person
it names is decided when the message is sent (``chat.mentions``), not here.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.utils.html import escape

FENCE = re.compile(r"^\s*```")
QUOTE = re.compile(r"^(?:>|＞) ?(.*)$")
BULLET = re.compile(r"^\s*[-*・] (.*)$")
NUMBERED = re.compile(r"^\s*\d{1,4}[.)] (.*)$")
# One pass over the text: inline code first (nothing inside it is formatted), then bold,
# URLs (ASCII up to a space or a character that cannot end one), mentions.  Bold stops
# looking for its end at the next ``**``: without that, each of many unclosed ``**`` would
# scan to the end of the line, quadratic in the length (seconds for one long message).
INLINE = re.compile(
    r"(?P<code>`[^`\n]+`)"
    r"|(?P<bold>\*\*(?=\S)(?P<inner>(?:(?!\*\*).)+?)(?<=\S)\*\*)"
    r"|(?P<url>(?:(?:https?|ftp)://|www\.)(?:(?![<>\"'`])[!-~])+)"
    r"|(?P<mention>(?<![A-Za-z0-9_.])[@＠](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_]|[^\s@＠!-/:-@\[-`{-~、。，．・「」（）]+))"
)
URL_TRAILING = ".,;:!?)]}'\"<>`*"
# The Japanese word for everyone, often followed by the text without a space.
EVERYONE = "全員"
# Honorifics and particles that follow a name without a space; not part of the mention.
MENTION_SUFFIXES = (
    "さん", "様", "さま", "殿", "くん", "ちゃん", "各位", "の皆さん", "の皆様",
    "へ", "に", "は", "が", "も", "と",
)  # fmt: skip


def render_html(text: str) -> str:
    """Safe HTML for a message's text (see the module docstring)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    pieces: list[tuple[bool, str]] = []  # (is_block, html)
    index = 0
    while index < len(lines):
        line = lines[index]
        if FENCE.match(line):
            end = index + 1
            while end < len(lines) and not FENCE.match(lines[end]):
                end += 1
            body = "\n".join(lines[index + 1 : end])
            pieces.append((True, f"<pre><code>{escape(body)}</code></pre>"))
            index = end + 1
            continue
        for pattern, render in ((QUOTE, _quote), (BULLET, _list("ul")), (NUMBERED, _list("ol"))):
            if pattern.match(line):
                end = index
                while end < len(lines) and pattern.match(lines[end]):
                    end += 1
                items = [_group(pattern, item) for item in lines[index:end]]
                pieces.append((True, render(items)))
                index = end
                break
        else:
            pieces.append((False, inline_html(line)))
            index += 1
    html: list[str] = []
    previous_inline = False
    for is_block, piece in pieces:
        if not is_block and previous_inline:
            html.append("<br>")
        html.append(piece)
        previous_inline = not is_block
    return "".join(html)


def inline_html(text: str, *, bold: bool = True) -> str:
    """One line: escaped, with inline code, bold, URLs and mentions marked up."""
    out: list[str] = []
    position = 0
    for match in INLINE.finditer(text):
        if match.group("bold") and not bold:
            continue
        out.append(escape(text[position : match.start()]))
        position = match.end()
        if match.group("code"):
            out.append(f"<code>{escape(match.group('code')[1:-1])}</code>")
        elif match.group("bold"):
            out.append(f"<strong>{inline_html(match.group('inner'), bold=False)}</strong>")
        elif match.group("url"):
            url = match.group("url")
            kept = url.rstrip(URL_TRAILING)
            position -= len(url) - len(kept)
            out.append(f'<span class="url">{escape(kept)}</span>')
        else:
            mention = match.group("mention")
            if mention[1:].startswith(EVERYONE) and len(mention) > 1 + len(EVERYONE):
                position -= len(mention) - 1 - len(EVERYONE)
                mention = mention[: 1 + len(EVERYONE)]
            start = _suffix_start(mention[1:])
            if start is not None and start > 0:
                position -= len(mention) - 1 - start
                mention = mention[: 1 + start]
            out.append(f'<span class="mention">{escape(mention)}</span>')
    out.append(escape(text[position:]))
    return "".join(out)


def _suffix_start(name: str) -> int | None:
    """Where the run of honorifics and particles that ends ``name`` starts (the first
    index from which the rest is made of ``MENTION_SUFFIXES`` only), or None.  Worked
    out from the end in one pass: a regular expression searched from each start is
    quadratic in the length of the name (seconds for a long run of 「は」)."""
    ends_here = [False] * (len(name) + 1)
    ends_here[len(name)] = True
    first: int | None = None
    for index in range(len(name) - 1, -1, -1):
        ends_here[index] = any(
            name.startswith(suffix, index) and ends_here[index + len(suffix)]
            for suffix in MENTION_SUFFIXES
        )
        if ends_here[index]:
            first = index
    return first


def _group(pattern: re.Pattern[str], line: str) -> str:
    match = pattern.match(line)
    return match.group(1) if match else line


def _quote(lines: list[str]) -> str:
    return "<blockquote>" + "<br>".join(inline_html(line) for line in lines) + "</blockquote>"


def _list(tag: str) -> Callable[[list[str]], str]:
    def render(items: list[str]) -> str:
        inner = "".join(f"<li>{inline_html(item)}</li>" for item in items)
        return f"<{tag}>{inner}</{tag}>"

    return render
