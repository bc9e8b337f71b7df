"""The directory in the Django admin, for IT administrators.

Every save and delete is audited: the models with their own actions (departments,
staff, roles, guests, transfer batches, tokens) go through them; anything else the
shared ``AuditedModelAdmin`` records as ``ADMIN_CHANGE`` with the changed fields.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Count, QuerySet
from django.forms import ModelForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from yakuba.audit.models import AuditAction
from yakuba.audit.record import record
from yakuba.directory import csv_io
from yakuba.directory.access import is_it_admin_request
from yakuba.directory.actions import staff as actions
from yakuba.directory.actions.auth import do_change_password, do_revoke_token
from yakuba.directory.models import (
    ApiToken,
    ConcurrentPost,
    Department,
    GuestProfile,
    Role,
    RoleGrant,
    StaffProfile,
    Transfer,
    TransferBatch,
    User,
)


def _acting(request: HttpRequest) -> User | None:
    """Who made the change, for the actions and the audit log."""
    return request.user if isinstance(request.user, User) else None


def _json(value: object) -> object:
    """A field value as audit details can hold it."""
    if isinstance(value, models.Model):
        return {"id": value.pk, "label": str(value)[:100]}
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, QuerySet):
        return [_json(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return str(value)


def form_changes(form: forms.BaseForm) -> dict[str, Any]:
    """{field: [before, after]} for the fields the form changed."""
    return {
        name: [_json(form.initial.get(name)), _json(form.cleaned_data.get(name))]
        for name in form.changed_data
    }


class ItAdminOnly:
    """Every permission is "is an IT administrator", whatever Django's model permissions
    say, so granting the ``it_admin`` role is all it takes."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_it_admin_request(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_it_admin_request(request)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return is_it_admin_request(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_it_admin_request(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_it_admin_request(request)


class AuditedModelAdmin(ItAdminOnly, admin.ModelAdmin):  # type: ignore[type-arg]  # any model
    """Records ``ADMIN_CHANGE`` for every add, change and delete, inlines included, in
    the admin's own transaction."""

    # The form for adding an object, when it differs from the change form (as in
    # Django's own UserAdmin).
    add_form: type[ModelForm[Any]] | None = None

    def get_form(
        self, request: HttpRequest, obj: Any | None = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm[Any]]:
        if obj is None and self.add_form is not None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            self.audit(request, obj, "change" if change else "add", form_changes(form))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            target = (obj._meta.label_lower, str(obj.pk), str(obj)[:300])
            super().delete_model(request, obj)
            self.audit(request, target, "delete", {})

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with transaction.atomic():
            for obj in queryset:
                self.delete_model(request, obj)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_formset(request, form, formset, change)
            for obj in formset.new_objects:
                self.audit(request, obj, "add", {})
            for obj, fields in formset.changed_objects:
                self.audit(request, obj, "change", {"fields": fields})
            for obj in formset.deleted_objects:
                self.audit(request, (obj._meta.label_lower, "", str(obj)[:300]), "delete", {})

    def audit(
        self,
        request: HttpRequest,
        target: models.Model | tuple[str, str, str],
        operation: str,
        changes: dict[str, Any],
    ) -> None:
        record(
            AuditAction.ADMIN_CHANGE,
            actor=_acting(request),
            target=target,
            details={"operation": operation, "changes": changes},
        )


# --- Departments ---------------------------------------------------------------------


