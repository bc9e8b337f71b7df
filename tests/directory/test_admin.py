"""The Django admin: IT administrators only, every change audited."""

from __future__ import annotations

import datetime as dt

from tests.conftest import PASSWORD
from yakuba.audit.models import AuditEntry
from yakuba.directory.models import Department, RoleGrant, StaffProfile, User


def test_it_refuses_the_admin_to_staff_who_are_not_it_administrators(client, alice):
    client.force_login(alice)

    response = client.get("/admin/directory/staffprofile/")

    assert response.status_code == 403
    denial = AuditEntry.objects.get(action="auth.denied")
    assert denial.actor_id == alice.pk
    assert denial.details["what"] == "admin"


def test_it_refuses_the_admin_to_a_guest_even_with_is_staff(client, gina):
    gina.is_staff = True
    gina.save(update_fields=["is_staff"])
    client.force_login(gina)

    assert client.get("/admin/").status_code == 403


def test_it_sends_an_anonymous_visitor_to_the_portal_sign_in(client, db):
    response = client.get("/admin/")

    assert response.status_code == 302
    assert "login" in response["Location"]


def test_an_it_administrator_sees_the_directory_in_japanese(client, ida, alice):
    client.force_login(ida)

    index = client.get("/admin/")
    staff_list = client.get("/admin/directory/staffprofile/", {"q": "あおき"})

    assert index.status_code == 200
    assert "Yakuba 管理画面" in index.content.decode()
    assert "人事異動" in index.content.decode()
    assert staff_list.status_code == 200
    assert "青木 愛" in staff_list.content.decode()


