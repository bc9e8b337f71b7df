"""Chat in the Django admin, for IT administrators.

Conversations: an IT administrator finds any conversation (by kind, archived or not),
sees its members and sequence counters, and may change its name, description and 既読
setting or archive it.  Those changes go through the conversation actions
(``do_change_conversation``, ``do_archive``, ``do_unarchive``), which validate them,
audit them as ``CHAT_CONVERSATION_CHANGED`` / ``CHAT_ARCHIVED`` / ``CHAT_UNARCHIVED`` and
tell the members; conversations are never added or deleted here (messages are kept for
disclosure until retention removes them).  Members, incoming webhooks and presence are
read-only: members follow the directory or the channel's owners, webhooks are made and
revoked on the channel's settings page (the secret is shown once there; only its digest
is stored), presence is each person's own.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from yakuba.chat.actions import ChatError
from yakuba.chat.actions.conversations import do_archive, do_change_conversation, do_unarchive
from yakuba.chat.models import Conversation, IncomingWebhook, Membership, Presence
from yakuba.directory.admin import ItAdminOnly
from yakuba.directory.models import User
from yakuba.rooms.admin import ReadOnlyAdmin

# The fields an IT administrator may change, each through ``do_change_conversation``.
EDITABLE = ("name", "description", "read_receipts")


def _acting(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


class ArchivedFilter(admin.SimpleListFilter):
    title = gettext_lazy("アーカイブ")
    parameter_name = "archived"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", _("アーカイブ済み")), ("no", _("利用中"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(archived_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(archived_at__isnull=True)
        return queryset


def _changes(form: forms.BaseForm) -> dict[str, Any]:
    return {name: form.cleaned_data[name] for name in EDITABLE if name in form.changed_data}


class ConversationForm(ModelForm):  # type: ignore[type-arg]  # any model form
    """Checks a change with the action itself (rolled back), so a refusal shows on the
    form in the action's words instead of after a half-done save."""

    acting_user: User | None = None

    class Meta:
        model = Conversation
        fields = EDITABLE

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        changes = _changes(self)
        if self.instance.pk is None or not changes or self.acting_user is None:
            return cleaned
        try:
            with transaction.atomic():
                current = Conversation.objects.get(pk=self.instance.pk)
                do_change_conversation(current, acting_user=self.acting_user, **changes)
                transaction.set_rollback(True)
        except ChatError as error:
            field = error.field if error.field in EDITABLE else None
            self.add_error(field, error.message)
        return cleaned


@admin.register(Conversation)
class ConversationAdmin(ItAdminOnly, admin.ModelAdmin):  # type: ignore[type-arg]  # any model
    form = ConversationForm
    list_display = (
        "__str__",
        "kind",
        "is_private",
        "member_count",
        "read_receipts",
        "archived_at",
        "last_message_at",
        "legal_hold",
    )
    list_filter = ("kind", ArchivedFilter, "is_private", "legal_hold")
    search_fields = ("name", "description", "department__code", "department__name")
    list_select_related = ("department",)
    readonly_fields = (
        "kind",
        "department",
        "is_private",
        "direct_key",
        "retention_days",
        "legal_hold",
        "archived_at",
        "created_by",
        "created_at",
        "last_seq",
        "last_message_at",
        "members_link",
    )
    fields = (
        "kind",
        "name",
        "description",
        "department",
        "is_private",
        "read_receipts",
        "direct_key",
        "retention_days",
        "legal_hold",
        "archived_at",
        "created_by",
        "created_at",
        "last_seq",
        "last_message_at",
        "members_link",
    )
    actions = ("archive_selected", "unarchive_selected")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        queryset: QuerySet[Conversation] = super().get_queryset(request)
        return queryset.annotate(member_total=Count("memberships"))

    def get_form(
        self, request: HttpRequest, obj: Any | None = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm[Any]]:
        form = super().get_form(request, obj, change, **kwargs)
        return type("BoundConversationForm", (form,), {"acting_user": _acting(request)})

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=gettext_lazy("参加者数"), ordering="member_total")
    def member_count(self, obj: Conversation) -> int:
        return int(getattr(obj, "member_total", 0))

    @admin.display(description=gettext_lazy("参加者"))
    def members_link(self, obj: Conversation) -> SafeString | str:
        if not obj.pk:
            return "—"
        url = reverse("admin:chat_membership_changelist") + f"?conversation__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, _("参加者の一覧"))

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        changes = _changes(form)
        if changes:
            current = Conversation.objects.get(pk=obj.pk)
            do_change_conversation(current, acting_user=_acting(request), **changes)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Nothing related is edited here."""

    def _each(self, request: HttpRequest, queryset: QuerySet[Conversation], archive: bool) -> None:
        done = 0
        for conversation in queryset:
            try:
                if archive:
                    done += do_archive(conversation, acting_user=_acting(request))
                else:
                    done += do_unarchive(conversation, acting_user=_acting(request))
            except ChatError as error:
                self.message_user(request, f"{conversation}: {error.message}", messages.ERROR)
        if done:
            text = (
                _("%(count)d件をアーカイブしました。")
                if archive
                else _("%(count)d件のアーカイブを解除しました。")
            )
            self.message_user(request, text % {"count": done}, messages.SUCCESS)

    @admin.action(description=gettext_lazy("選択した会話をアーカイブする"))
    def archive_selected(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._each(request, queryset, archive=True)

    @admin.action(description=gettext_lazy("選択した会話のアーカイブを解除する"))
    def unarchive_selected(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        self._each(request, queryset, archive=False)


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ("user", "conversation", "role", "joined_at", "notify", "muted", "last_read_seq")
    list_filter = ("role", "conversation__kind", "notify")
    list_select_related = ("user", "conversation")
    search_fields = ("user__username", "user__display_name", "conversation__name")
    raw_id_fields = ("user", "conversation")


@admin.register(IncomingWebhook)
class IncomingWebhookAdmin(ReadOnlyAdmin):
    list_display = ("name", "conversation", "prefix", "created_by", "created_at", "revoked_at")
    list_filter = ("revoked_at",)
    list_select_related = ("conversation", "created_by")
    search_fields = ("name", "prefix", "conversation__name")
    raw_id_fields = ("conversation", "created_by")


@admin.register(Presence)
class PresenceAdmin(ReadOnlyAdmin):
    list_display = ("user", "status", "message", "online", "idle", "seen_at", "changed_at")
    list_filter = ("status", "online")
    list_select_related = ("user",)
    search_fields = ("user__username", "user__display_name")
    raw_id_fields = ("user",)
