"""A report as a table (one heading row, then agencies, levels and the province), in CSV or xlsx.

CSV is UTF-8 with a byte-order mark (so spreadsheet programs read Vietnamese correctly); the
spreadsheet is written by openpyxl with the report's title, period and note above the table.
"""

from __future__ import annotations

import csv
import io
import math

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from gateway.console.i18n import Translator
from gateway.console.reports import COUNTED, Line, Report, export_rows

Cell = str | int | float | None


def headings(report: Report, t: Translator) -> list[str]:
    role = report.request.role.value
    names = [t(f"rep.documents.{role}") if c == "documents" else t(f"rep.{c}") for c in COUNTED]
    statuses = [f"{t(f'rep.statuses.{role}')}: {t.status(code)}" for code in report.status_codes]
    return [
        t("rep.organ_id"),
        t("rep.organ_name"),
        t("rep.level"),
        *names,
        *statuses,
        f"{t('rep.median')} (s)",
        f"{t('rep.p95')} (s)",
    ]


def _seconds(value: float | None) -> Cell:
    if value is None:
        return None
    return ">86400" if math.isinf(value) else round(value, 1)


def cells(report: Report, line: Line, t: Translator) -> list[Cell]:
    if line.scope == "total":
        organ, name, level = "", t("rep.total"), ""
    elif line.scope == "level":
        organ, name, level = "", t(f"level.{line.key}"), t(f"level.{line.key}")
    else:
        organ, name = line.key, line.name
        level = t(f"level.{line.level.value}") if line.level else ""
    return [
        organ,
        name,
        level,
        *(line[c] for c in COUNTED),
        *(line.statuses[code] for code in report.status_codes),
        _seconds(line.median_s),
        _seconds(line.p95_s),
    ]


def title(report: Report, t: Translator) -> list[str]:
    r = report.request
    lines = [
        t("rep.title"),
        t(f"rep.role.{r.role.value}"),
        t("rep.range", first=r.first.isoformat(), last=r.last.isoformat()),
    ]
    if r.organ:
        lines.append(f"{t('rep.organ_id')}: {r.organ}")
    return lines


def to_csv(report: Report, t: Translator) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headings(report, t))
    for line in export_rows(report):
        writer.writerow(["" if v is None else v for v in cells(report, line, t)])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(report: Report, t: Translator) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = t("nav.reports")[:31]
    for text in title(report, t):
        sheet.append([text])
    sheet["A1"].font = Font(bold=True, size=14)
    sheet.append([t("rep.note")])
    sheet.append([])
    header_row = sheet.max_row + 1
    head = headings(report, t)
    sheet.append(head)
    for heading in sheet[header_row]:
        heading.font = Font(bold=True)
    for line in export_rows(report):
        sheet.append(cells(report, line, t))
        if line.scope != "agency":
            for bold in sheet[sheet.max_row]:
                bold.font = Font(bold=True)
    for i, text in enumerate(head, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = max(10, min(40, len(text) + 2))
    sheet.freeze_panes = f"C{header_row + 1}"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