def test_an_admin_change_is_audited_with_the_changed_fields(client, ida, ward):
    client.force_login(ida)
    somu_ka = ward["somu_ka"]

    response = client.post(
        f"/admin/directory/department/{somu_ka.pk}/change/",
        {
            "code": "110",
            "name": "総務課（新）",
            "kana": "そうむか",
            "level": "ka",
            "parent": ward["somu_bu"].pk,
            "sort_order": "0",
            "is_active": "on",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert Department.objects.get(code="110").name == "総務課（新）"
    entry = AuditEntry.objects.get(action="directory.department_changed")
    assert entry.actor_id == ida.pk
    assert entry.details["changes"] == {
        "name": ["総務課", "総務課（新）"],
        "kana": ["", "そうむか"],
    }


def test_staff_added_in_the_admin_get_an_account(client, ida, ward):
    client.force_login(ida)

    response = client.post(
        "/admin/directory/staffprofile/add/",
        {
            "employee_number": "40001",
            "family_name": "新井",
            "given_name": "新",
            "family_kana": "あらい",
            "given_kana": "あらた",
            "department": ward["koseki"].pk,
            "title": "主事",
            "extension": "",
            "email": "",
            "username": "arai",
            "concurrent_posts-TOTAL_FORMS": "0",
            "concurrent_posts-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    staff = StaffProfile.objects.get(employee_number="40001")
    assert staff.user.username == "arai"
    assert AuditEntry.objects.filter(action="directory.staff_created", actor_id=ida.pk).exists()


def test_granting_it_admin_in_the_admin_opens_the_admin_and_revoking_closes_it(client, ida, bob):
    client.force_login(ida)
    response = client.post(
        "/admin/directory/rolegrant/add/", {"user": bob.pk, "role": "it_admin", "department": ""}
    )
    assert response.status_code == 302
    bob.refresh_from_db()
    assert bob.is_staff
    grant = RoleGrant.objects.get(user=bob, role="it_admin")
    assert AuditEntry.objects.filter(action="directory.role_granted", target_id=str(bob.pk))

    bob_client = client.__class__()
    bob_client.force_login(bob)
    assert bob_client.get("/admin/").status_code == 200

    response = client.post(f"/admin/directory/rolegrant/{grant.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    bob.refresh_from_db()
    assert not bob.is_staff
    assert AuditEntry.objects.filter(action="directory.role_revoked", target_id=str(bob.pk))
    assert bob_client.get("/admin/").status_code == 403


def test_a_section_head_grant_needs_a_department(client, ida, bob):
    client.force_login(ida)

    response = client.post(
        "/admin/directory/rolegrant/add/",
        {"user": bob.pk, "role": "section_head", "department": ""},
    )

    assert response.status_code == 200
    assert "所属長のロールには対象の所属が必要です" in response.content.decode()
    assert not RoleGrant.objects.filter(user=bob, role="section_head").exists()


def test_a_transfer_batch_uploaded_in_the_admin_lists_every_bad_row(client, ida, alice):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(ida)
    data = "職員番号,異動後所属コード\r\n10001,999\r\n77777,210\r\n".encode("cp932")

    response = client.post(
        "/admin/directory/transferbatch/add/",
        {
            "name": "令和7年4月1日付人事異動",
            "effective_on": "2025-04-01",
            "csv_file": SimpleUploadedFile("idou.csv", data, "text/csv"),
            "transfers-TOTAL_FORMS": "0",
            "transfers-INITIAL_FORMS": "0",
        },
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "2行目: 異動後所属コード 999 は存在しません" in page
    assert "3行目: 職員番号 77777 の職員は存在しません" in page
    assert not User.objects.get(pk=alice.pk).staff.transfers.exists()


def test_an_it_administrator_sets_a_first_password_for_imported_staff(client, ida, alice):
    from django.contrib.auth import authenticate

    alice.set_unusable_password()
    alice.save(update_fields=["password"])
    client.force_login(ida)
    url = f"/admin/directory/user/{alice.pk}/password/"

    mismatch = client.post(url, {"password1": "shinnyu-2025-ok", "password2": "other-2025-ok"})
    response = client.post(url, {"password1": "shinnyu-2025-ok", "password2": "shinnyu-2025-ok"})

    assert mismatch.status_code == 200
    assert "確認のパスワードが一致しません" in mismatch.content.decode()
    assert response.status_code == 302
    assert authenticate(username="alice", password="shinnyu-2025-ok") == alice
    entry = AuditEntry.objects.get(action="auth.password_changed")
    assert (entry.actor_id, entry.target_id) == (ida.pk, str(alice.pk))


def test_staff_cannot_reach_the_password_page(client, alice, bob):
    client.force_login(alice)

    assert (
        client.post(
            f"/admin/directory/user/{bob.pk}/password/",
            {"password1": "x-long-enough-1", "password2": "x-long-enough-1"},
        ).status_code
        == 403
    )
    bob.refresh_from_db()
    assert bob.check_password(PASSWORD)


def test_every_directory_admin_page_renders(client, ida, alice, gina, ward):
    from yakuba.directory.actions.staff import do_schedule_transfers
    from yakuba.directory.csv_io import TransferRecord

    batch = do_schedule_transfers(
        [TransferRecord("10001", "210", "", (), False)],
        name="異動",
        effective_on=dt.date(2030, 4, 1),
        acting_user=None,
    )
    client.force_login(ida)
    pages = [
        "/admin/directory/department/",
        "/admin/directory/department/add/",
        f"/admin/directory/department/{ward['bunsho'].pk}/change/",
        "/admin/directory/staffprofile/",
        "/admin/directory/staffprofile/add/",
        f"/admin/directory/staffprofile/{alice.staff.pk}/change/",
        "/admin/directory/rolegrant/",
        "/admin/directory/rolegrant/add/",
        "/admin/directory/guestprofile/",
        "/admin/directory/guestprofile/add/",
        f"/admin/directory/guestprofile/{gina.guest.pk}/change/",
        "/admin/directory/transferbatch/",
        "/admin/directory/transferbatch/add/",
        f"/admin/directory/transferbatch/{batch.pk}/change/",
        "/admin/directory/apitoken/",
        "/admin/directory/user/",
        f"/admin/directory/user/{alice.pk}/change/",
        f"/admin/directory/user/{alice.pk}/password/",
    ]
    for url in pages:
        assert client.get(url).status_code == 200, url


def test_the_admin_refuses_a_department_under_its_own_team(client, ida, ward):
    client.force_login(ida)
    somu_ka = ward["somu_ka"]

    response = client.post(
        f"/admin/directory/department/{somu_ka.pk}/change/",
        {
            "code": "110",
            "name": "総務課",
            "kana": "",
            "level": "ka",
            "parent": ward["bunsho"].pk,
            "sort_order": "0",
            "is_active": "on",
        },
    )

    assert response.status_code == 200
    assert "上位所属には、より上の階層の所属を指定してください" in response.content.decode()
    somu_ka.refresh_from_db()
    assert somu_ka.parent == ward["somu_bu"]
    assert not AuditEntry.objects.filter(action="directory.department_changed").exists()


def test_the_admin_lists_ask_about_the_role_once_and_not_per_row(
    client, ida, alice, django_assert_num_queries
):
    from yakuba.directory.actions.staff import do_schedule_transfers
    from yakuba.directory.csv_io import TransferRecord

    for n in range(3):
        do_schedule_transfers(
            [TransferRecord("10001", "210", "", (), False)],
            name=f"異動{n}",
            effective_on=dt.date(2030, 4, n + 1),
            acting_user=None,
        )
    client.force_login(ida)
    client.get("/admin/")  # the first request of a session writes it: not counted

    # session, user, it_admin grant (once, not per model and permission), count of the
    # filtered and of the whole list, the two permission reads of Django's auth backend,
    # the batches with their sizes (one query, not one per row), the navigation's roles.
    with django_assert_num_queries(9):
        response = client.get("/admin/directory/transferbatch/")
    assert response.status_code == 200
    assert response.content.decode().count('<td class="field-size">1</td>') == 3


def test_a_move_or_a_new_concurrent_post_in_the_admin_tells_the_person(client, ida, alice, ward):
    from yakuba.realtime.models import UserEvent

    client.force_login(ida)
    staff = alice.staff
    form = {
        "employee_number": "10001",
        "family_name": "青木",
        "given_name": "愛",
        "family_kana": "あおき",
        "given_kana": "あい",
        "department": ward["bunsho"].pk,
        "title": "",
        "extension": "",
        "email": "",
        "concurrent_posts-TOTAL_FORMS": "1",
        "concurrent_posts-INITIAL_FORMS": "0",
        "concurrent_posts-0-department": ward["koseki"].pk,
        "concurrent_posts-0-title": "",
    }

    added = client.post(f"/admin/directory/staffprofile/{staff.pk}/change/", form)
    moved = client.post(
        f"/admin/directory/staffprofile/{staff.pk}/change/",
        {
            **form,
            "department": ward["somu_ka"].pk,
            "concurrent_posts-TOTAL_FORMS": "0",
            "concurrent_posts-INITIAL_FORMS": "0",
        },
    )

    assert (added.status_code, moved.status_code) == (302, 302), added.content.decode()[:3000]
    events = [e.payload for e in UserEvent.objects.filter(user=alice).order_by("pk")]
    directory = [e for e in events if e["type"] == "directory"]
    assert directory == [{"type": "directory", "op": "memberships_changed"}] * 2
    # Her 所属 chat channels followed in the same transactions.
    assert any(e["type"] == "chat" and e.get("change") == "added" for e in events)
    assert AuditEntry.objects.filter(action="directory.staff_changed", actor_id=ida.pk).exists()


def test_deleting_a_department_in_the_admin_audits_the_section_heads_it_loses(client, ida, bob):
    from tests.conftest import make_department
    from yakuba.audit.record import Actor
    from yakuba.directory.actions.staff import do_grant_role
    from yakuba.directory.models import Role

    project = make_department("900", "新庁舎整備担当", "bu")
    do_grant_role(bob, Role.SECTION_HEAD, department=project, acting_user=Actor.system("test"))
    client.force_login(ida)

    response = client.post(f"/admin/directory/department/{project.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not RoleGrant.objects.filter(user=bob).exists()
    revoked = AuditEntry.objects.get(action="directory.role_revoked")
    assert (revoked.actor_id, revoked.target_id) == (ida.pk, str(bob.pk))
    assert revoked.details == {"role": "section_head", "department": "900"}
    assert AuditEntry.objects.filter(action="admin.change", actor_id=ida.pk).exists()
