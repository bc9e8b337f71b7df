"""Light formatting of message text: what it marks up, and that nothing of the
sender's HTML ever reaches the page."""

from __future__ import annotations

import re
import time

import pytest

from yakuba.chat.formatting import render_html


def test_it_marks_bold_and_inline_code() -> None:
    assert render_html("**至急** `grep 予約`") == "<strong>至急</strong> <code>grep 予約</code>"


def test_it_does_not_format_inside_code() -> None:
    assert render_html("`**そのまま**`") == "<code>**そのまま**</code>"
    fenced = render_html("前\n```\n**x** <b>\n  字下げ\n```\n後")
    assert fenced == "前<pre><code>**x** &lt;b&gt;\n  字下げ</code></pre>後"


def test_it_keeps_an_unclosed_fence_as_code() -> None:
    assert render_html("```\n<i>") == "<pre><code>&lt;i&gt;</code></pre>"


def test_it_renders_quotes_and_lists() -> None:
    assert render_html("> 引用1\n> 引用2\n返事") == ("<blockquote>引用1<br>引用2</blockquote>返事")
    assert render_html("- 書庫\n* 会議室\n1. 一\n2. 二") == (
        "<ul><li>書庫</li><li>会議室</li></ul><ol><li>一</li><li>二</li></ol>"
    )


def test_it_keeps_line_breaks() -> None:
    assert render_html("一行目\n二行目\n\n四行目") == "一行目<br>二行目<br><br>四行目"


def test_it_shows_urls_as_text_never_as_links() -> None:
    html = render_html("資料は https://www.city.example.lg.jp/a?b=1&c=2 です。")
    assert html == (
        '資料は <span class="url">https://www.city.example.lg.jp/a?b=1&amp;c=2</span> です。'
    )
    assert "<a" not in html
    assert "href" not in html
    assert render_html("(https://x.example.jp/p).") == (
        '(<span class="url">https://x.example.jp/p</span>).'
    )


def test_it_wraps_mentions_without_the_honorific() -> None:
    assert render_html("@aliceさん、@文書係の皆さん") == (
        '<span class="mention">@alice</span>さん、<span class="mention">@文書係</span>の皆さん'
    )
    assert render_html("連絡先 a@example.jp") == "連絡先 a@example.jp"
    assert render_html("@全員本日は定時退庁日") == (
        '<span class="mention">@全員</span>本日は定時退庁日'
    )


@pytest.mark.parametrize(
    "attack",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "**<svg onload=alert(1)>**",
        "`</code><script>alert(1)</script>`",
        "```\n</code></pre><script>alert(1)</script>\n```",
        "> <iframe src=javascript:alert(1)>",
        "- <a href='javascript:alert(1)'>x</a>",
        'https://x.example.jp/"><script>alert(1)</script>',
        "@<script>alert(1)</script>",
        "javascript:alert(1)",
    ],
)
def test_it_escapes_everything_else(attack: str) -> None:
    html = render_html(attack)
    assert "<script" not in html
    assert "<img" not in html
    assert "<svg" not in html
    assert "<iframe" not in html
    # Only our own tags remain, with no attribute but our own classes.
    attributes = set(re.findall(r"<[a-z]+ ([^>]*)>", html))
    assert attributes <= {'class="url"', 'class="mention"'}, html
    allowed = {"strong", "code", "pre", "blockquote", "ul", "ol", "li", "br", "span"}
    tags = set(re.findall(r"</?([a-z]+)", html))
    assert tags <= allowed, html


@pytest.mark.parametrize(
    "text",
    [
        "**a " * 2500,  # many bold openings without an end
        "- " + "**a " * 2500,
        "@" + "は" * 9998 + "x",  # a long run of what could be honorifics
        "@" + "さん" * 4999 + "x",
    ],
)
def test_it_renders_a_long_message_in_linear_time(text: str) -> None:
    """A 10,000-character message (CHAT_MESSAGE_MAX_CHARS) renders at once; quadratic
    patterns took seconds per message, on every page that shows it."""
    started = time.perf_counter()
    html = render_html(text)
    assert time.perf_counter() - started < 0.5
    assert "<script" not in html


def test_it_bolds_from_the_nearest_opening() -> None:
    assert render_html("**a **b**") == "**a <strong>b</strong>"
    assert render_html("@文書係の皆さんへ") == '<span class="mention">@文書係</span>の皆さんへ'
