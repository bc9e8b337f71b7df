"""稼働率: the utilisation page (tables and inline SVG charts), its CSV and the printable
monthly PDF report.  Facility managers and IT administrators only.

The charts are drawn here as SVG strings (no JavaScript, no chart library: light
clients, closed network); each chart carries a title and description and is followed by
a table holding the same figures, so a screen reader loses nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.http import require_GET

from yakuba.directory.models import Department, User
from yakuba.lib import clock
from yakuba.lib.pdf import JapanesePDF, PdfFontMissing
from yakuba.lib.spreadsheet import excel_safe
from yakuba.lib.wareki import wareki, wareki_year
from yakuba.rooms import utilisation
from yakuba.rooms.access import access_facility_management
from yakuba.rooms.models import Building, Floor, Room
from yakuba.rooms.utilisation import HOURS, WEEKDAYS, Filters, Report, percent, weekday_label

MAX_DAYS = 366
# The years a report may cover: beyond them dates overflow (year 10000) or mean nothing.
MIN_YEAR, MAX_YEAR = 2000, 2999


class AnalyticsForm(forms.Form):
    start = forms.DateField(label="開始日", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="終了日", widget=forms.DateInput(attrs={"type": "date"}))
    building = forms.ModelChoiceField(
        label="建物", queryset=Building.objects.all(), required=False, empty_label="すべて"
    )
    floor = forms.ModelChoiceField(
        label="フロア",
        queryset=Floor.objects.select_related("building"),
        required=False,
        empty_label="すべて",
    )
    room = forms.ModelChoiceField(
        label="会議室",
        queryset=Room.objects.filter(is_active=True),
        required=False,
        empty_label="すべて",
    )
    department = forms.ModelChoiceField(
        label="主催者の所属",
        queryset=Department.objects.order_by("code"),
        required=False,
        empty_label="すべて",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        for name in ("start", "end"):
            value = data.get(name)
            if value is not None and not MIN_YEAR <= value.year <= MAX_YEAR:
                self.add_error(
                    name,
                    _("%(min)d年から%(max)d年までの日付を指定してください。")
                    % {"min": MIN_YEAR, "max": MAX_YEAR},
                )
                data.pop(name, None)
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                raise forms.ValidationError("終了日は開始日以降にしてください。")
            if (end - start).days >= MAX_DAYS:
                raise forms.ValidationError(f"期間は{MAX_DAYS}日以内にしてください。")
        return data

    def filters(self) -> Filters:
        data = self.cleaned_data

        def pk(name: str) -> int | None:
            value = data.get(name)
            return value.pk if value is not None else None

        return Filters(
            building_id=pk("building"),
            floor_id=pk("floor"),
            room_id=pk("room"),
            department_id=pk("department"),
        )


def _acting(request: HttpRequest) -> User:
    """The signed-in facility manager (``access_facility_management`` has passed)."""
    assert isinstance(request.user, User)
    return request.user


def _form(request: HttpRequest) -> AnalyticsForm:
    """The filter form, defaulting to this month."""
    today = clock.today()
    first, last = utilisation.month_bounds(today.year, today.month)
    data: dict[str, str] = {"start": first.isoformat(), "end": last.isoformat()}
    data.update({key: request.GET.get(key, "") for key in request.GET if request.GET.get(key)})
    return AnalyticsForm(data)


def _requested_report(request: HttpRequest) -> tuple[AnalyticsForm, utilisation.Report | None]:
    """The page's and the CSV's report for the filters asked (facility managers only);
    None when the filters are invalid (the form says why)."""
    access_facility_management(request.user, "rooms.analytics")
    form = _form(request)
    if not form.is_valid():
        return form, None
    data = form.cleaned_data
    return form, utilisation.compute(data["start"], data["end"], form.filters())


@login_required
@require_GET
def analytics(request: HttpRequest) -> HttpResponse:
    form, report = _requested_report(request)
    if report is None:
        context = {"active_nav": "rooms", "form": form, "report": None}
        return render(request, "rooms/analytics/analytics.html", context, status=400)
    query = request.GET.copy()
    return render(
        request,
        "rooms/analytics/analytics.html",
        {
            "active_nav": "rooms",
            "form": form,
            "report": report,
            "view": _report_view(report),
            "room_chart": room_chart(report),
            "heat_chart": heat_chart(report),
            "query": query.urlencode(),
            "month": report.start.strftime("%Y-%m"),
        },
    )


def _report_view(report: Report) -> dict[str, Any]:
    """Rows shaped for the template (formatted strings)."""

    def shape(rows: list[utilisation.Row]) -> list[dict[str, Any]]:
        return [_row(row.label, row.figures) for row in rows]

    return {
        "total": _row(_("合計"), report.total),
        "rooms": shape(report.rooms),
        "floors": shape(report.floors),
        "departments": shape(report.departments),
        "hours": shape(report.hours),
        "heat_rows": [
            {
                "weekday": weekday_label(weekday),
                "cells": [percent(report.heat[weekday][hour]) for hour in HOURS],
            }
            for weekday in WEEKDAYS
        ],
        "hour_labels": [f"{hour}時" for hour in HOURS],
        "period": f"{wareki(report.start)}〜{wareki(report.end)}",
        "closed_days": [f"{wareki(day)} {name}" for day, name in report.closed_days],
    }


def _row(label: str, figures: utilisation.Figures) -> dict[str, Any]:
    return {
        "label": label,
        "available": utilisation.hours(figures.available),
        "booked": utilisation.hours(figures.booked),
        "used": utilisation.hours(figures.used),
        "released": utilisation.hours(figures.released),
        "bookings": figures.bookings,
        "no_show_rate": percent(figures.no_show_rate),
        "utilisation": percent(figures.utilisation),
        "booking_rate": percent(figures.booking_rate),
    }


# --- SVG ------------------------------------------------------------------------------

ROOM_CHART_DESC = gettext_noop(
    "濃い棒が稼働率（利用時間÷利用可能時間）、薄い棒が予約率です。同じ数値を下の表に示します。"
)
HEAT_CHART_TITLE = gettext_noop("曜日・時間帯ごとの利用率（ヒートマップ）")
HEAT_CHART_DESC = gettext_noop(
    "色が濃いほど、その曜日・時間帯に会議室が使われています。同じ数値を下の表に示します。"
)


def room_chart(report: Report) -> SafeString:
    """Horizontal bars: booking rate (light) behind utilisation (dark), per room."""
    label_width, bar_width, row_height = 220, 400, 26
    height = 40 + row_height * len(report.rooms)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {label_width + bar_width + 80} {height}" '
        f'width="{label_width + bar_width + 80}" height="{height}" '
        f'aria-labelledby="room-chart-title room-chart-desc">',
        f'<title id="room-chart-title">{escape(_("会議室ごとの稼働率"))}</title>',
        f'<desc id="room-chart-desc">{escape(_(ROOM_CHART_DESC))}</desc>',
    ]
    for index, row in enumerate(report.rooms):
        y = 30 + index * row_height
        booked = min(1.0, row.figures.booking_rate or 0.0)
        used = min(1.0, row.figures.utilisation or 0.0)
        parts.append(
            f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end" font-size="13">'
            f"{escape(row.label)}</text>"
            f'<rect x="{label_width}" y="{y}" width="{bar_width}" height="20" fill="#eeeeee"/>'
            f'<rect x="{label_width}" y="{y}" width="{booked * bar_width:.1f}" height="20" '
            f'fill="#9ecae1"/>'
            f'<rect x="{label_width}" y="{y + 5}" width="{used * bar_width:.1f}" height="10" '
            f'fill="#08519c"/>'
            f'<text x="{label_width + bar_width + 6}" y="{y + 15}" font-size="13">'
            f"{percent(row.figures.utilisation)}</text>"
        )
    legend_y = 12
    parts.append(
        f'<rect x="{label_width}" y="{legend_y - 9}" width="12" height="10" fill="#08519c"/>'
        f'<text x="{label_width + 16}" y="{legend_y}" font-size="12">{escape(_("稼働率"))}</text>'
        f'<rect x="{label_width + 90}" y="{legend_y - 9}" width="12" height="10" fill="#9ecae1"/>'
        f'<text x="{label_width + 106}" y="{legend_y}" font-size="12">{escape(_("予約率"))}</text>'
    )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308  (every text above is escaped)


HEAT_STEPS = (
    (0.0, "#f7fbff"),
    (0.2, "#c6dbef"),
    (0.4, "#6baed6"),
    (0.6, "#2171b5"),
    (0.8, "#08306b"),
)


def heat_colour(share: float | None) -> str:
    if share is None:
        return "#ffffff"
    colour = HEAT_STEPS[0][1]
    for threshold, step in HEAT_STEPS:
        if share >= threshold:
            colour = step
    return colour


def heat_chart(report: Report) -> SafeString:
    """Weekday × hour grid of the used share, with a legend of its five steps."""
    left, top, cell_w, cell_h = 40, 24, 44, 28
    width = left + cell_w * len(HOURS) + 10
    height = top + cell_h * len(WEEKDAYS) + 50
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-labelledby="heat-chart-title heat-chart-desc">',
        f'<title id="heat-chart-title">{escape(_(HEAT_CHART_TITLE))}</title>',
        f'<desc id="heat-chart-desc">{escape(_(HEAT_CHART_DESC))}</desc>',
    ]
    for column, hour in enumerate(HOURS):
        parts.append(
            f'<text x="{left + column * cell_w + cell_w / 2}" y="{top - 8}" '
            f'text-anchor="middle" font-size="12">{hour}</text>'
        )
    for row, weekday in enumerate(WEEKDAYS):
        y = top + row * cell_h
        parts.append(
            f'<text x="{left - 8}" y="{y + cell_h / 2 + 5}" text-anchor="end" font-size="13">'
            f"{weekday_label(weekday)}</text>"
        )
        for column, hour in enumerate(HOURS):
            share = report.heat[weekday][hour]
            parts.append(
                f'<rect x="{left + column * cell_w}" y="{y}" width="{cell_w - 2}" '
                f'height="{cell_h - 2}" fill="{heat_colour(share)}" stroke="#cccccc">'
                f"<title>{weekday_label(weekday)} {hour}時 {percent(share)}</title></rect>"
            )
    legend_y = top + cell_h * len(WEEKDAYS) + 16
    for index, (threshold, colour) in enumerate(HEAT_STEPS):
        x = left + index * 90
        parts.append(
            f'<rect x="{x}" y="{legend_y}" width="16" height="16" fill="{colour}" '
            f'stroke="#cccccc"/><text x="{x + 20}" y="{legend_y + 13}" font-size="12">'
            f"{threshold * 100:.0f}%〜</text>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308  (every text above is escaped)


# --- CSV ------------------------------------------------------------------------------

CSV_HEADER = [
    "区分",
    "名称",
    "利用可能時間",
    "予約時間",
    "利用時間",
    "自動解放時間",
    "予約件数",
    "未使用率",
    "稼働率",
    "予約率",
]


def report_csv(report: Report) -> bytes:
    """UTF-8 with a byte-order mark so that Excel reads the Japanese; every cell through
    ``excel_safe`` (room and 所属 names are typed by people)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    sections: list[tuple[str, list[utilisation.Row]]] = [
        ("合計", [utilisation.Row(0, "合計", report.total)]),
        ("会議室", report.rooms),
        ("フロア", report.floors),
        ("所属", report.departments),
        ("時間帯", report.hours),
    ]
    for kind, rows in sections:
        for row in rows:
            f = row.figures
            cells = [
                kind,
                row.label,
                utilisation.hours(f.available),
                utilisation.hours(f.booked),
                utilisation.hours(f.used),
                utilisation.hours(f.released),
                str(f.bookings),
                percent(f.no_show_rate),
                percent(f.utilisation),
                percent(f.booking_rate),
            ]
            writer.writerow([excel_safe(cell) for cell in cells])
    for weekday in WEEKDAYS:
        for hour in HOURS:
            writer.writerow(
                [
                    excel_safe(cell)
                    for cell in (
                        "曜日×時間帯",
                        f"{weekday_label(weekday)} {hour}時",
                        "",
                        "",
                        "",
                        "",
                        "",
                        "",
                        percent(report.heat[weekday][hour]),
                        "",
                    )
                ]
            )
    return "\ufeff".encode() + out.getvalue().encode()


