import json, time
from typing import Any
import pytest
from django.test import Client
from yakuba.chat.models import Conversation, Message
from yakuba.chat.formatting import render_html
from tests.chat.test_api import signed_in, post, send, body, API, bot, token_for  # noqa

def test_it_probe(bunsho_channel: Conversation, alice, bob) -> None:
    c = signed_in(alice)
    m = body(send(c, bunsho_channel, "x", "p1"))
    huge = 10**30
    results = {}
    cases = {
        "thread_root_huge": lambda: send(c, bunsho_channel, "y", "p2", thread_root=huge),
        "attach_huge": lambda: send(c, bunsho_channel, "y", "p3", attachments=[huge]),
        "before_huge": lambda: c.get(f"{API}/conversations/{bunsho_channel.pk}/messages?before={huge}"),
        "after_huge": lambda: c.get(f"{API}/conversations/{bunsho_channel.pk}/changes?after={huge}"),
        "conv_huge": lambda: c.get(f"{API}/conversations/{huge}/messages"),
        "msg_huge": lambda: c.get(f"{API}/messages/{huge}/thread"),
        "fwd_huge": lambda: post(c, f"/messages/{m['id']}/forward", {"conversation": huge, "client_key": "f"}),
        "read_huge": lambda: post(c, f"/conversations/{bunsho_channel.pk}/read", {"seq": huge}),
        "surrogate": lambda: c.post(f"{API}/conversations/{bunsho_channel.pk}/messages", '{"text": "\\ud800", "client_key": "s1"}', content_type="application/json"),
        "surrogate_emoji": lambda: c.post(f"{API}/messages/{m['id']}/reactions", '{"emoji": "\\ud83d"}', content_type="application/json"),
        "nul_members": lambda: post(c, "/conversations", {"kind": "group", "members": ["bo\x00b"]}),
        "nul_name": lambda: post(c, "/conversations", {"kind": "project", "name": "a\x00b"}),
        "text_int": lambda: send(c, bunsho_channel, 5, "p4"),
        "text_null": lambda: send(c, bunsho_channel, None, "p5"),
        "body_list": lambda: c.post(f"{API}/conversations/{bunsho_channel.pk}/messages", '[1]', content_type="application/json"),
        "body_bad": lambda: c.post(f"{API}/conversations/{bunsho_channel.pk}/messages", '{', content_type="application/json"),
        "emoji_c1": lambda: post(c, f"/messages/{m['id']}/reactions", {"emoji": "\u202e\u0085"}),
        "members_many": lambda: post(c, "/conversations", {"kind": "group", "members": [f"u{i}" for i in range(40000)]}),
        "big_body": lambda: send(c, bunsho_channel, "あ" * 2_000_000, "p6"),
        "name_long": lambda: post(c, "/conversations", {"kind": "project", "name": "あ" * 150}),
    }
    for k, f in cases.items():
        try:
            r = f()
            results[k] = (r.status_code, r.content[:200].decode("utf-8", "replace"))
        except Exception as e:
            results[k] = ("EXC", repr(e)[:200])
    for k, v in results.items():
        print(k, v)

def test_it_perf() -> None:
    for t in ["**a " * 2500, "`a" * 5000 + "`" , "@" + "." * 9999, "@a" * 5000, "http://" + "a" * 9990, "＠" * 10000, "> " + "**a " * 2500]:
        s = time.perf_counter(); render_html(t); print(repr(t[:10]), time.perf_counter() - s)
