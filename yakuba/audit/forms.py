"""The auditor's search form."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from yakuba.audit.access import AuditFilters
from yakuba.audit.models import AuditAction


class AuditSearchForm(forms.Form):
    person = forms.CharField(label=_("操作者（氏名・ユーザー名）"), max_length=100, required=False)
    action = forms.ChoiceField(
        label=_("操作"),
        required=False,
        choices=[("", _("すべての操作")), *AuditAction.choices],
    )
    target = forms.CharField(label=_("対象（名称・ID）"), max_length=100, required=False)
    date_from = forms.DateField(
        label=_("期間（開始日）"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=_("期間（終了日）"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and end < start:
            raise forms.ValidationError(_("終了日は開始日以降の日付にしてください。"))
        return data

    def filters(self) -> AuditFilters:
        data = self.cleaned_data
        return AuditFilters(
            person=data.get("person", "").strip(),
            action=data.get("action", ""),
            target=data.get("target", "").strip(),
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
        )