@admin.register(Department)
class DepartmentAdmin(AuditedModelAdmin):
    list_display = ("code", "indented_name", "level", "parent", "sort_order", "is_active")
    list_filter = ("level", "is_active")
    search_fields = ("code", "name", "kana")
    ordering = ("sort_order", "code")
    autocomplete_fields = ("parent",)
    list_select_related = ("parent",)

    def get_form(
        self, request: HttpRequest, obj: Any | None = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm[Any]]:
        form = super().get_form(request, obj, change, **kwargs)
        return type("DepartmentForm", (form,), {"clean": _clean_department})

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        """A 所属長 grant goes with its department (the foreign key cascades): take it away
        through the action first, so that each loss of the role is audited as such."""
        with transaction.atomic():
            for grant in RoleGrant.objects.filter(department=obj).select_related("user"):
                actions.do_revoke_role(
                    grant.user, Role(grant.role), department=obj, acting_user=_acting(request)
                )
            super().delete_model(request, obj)

    @admin.display(description="所属名（階層）", ordering="name")
    def indented_name(self, obj: Department) -> str:
        depth = csv_io.LEVEL_RANK[Department.Level(obj.level)]
        return "\u3000" * depth + obj.name

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        acting = _acting(request)
        if not change:
            created = actions.do_create_department(
                code=obj.code,
                name=obj.name,
                kana=obj.kana,
                level=obj.level,
                parent=obj.parent,
                sort_order=obj.sort_order,
                acting_user=acting,
            )
            obj.pk = created.pk
            obj._state.adding = False
            return
        original = Department.objects.get(pk=obj.pk)
        changes = {
            name: getattr(obj, name)
            for name in actions.DEPARTMENT_FIELDS
            if name in form.changed_data
        }
        actions.do_change_department(original, acting_user=acting, **changes)


def _clean_department(form: forms.ModelForm) -> dict[str, Any]:  # type: ignore[type-arg]
    """The same tree rules as the CSV import: a 部 has no parent, a 課 or 係 has one, and
    a parent sits on a higher level (which also rules out cycles)."""
    data = forms.ModelForm.clean(form) or {}
    level, parent = data.get("level"), data.get("parent")
    if level == Department.Level.BU and parent is not None:
        raise forms.ValidationError("部には上位所属を指定できません。")
    if level in (Department.Level.KA, Department.Level.KAKARI) and parent is None:
        raise forms.ValidationError("課と係には上位所属が必要です。")
    rank = csv_io.LEVEL_RANK
    if level and parent is not None and rank[Department.Level(parent.level)] >= rank[level]:
        raise forms.ValidationError("上位所属には、より上の階層の所属を指定してください。")
    return data


# --- Staff ---------------------------------------------------------------------------------


class ConcurrentPostInline(ItAdminOnly, admin.TabularInline):  # type: ignore[type-arg]
    model = ConcurrentPost
    extra = 0
    autocomplete_fields = ("department",)


class StaffAddForm(ModelForm):  # type: ignore[type-arg]  # StaffProfile
    username = forms.CharField(
        label="ユーザー名", required=False, help_text="空欄なら職員番号をユーザー名にします。"
    )

    class Meta:
        model = StaffProfile
        fields = (
            "employee_number",
            "family_name",
            "given_name",
            "family_kana",
            "given_kana",
            "department",
            "title",
            "extension",
            "email",
        )


