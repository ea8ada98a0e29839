"""``/admin/reports``: documents and deliveries per agency, level and period; CSV and xlsx."""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.console.auth import require_user
from gateway.console.chart import series_chart
from gateway.console.context import REPORT_CACHE
from gateway.console.render import render, translator
from gateway.console.report_cache import Role
from gateway.console.report_export import to_csv, to_xlsx
from gateway.console.reports import (
    COUNTED,
    Granularity,
    Report,
    ReportRequest,
    build_report,
    report_request,
)
from gateway.core.errors import InputError
from gateway.web.keys import DIRECTORY

routes = web.RouteTableDef()
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def _report(request: web.Request, wanted: ReportRequest) -> Report:
    totals = await request.app[REPORT_CACHE].totals(
        wanted.role, wanted.first, wanted.last, organ=wanted.organ
    )
    names = {p.organ_id: p.name for p in request.config_dict[DIRECTORY].current}
    return build_report(wanted, totals, names)


@routes.get("/reports")
async def reports_page(request: web.Request) -> web.Response:
    await require_user(request)
    try:
        wanted = report_request(request.query)
    except InputError as exc:
        return render(
            request,
            "reports.html",
            status=400,
            error=exc.message,
            report=None,
            chart=None,
            roles=list(Role),
            granularities=list(Granularity),
            counted=COUNTED,
        )
    report = await _report(request, wanted)
    chart = series_chart([(b.label, b.documents, b.delivered) for b in report.buckets])
    return render(
        request,
        "reports.html",
        error=None,
        report=report,
        chart=chart,
        roles=list(Role),
        granularities=list(Granularity),
        counted=COUNTED,
    )


def _filename(wanted: ReportRequest, suffix: str) -> str:
    organ = f"-{wanted.organ}" if wanted.organ else ""
    return f"bao-cao-{wanted.role.value}{organ}-{wanted.first}-{wanted.last}.{suffix}"


@routes.get("/reports/export.{format:(csv|xlsx)}")
async def report_export(request: web.Request) -> web.Response:
    await require_user(request)
    wanted = report_request(request.query)
    report = await _report(request, wanted)
    t = translator(request)
    if request.match_info["format"] == "csv":
        body, content_type = to_csv(report, t), "text/csv"
        suffix = "csv"
    else:
        body, content_type = await asyncio.to_thread(to_xlsx, report, t), XLSX
        suffix = "xlsx"
    return web.Response(
        body=body,
        content_type=content_type,
        charset=("utf-8" if suffix == "csv" else None),
        headers={"Content-Disposition": f'attachment; filename="{_filename(wanted, suffix)}"'},
    )
