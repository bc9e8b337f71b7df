"""監査ログ検索 (/audit/): auditors and IT administrators search and export CSV; anyone
else gets 403 and the refusal is logged.  Searches and exports are audited too."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.http import StreamingHttpResponse
from django.test import AsyncClient, Client

from tests.audit.conftest import make_activity
from yakuba.audit.models import AuditAction, AuditEntry
from yakuba.directory.actions.staff import do_create_department, do_grant_role
from yakuba.directory.models import Role, User


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_lets_an_auditor_search_by_person_and_action(
    auditor: User, alice: User, bob: User
) -> None:
    make_activity(alice, 3, prefix="A")
    make_activity(bob, 2, prefix="B")
    client = signed_in(auditor)
    response = client.get(
        "/audit/", {"person": "青木", "action": AuditAction.DEPARTMENT_CREATED.value}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "監査ログ検索" in page
    assert "検索結果 3 件" in page
    assert "検証用係2" in page
    assert "坂東" not in page
    assert '<th scope="col">' in page
    assert '<label for="id_person">' in page
    search = AuditEntry.objects.get(action=AuditAction.AUDIT_SEARCHED)
    assert search.actor_id == auditor.pk
    assert search.details["filters"]["person"] == "青木"


def test_it_filters_by_target_and_dates(auditor: User, alice: User) -> None:
    make_activity(alice, 2, prefix="A")
    client = signed_in(auditor)
    page = client.get("/audit/", {"target": "directory.department"}).content.decode()
    assert "検索結果 2 件" in page
    page = client.get(
        "/audit/", {"target": "directory.department", "date_from": "2099-01-01"}
    ).content.decode()
    assert "検索結果 0 件" in page
    page = client.get("/audit/", {"target": "検証用係1"}).content.decode()
    assert "検索結果 1 件" in page
    bad = client.get("/audit/", {"date_from": "2025-05-01", "date_to": "2025-04-01"})
    assert bad.status_code == 400
    assert "終了日は開始日以降" in bad.content.decode()


def test_it_refuses_alice_and_logs_the_refusal(alice: User) -> None:
    client = signed_in(alice)
    assert client.get("/audit/").status_code == 403
    assert client.get("/audit/export.csv").status_code == 403
    denials = AuditEntry.objects.filter(action=AuditAction.PERMISSION_DENIED, actor_id=alice.pk)
    assert sorted(d.details["what"] for d in denials) == ["audit.export", "audit.search"]
    assert not AuditEntry.objects.filter(action=AuditAction.AUDIT_SEARCHED).exists()
    assert "監査ログ" not in client.get("/").content.decode()


def test_it_lets_an_it_administrator_in_and_shows_the_menu(charlie: User, auditor: User) -> None:
    do_grant_role(charlie, Role.IT_ADMIN, acting_user=None)
    client = signed_in(charlie)
    assert client.get("/audit/").status_code == 200
    assert 'href="/audit/"' in signed_in(auditor).get("/").content.decode()


def test_it_exports_csv_with_a_bom_for_excel(auditor: User, alice: User) -> None:
    make_activity(alice, 3, prefix="A")
    response = signed_in(auditor).get("/audit/export.csv", {"person": "青木"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:4] == ["日時（日本時間）", "操作者種別", "操作者", "操作"]
    assert len(rows) == 4
    assert {row[3] for row in rows[1:]} == {"所属の作成"}
    export = AuditEntry.objects.get(action=AuditAction.AUDIT_EXPORTED)
    assert export.details == {
        "format": "csv",
        "filters": {
            "person": "青木",
            "action": "",
            "target": "",
            "date_from": "",
            "date_to": "",
        },
        "rows": 3,
    }


@pytest.mark.django_db(transaction=True)
async def test_it_streams_the_csv_under_asgi_and_neutralises_formulas(
    auditor: User, alice: User
) -> None:
    """Through the ASGI handler (as uvicorn serves it): an async stream, no buffering
    warning (warnings are errors in the suite), and a cell Excel would run as a formula
    starts with an apostrophe."""
    await sync_to_async(do_create_department)(
        code="X1", name='=HYPERLINK("http://evil")', level="kakari", acting_user=alice
    )
    client = AsyncClient()
    await client.aforce_login(auditor)
    # The test client's response type hides StreamingHttpResponse's attributes.
    response: Any = await client.get("/audit/export.csv", {"person": "青木"})
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response.is_async
    stream: Any = response.streaming_content  # async here (is_async), typed as either
    body = b"".join([chunk async for chunk in stream])
    # The rows were read in asgiref's worker thread: close its connection, as Django's
    # request_finished does in production, so the test database can be dropped.
    await sync_to_async(connections.close_all)()
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert len(rows) == 2
    assert rows[1][7] == '\'=HYPERLINK("http://evil")'