@admin.register(StaffProfile)
class StaffProfileAdmin(AuditedModelAdmin):
    list_display = (
        "employee_number",
        "full_name",
        "full_kana",
        "department",
        "title",
        "extension",
        "status",
    )
    list_filter = ("status", ("department", admin.RelatedOnlyFieldListFilter))
    search_fields = ("employee_number", "family_name", "given_name", "family_kana", "given_kana")
    list_select_related = ("department",)
    autocomplete_fields = ("department",)
    inlines = (ConcurrentPostInline,)
    readonly_fields = ("user", "status", "retired_on")

    add_form = StaffAddForm

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return [*StaffAddForm.Meta.fields, "username"]
        return [
            "user",
            *StaffAddForm.Meta.fields,
            "status",
            "retired_on",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        acting = _acting(request)
        if not change:
            created = actions.do_create_staff(
                username=form.cleaned_data.get("username") or None,
                acting_user=acting,
                **{name: getattr(obj, name) for name in StaffAddForm.Meta.fields},
            )
            obj.pk, obj.user = created.pk, created.user
            obj._state.adding = False
            return
        original = StaffProfile.objects.select_related("user").get(pk=obj.pk)
        changes = {
            name: getattr(obj, name) for name in actions.STAFF_FIELDS if name in form.changed_data
        }
        actions.do_change_staff(original, acting_user=acting, **changes)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """兼務 edited in the page: audited by the base class; the person is told, as
        ``do_set_concurrent_posts`` would tell them."""
        super().save_formset(request, form, formset, change)
        edited = formset.new_objects or formset.changed_objects or formset.deleted_objects
        if formset.model is ConcurrentPost and edited:
            actions.notify_memberships_changed([form.instance.user_id])


# --- Roles ------------------------------------------------------------------------------------


@admin.register(RoleGrant)
class RoleGrantAdmin(AuditedModelAdmin):
    list_display = ("user", "role", "department", "granted_at")
    list_filter = ("role",)
    search_fields = ("user__username", "user__display_name", "department__name")
    list_select_related = ("user", "department")
    raw_id_fields = ("user",)
    autocomplete_fields = ("department",)
    fields = ("user", "role", "department")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Grants are given and taken away, never edited.
        return obj is None and is_it_admin_request(request)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        acting = _acting(request)
        # The form's clean() has refused what do_grant_role would.
        grant = actions.do_grant_role(
            obj.user, Role(obj.role), department=obj.department, acting_user=acting
        )
        obj.pk = grant.pk
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        acting = _acting(request)
        actions.do_revoke_role(
            obj.user, Role(obj.role), department=obj.department, acting_user=acting
        )

    def get_form(
        self, request: HttpRequest, obj: Any | None = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm[Any]]:
        form = super().get_form(request, obj, change, **kwargs)
        return type("RoleGrantForm", (form,), {"clean": _clean_role_grant})


def _clean_role_grant(form: forms.ModelForm) -> dict[str, Any]:  # type: ignore[type-arg]
    data = forms.ModelForm.clean(form) or {}
    role, department = data.get("role"), data.get("department")
    if role == Role.SECTION_HEAD and department is None:
        raise forms.ValidationError("所属長のロールには対象の所属が必要です。")
    if role and role != Role.SECTION_HEAD and department is not None:
        raise forms.ValidationError("対象の所属を指定できるのは所属長のロールだけです。")
    user = data.get("user")
    if isinstance(user, User) and user.kind != User.Kind.STAFF:
        raise forms.ValidationError("ロールを付与できるのは職員だけです。")
    return data


# --- Guests -----------------------------------------------------------------------------------


class GuestAddForm(ModelForm):  # type: ignore[type-arg]  # GuestProfile
    username = forms.CharField(
        label="ユーザー名", required=False, help_text="空欄なら guest0001 のように付けます。"
    )

    class Meta:
        model = GuestProfile
        fields = ("name", "organisation", "email", "expires_at")


@admin.register(GuestProfile)
class GuestProfileAdmin(AuditedModelAdmin):
    list_display = ("name", "organisation", "email", "expires_at", "user", "active")
    search_fields = ("name", "organisation", "email", "user__username")
    list_select_related = ("user",)
    readonly_fields = ("user", "invited_by")

    @admin.display(description="有効", boolean=True)
    def active(self, obj: GuestProfile) -> bool:
        return obj.user.is_active and not obj.is_expired()

    add_form = GuestAddForm

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return [*GuestAddForm.Meta.fields, "username"]
        return ["user", *GuestAddForm.Meta.fields, "invited_by"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        acting = _acting(request)
        if not change:
            user = actions.do_invite_guest(
                name=obj.name,
                organisation=obj.organisation,
                email=obj.email,
                expires_at=obj.expires_at,
                username=form.cleaned_data.get("username") or None,
                acting_user=acting,
            )
            obj.pk, obj.user = user.guest.pk, user
            obj._state.adding = False
            return
        if "expires_at" in form.changed_data:
            original = GuestProfile.objects.select_related("user").get(pk=obj.pk)
            actions.do_change_guest_expiry(original, obj.expires_at, acting_user=acting)
        if set(form.changed_data) - {"expires_at"}:
            with transaction.atomic():
                obj.save()
                self.audit(request, obj, "change", form_changes(form))


# --- Personnel transfers -----------------------------------------------------------------------


class TransferInline(ItAdminOnly, admin.TabularInline):  # type: ignore[type-arg]
    model = Transfer
    extra = 0
    raw_id_fields = ("staff",)
    autocomplete_fields = ("new_department",)
    fields = ("staff", "new_department", "new_title", "concurrent_department_codes", "retire")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        scheduled = obj is None or obj.status == TransferBatch.Status.SCHEDULED
        return scheduled and is_it_admin_request(request)

    has_add_permission = has_change_permission
    has_delete_permission = has_change_permission


class TransferBatchForm(ModelForm):  # type: ignore[type-arg]  # TransferBatch
    csv_file = forms.FileField(
        label="異動CSV",
        required=False,
        help_text=(
            "列: 職員番号,異動後所属コード,異動後役職,兼務所属コード,退職（UTF-8 または Shift_JIS）"
        ),
    )

    class Meta:
        model = TransferBatch
        fields = ("name", "effective_on")

    def clean_csv_file(self) -> list[csv_io.TransferRecord] | None:
        upload = self.cleaned_data.get("csv_file")
        if not upload:
            return None
        try:
            return csv_io.parse_transfers(upload.read())
        except csv_io.CsvRejected as exc:
            raise forms.ValidationError(
                [str(error) for error in exc.errors]
                + [f"{len(exc.errors)}件のエラーがあるため、登録しませんでした。"]
            ) from None


@admin.register(TransferBatch)
class TransferBatchAdmin(AuditedModelAdmin):
    form = TransferBatchForm
    list_display = ("name", "effective_on", "status", "applied_at", "size")
    list_filter = ("status",)
    search_fields = ("name",)
    inlines = (TransferInline,)
    actions = ("cancel_batches", "apply_due_batches")

    def get_queryset(self, request: HttpRequest) -> QuerySet[TransferBatch]:
        # The list shows each batch's size: count in the list's query, not once per row.
        batches: QuerySet[TransferBatch] = super().get_queryset(request)
        return batches.annotate(size_count=Count("transfers"))

    @admin.display(description="人数", ordering="size_count")
    def size(self, obj: TransferBatch) -> int:
        return int(getattr(obj, "size_count", 0))

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["name", "effective_on", "csv_file"]
        return ["name", "effective_on", "status", "applied_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ()
        if obj.status != TransferBatch.Status.SCHEDULED:
            return ("name", "effective_on", "status", "applied_at")
        return ("status", "applied_at")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A batch is cancelled (audited, kept), never deleted.
        return False

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        records = form.cleaned_data.get("csv_file")
        if change or not records:
            super().save_model(request, obj, form, change)
            if not change:
                record(
                    AuditAction.TRANSFER_SCHEDULED,
                    actor=_acting(request),
                    target=obj,
                    details={"effective_on": obj.effective_on.isoformat(), "count": 0},
                )
            return
        batch = actions.do_schedule_transfers(
            records,
            name=obj.name,
            effective_on=obj.effective_on,
            acting_user=_acting(request),
        )
        obj.pk = batch.pk
        obj._state.adding = False

    @admin.action(description="選択した人事異動を取り消す")
    def cancel_batches(self, request: HttpRequest, queryset: QuerySet[TransferBatch]) -> None:
        acting = _acting(request)
        cancelled = sum(
            actions.do_cancel_transfer_batch(batch, acting_user=acting) for batch in queryset
        )
        self.message_user(request, f"{cancelled}件の人事異動を取り消しました。")

    @admin.action(description="発令日を迎えた人事異動を今すぐ発令する")
    def apply_due_batches(self, request: HttpRequest, queryset: QuerySet[TransferBatch]) -> None:
        acting = _acting(request)
        applied = actions.do_apply_due_transfers(acting_user=acting)
        self.message_user(request, f"{len(applied)}件の人事異動を発令しました。")


# --- API tokens ------------------------------------------------------------------------------


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedModelAdmin):
    """Read-only: tokens are issued on the account pages (the secret is shown once)."""

    list_display = ("name", "user", "prefix", "created_at", "expires_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix", "user__username")
    list_select_related = ("user",)
    actions = ("revoke_tokens",)
    exclude = ("digest",)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="選択したトークンを失効させる")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        acting = _acting(request)
        revoked = sum(do_revoke_token(token, acting_user=acting) for token in queryset)
        self.message_user(request, f"{revoked}件のトークンを失効させました。")


# --- Accounts ---------------------------------------------------------------------------------


class SetPasswordForm(forms.Form):
    password1 = forms.CharField(
        label="新しいパスワード", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password2 = forms.CharField(
        label="新しいパスワード（確認）",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, user: User, *args: Any, **kwargs: Any) -> None:
        self.user = user
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, second = data.get("password1"), data.get("password2")
        if first and second and first != second:
            raise forms.ValidationError("確認のパスワードが一致しません。")
        if first:
            try:
                validate_password(first, self.user)
            except ValidationError as exc:
                raise forms.ValidationError(list(exc.messages)) from None
        return data


@admin.register(User)
class UserAdmin(AuditedModelAdmin):
    """Accounts: names and e-mail here; a first or forgotten password is set with
    「パスワードを設定」(all the person's sessions end).  Deactivation, unlocking and the
    second factor are on the account pages (/account/admin/users/)."""

    list_display = ("username", "display_name", "kind", "is_active", "is_staff", "last_login")
    list_filter = ("kind", "is_active", "is_staff")
    search_fields = ("username", "display_name", "email", "staff__employee_number")
    fields = (
        "username",
        "display_name",
        "email",
        "language",
        "kind",
        "is_active",
        "is_staff",
        "is_superuser",
        "date_joined",
        "last_login",
        "password_link",
    )
    readonly_fields = (
        "username",
        "kind",
        "is_active",
        "is_staff",
        "is_superuser",
        "date_joined",
        "last_login",
        "password_link",
    )

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        # Accounts come with staff (職員) and guests (ゲスト); add those instead.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The audit log refers to accounts: deactivate instead.
        return False

    @admin.display(description="パスワード")
    def password_link(self, obj: User) -> str:
        state = (
            "設定済み"
            if obj.has_usable_password()
            else "未設定（パスワードではサインインできません）"
        )
        url = reverse("admin:directory_user_password", args=[obj.pk])
        return format_html('{} — <a href="{}">パスワードを設定</a>', state, url)

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:user_id>/password/",
                self.admin_site.admin_view(self.set_password_view),
                name="directory_user_password",
            )
        ]
        return own + super().get_urls()

    def set_password_view(self, request: HttpRequest, user_id: int) -> HttpResponse:
        target = User.objects.filter(pk=user_id).first()
        if target is None:
            raise Http404
        form = SetPasswordForm(target, request.POST or None)
        if request.method == "POST" and form.is_valid() and isinstance(request.user, User):
            do_change_password(
                target,
                form.cleaned_data["password1"],
                acting_user=request.user,
                keep_session_key=None,
            )
            self.message_user(request, f"{target} のパスワードを設定しました。")
            return redirect("admin:directory_user_change", target.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"{target} のパスワードを設定",
            "form": form,
            "target": target,
            "opts": self.opts,
        }
        return TemplateResponse(request, "directory/admin_set_password.html", context)