@login_required
@require_GET
def analytics_csv(request: HttpRequest) -> HttpResponse:
    form, report = _requested_report(request)
    if report is None:
        context = {"active_nav": "rooms", "form": form, "report": None}
        return render(request, "rooms/analytics/analytics.html", context, status=400)
    utilisation.do_record_export(report, "csv", acting_user=_acting(request))
    response = HttpResponse(report_csv(report), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="room-utilisation-{report.start:%Y%m%d}-{report.end:%Y%m%d}.csv"'
    )
    return response


# --- PDF ------------------------------------------------------------------------------

MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def report_title(start: dt.date) -> str:
    return f"会議室稼働率月報 {wareki_year(start)}{start.month}月"


def report_pdf_bytes(report: Report) -> bytes:
    """The monthly report (A4 portrait): title, period, totals, rooms, heat map."""
    title = report_title(report.start)
    pdf = JapanesePDF(title=title, footer_text=title)
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.japanese(16)
    pdf.cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
    pdf.japanese(10)
    lines = [
        f"対象期間: {wareki(report.start)}〜{wareki(report.end)}"
        f"（稼働日 {len(report.working_days)}日。土日 {report.weekend_days}日と"
        f"祝日・休庁日 {len(report.closed_days)}日を除く）",
        f"作成: {wareki(clock.today())} {clock.local(clock.now()):%H:%M}",
    ]
    t = report.total
    lines.append(
        f"利用可能 {utilisation.hours(t.available)}時間 / 予約 {utilisation.hours(t.booked)}時間 / "
        f"利用 {utilisation.hours(t.used)}時間 / 自動解放 {utilisation.hours(t.released)}時間"
    )
    lines.append(
        f"稼働率 {percent(t.utilisation)} / 予約率 {percent(t.booking_rate)} / "
        f"未使用率 {percent(t.no_show_rate)} / 予約 {t.bookings}件"
    )
    for line in lines:
        pdf.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.japanese(9)
    widths = (58, 20, 20, 20, 20, 17, 17, 18)
    header = ("会議室", "利用可能h", "予約h", "利用h", "解放h", "稼働率", "予約率", "未使用率")
    pdf.set_fill_color(230, 230, 230)
    for width, text in zip(widths, header, strict=True):
        pdf.cell(width, 7, text, border=1, align="C", fill=True)
    pdf.ln()
    for row in report.rooms:
        f = row.figures
        cells = (
            row.label,
            utilisation.hours(f.available),
            utilisation.hours(f.booked),
            utilisation.hours(f.used),
            utilisation.hours(f.released),
            percent(f.utilisation),
            percent(f.booking_rate),
            percent(f.no_show_rate),
        )
        for index, (width, text) in enumerate(zip(widths, cells, strict=True)):
            pdf.cell(width, 6, text, border=1, align="L" if index == 0 else "R")
        pdf.ln()
    pdf.ln(5)
    pdf.japanese(11)
    pdf.cell(0, 8, "曜日・時間帯ごとの利用率", new_x="LMARGIN", new_y="NEXT")
    _pdf_heat(pdf, report)
    return pdf.pdf_bytes()


def _pdf_heat(pdf: JapanesePDF, report: Report) -> None:
    pdf.japanese(8)
    x0, cell_w, cell_h = pdf.l_margin + 10, 14, 8
    if pdf.get_y() + cell_h * 8 > pdf.h - 20:
        pdf.add_page()
    y0 = pdf.get_y()
    for column, hour in enumerate(HOURS):
        pdf.set_xy(x0 + column * cell_w, y0)
        pdf.cell(cell_w, 5, f"{hour}時", align="C")
    y0 += 5
    for row, weekday in enumerate(WEEKDAYS):
        y = y0 + row * cell_h
        pdf.set_xy(pdf.l_margin, y)
        pdf.cell(10, cell_h, weekday_label(weekday), align="C")
        for column, hour in enumerate(HOURS):
            share = report.heat[weekday][hour]
            colour = heat_colour(share).lstrip("#")
            red, green, blue = (int(colour[i : i + 2], 16) for i in (0, 2, 4))
            pdf.set_fill_color(red, green, blue)
            pdf.set_text_color(*((255, 255, 255) if (share or 0) >= 0.6 else (0, 0, 0)))
            pdf.set_xy(x0 + column * cell_w, y)
            pdf.cell(cell_w, cell_h, percent(share), border=1, align="C", fill=True)
    pdf.set_text_color(0, 0, 0)
    pdf.set_xy(pdf.l_margin, y0 + cell_h * len(WEEKDAYS) + 3)
    for threshold, colour in HEAT_STEPS:
        hex_ = colour.lstrip("#")
        pdf.set_fill_color(*(int(hex_[i : i + 2], 16) for i in (0, 2, 4)))
        pdf.cell(5, 5, "", border=1, fill=True)
        pdf.cell(20, 5, f" {threshold * 100:.0f}%〜")


@login_required
@require_GET
def report_pdf(request: HttpRequest) -> HttpResponse:
    access_facility_management(request.user, "rooms.analytics")
    match = MONTH.fullmatch(request.GET.get("month", ""))
    if (
        match is None
        or not 1 <= int(match.group(2)) <= 12
        or not MIN_YEAR <= int(match.group(1)) <= MAX_YEAR
    ):
        return HttpResponse(
            _("月を 2025-06 の形で指定してください。"),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    start, end = utilisation.month_bounds(int(match.group(1)), int(match.group(2)))
    form = _form(request)
    if not form.is_valid():  # a filter naming no building, floor, room or 所属
        return HttpResponse(
            "\n".join(str(message) for messages in form.errors.values() for message in messages),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    report = utilisation.compute(start, end, form.filters())
    try:
        content = report_pdf_bytes(report)
    except PdfFontMissing as exc:
        # The operator's to fix (YAKUBA_PDF_FONT): say so instead of a bare 500.
        return HttpResponse(str(exc), status=503, content_type="text/plain; charset=utf-8")
    utilisation.do_record_export(report, "pdf", acting_user=_acting(request))
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="room-report-{start:%Y-%m}.pdf"'
    return response


urlpatterns: list[URLPattern] = [
    path("analytics/", analytics, name="analytics"),
    path("analytics.csv", analytics_csv, name="analytics_csv"),
    path("analytics/report.pdf", report_pdf, name="report_pdf"),
]
