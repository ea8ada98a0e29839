"""Benchmark: delivery-log search latency (the console's and ``lgsp log list``'s) at 1M documents.

Creates a fresh PostgreSQL database (``lgsp_bench_<random>``, dropped at the end unless
``--keep``), brings it to the current schema with ``DeliveryLog.open`` (the real migrations and
indexes), fills it in SQL (``INSERT ... SELECT`` over ``generate_series``, not the intake API)
with 1,000,000 documents, ~1.25 deliveries each and 3,000,000 events, then ANALYZE + VACUUM.

Senders, recipients and subjects are skewed (a few organs send and receive most documents, as a
province office does); received_at spreads over the last 365 days. Each search runs
``DeliveryLog.list_documents`` then ``DeliveryLog.count_documents`` (one page of the console or
of ``lgsp log list``) through the gateway's own code; its values rotate over busy and rare
senders, recipients, words, states and windows. Every filter is run once to warm up, then timed
``--repeat`` times. A "deep" page is offset 5000 (page 101 of 50).

Then a year's console report, per role (agencies as senders, as recipients), as the console
builds it: the report cache's first fill (every day of the year computed from the log, what
the console's background loop does once) is timed alone, then each report ``--repeat`` times.

    .venv/bin/python scripts/bench_admin.py [--quick] [--documents N] [--repeat N] [--keep]
        [--database lgsp_bench_xxxx [--reports-only]]
        [--pg-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]

The last line is one JSON object: one key per filter and report, each with ``p50_ms`` and
``p99_ms``, and ``report_cache_cold`` (days computed, seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gateway.console.report_cache import ReportCache, Role, today  # noqa: E402
from gateway.console.reports import Granularity, ReportRequest, build_report  # noqa: E402
from gateway.edxml.model import StatusCode  # noqa: E402
from gateway.store import DeliveryLog, DeliveryState, DocumentFilter  # noqa: E402
from gateway.store.tables import fold_text  # noqa: E402

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
FULL_DOCUMENTS = 1_000_000
QUICK_DOCUMENTS = 100_000
CHUNK = 100_000
ORGANS = 650  # a province: departments, districts, communes
DEEP_OFFSET = 5000
PAGE = 50
TARGET_P99_MS = 200.0
TARGET_REPORT_P99_MS = 1000.0

# (subject, weight): the skew puts the first ones in most documents.
SUBJECTS = (
    "Công văn về việc triển khai nhiệm vụ",
    "Giấy mời họp giao ban",
    "Quyết định phê duyệt kế hoạch",
    "Báo cáo tình hình kinh tế - xã hội",
    "Thông báo kết luận của Chủ tịch UBND tỉnh",
    "Tờ trình về việc đề nghị cấp kinh phí",
    "Kế hoạch tổ chức hội nghị",
    "Công văn đôn đốc thực hiện cải cách hành chính",
    "Quyết định về việc điều động cán bộ",
    "Báo cáo kết quả thực hiện chương trình nông thôn mới",
    "Chỉ thị về công tác phòng chống lụt bão",
    "Hướng dẫn thực hiện chế độ tiền lương",
    "Công văn về việc đăng ký đất đai",
    "Giấy mời dự lễ khởi công công trình",
    "Thông báo lịch tiếp công dân",
    "Đề án chuyển đổi số tỉnh Thanh Hóa",
)
SEARCH_WORDS = ("triển khai", "Giấy mời", "chuyển đổi số", "lụt bão", "đất đai", "tiếp công dân")

# Once per fill: the organs (0 = the busiest) and the subjects with their folded forms.
SETUP_SQL = (
    """CREATE UNLOGGED TABLE bench_organs AS
    SELECT (n - 1)::int AS idx, organ FROM unnest(CAST(:organs AS text[])) WITH ORDINALITY
        AS o(organ, n)""",
    """CREATE UNLOGGED TABLE bench_subjects AS
    SELECT (n - 1)::int AS idx, subject, folded
    FROM unnest(CAST(:subjects AS text[]), CAST(:folds AS text[])) WITH ORDINALITY
        AS s(subject, folded, n)""",
)


def uuid7_sql(seed: str, at: str) -> str:
    """SQL for a UUIDv7 as the gateway makes them: ``at``'s milliseconds, then md5(seed) bits."""
    return (
        f"(lpad(to_hex(floor(extract(epoch FROM {at}) * 1000)::bigint), 12, '0') || '7' "
        f"|| substr(md5({seed}), 1, 3) || '8' || substr(md5({seed}), 4, 15))::uuid::text"
    )


# Per chunk: one row per document with every random choice (the other inserts read it).
SOURCE_SQL = f"""CREATE UNLOGGED TABLE bench_src AS
    SELECT c.i, {uuid7_sql("'doc' || c.i", "c.received_at")} AS id,
           {uuid7_sql("'dl1' || c.i", "c.received_at")} AS dl1,
           {uuid7_sql("'dl2' || c.i", "c.received_at")} AS dl2,
           s.organ AS sender, r1.organ AS r1,
           r2.organ AS r2, CASE WHEN c.is_status THEN NULL ELSE subj.subject || ' số ' || c.i
           END AS subject, CASE WHEN c.is_status THEN NULL ELSE subj.folded || ' so ' || c.i
           END AS folded, c.received_at, c.u_state, c.u_status, c.is_status
    FROM (SELECT i, floor(CAST(:n_organs AS int) * power(random(), 3))::int AS sender,
                 floor(CAST(:n_organs AS int) * power(random(), 2))::int AS r1,
                 CASE WHEN random() < 0.25
                      THEN 1 + floor(random() * (CAST(:n_organs AS int) - 1))::int
                 END AS r2_step,
                 floor(CAST(:n_subjects AS int) * power(random(), 2))::int AS subj,
                 now() - interval '365 days' * (1 - i / CAST(:n AS float8))
                   - interval '1 s' * random() * 30 AS received_at,
                 random() AS u_state, random() AS u_status, random() < 0.1 AS is_status
          FROM generate_series(CAST(:lo AS int), CAST(:hi AS int)) AS i) AS c
    JOIN bench_organs AS s ON s.idx = c.sender
    JOIN bench_organs AS r1 ON r1.idx = c.r1
    LEFT JOIN bench_organs AS r2 ON r2.idx = (c.r1 + c.r2_step) % CAST(:n_organs AS int)
    JOIN bench_subjects AS subj ON subj.idx = c.subj"""
FILL_SQL = (
    """INSERT INTO packages (sha256, size_bytes, data, created_at)
    SELECT encode(sha256(('pkg' || i)::bytea), 'hex'), 20000 + (i % 500000),
           decode(md5(i::text), 'hex'), received_at FROM bench_src""",
    """INSERT INTO documents (id, dedup_key, kind, sender, document_id, business_doc_type,
        status_code, subject, subject_folded, package_sha256, format, signer_fingerprint,
        signer_subject, algorithm, caller, received_at)
    SELECT id, 'document|' || sender || '|' || i || '|0',
           CASE WHEN is_status THEN 'status' ELSE 'document' END, sender,
           sender || ',' || to_char(received_at, 'YYYY/MM/DD') || ',' || i || '/UBND-VP',
           CASE WHEN is_status THEN NULL ELSE '0' END, CASE WHEN is_status THEN '03' END,
           subject, folded, encode(sha256(('pkg' || i)::bytea), 'hex'), 'xml',
           repeat('ab', 32), 'CN=' || sender,
           'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256', sender, received_at
    FROM bench_src""",
    """INSERT INTO deliveries (id, document, recipient, method, state, attempts, last_error,
        business_status, business_status_at, created_at, updated_at, delivered_at,
        received_at, sender)
    SELECT dl1, id, r1, 'push', s.state,
           CASE WHEN s.state IN ('dead_lettered', 'failed') THEN 6 ELSE 1 END,
           CASE WHEN s.state IN ('dead_lettered', 'failed') THEN 'http.503: unavailable' END,
           CASE WHEN s.state = 'delivered' THEN b.code END,
           CASE WHEN s.state = 'delivered' AND b.code IS NOT NULL
                THEN received_at + interval '2 hours' END,
           received_at, received_at + interval '1 minute',
           CASE WHEN s.state = 'delivered' THEN received_at + interval '1 s' END,
           received_at, sender
    FROM bench_src,
         LATERAL (SELECT CASE WHEN u_state < 0.90 THEN 'delivered' WHEN u_state < 0.93
             THEN 'queued' WHEN u_state < 0.95 THEN 'retrying' WHEN u_state < 0.97
             THEN 'dead_lettered' WHEN u_state < 0.98 THEN 'failed' ELSE 'accepted' END
             AS state) AS s,
         LATERAL (SELECT CASE WHEN u_status < 0.5 THEN '03' WHEN u_status < 0.7 THEN '05'
             WHEN u_status < 0.8 THEN '06' WHEN u_status < 0.85 THEN '02' END AS code) AS b""",
    """INSERT INTO deliveries (id, document, recipient, method, state, attempts,
        created_at, updated_at, delivered_at, received_at, sender)
    SELECT dl2, id, r2, 'mailbox', 'delivered', 1, received_at, received_at,
           received_at + interval '1 s', received_at, sender
    FROM bench_src WHERE r2 IS NOT NULL""",
    """INSERT INTO events (document, delivery, at, kind, outcome, detail, actor)
    SELECT id, d, received_at + step * interval '1 s', kind, outcome, detail, actor
    FROM bench_src,
         LATERAL (VALUES
           (0, NULL, 'received', 'accepted', '{"recipients": 1}', 'client'),
           (1, dl1, 'published', 'confirmed', '{}', 'gateway'),
           (2, dl1, 'delivered', 'delivered', '{"message": "200"}', 'worker'))
           AS e(step, d, kind, outcome, detail, actor)
    ORDER BY i, step""",
    "DROP TABLE bench_src",
)


def organ_ids() -> list[str]:
    """The province (busiest), the demo organs, then synthetic departments/districts/communes."""
    demo = ["000.00.00.H56", "000.00.04.H56", "000.00.15.H56", "000.01.15.H56", "000.00.00.A56"]
    synthetic = [f"000.{a:02d}.{b:02d}.H56" for a in range(2, 40) for b in range(1, 30)]
    return (demo + synthetic)[:ORGANS]


async def create_database(admin: AsyncEngine, name: str) -> None:
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))


async def drop_database(admin: AsyncEngine, name: str) -> None:
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def fill(url: str, documents: int) -> None:
    """Documents, deliveries and events in chunks, then statistics and the visibility map."""
    engine = create_async_engine(url)
    organs = organ_ids()
    try:
        async with engine.begin() as conn:
            await conn.execute(text(SETUP_SQL[0]), {"organs": organs})
            await conn.execute(
                text(SETUP_SQL[1]),
                {"subjects": list(SUBJECTS), "folds": [fold_text(s) for s in SUBJECTS]},
            )
        for lo in range(1, documents + 1, CHUNK):
            hi = min(lo + CHUNK - 1, documents)
            started = time.perf_counter()
            async with engine.begin() as conn:
                await conn.execute(text("SET LOCAL synchronous_commit = off"))
                await conn.execute(text("SELECT setseed(:seed)"), {"seed": lo / (documents + 1)})
                await conn.execute(
                    text(SOURCE_SQL),
                    {
                        "n_organs": len(organs),
                        "n_subjects": len(SUBJECTS),
                        "n": documents,
                        "lo": lo,
                        "hi": hi,
                    },
                )
                for statement in FILL_SQL:
                    await conn.execute(text(statement))
            print(
                f"  filled documents {lo}-{hi} in {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        async with autocommit.connect() as conn:
            await conn.execute(text("DROP TABLE bench_organs, bench_subjects"))
            await conn.execute(text("VACUUM ANALYZE"))
            await report_sizes(conn)
    finally:
        await engine.dispose()


async def report_sizes(conn: AsyncConnection) -> None:
    rows = await conn.execute(
        text(
            "SELECT relname, n_live_tup, pg_size_pretty(pg_total_relation_size(relid)) AS size "
            "FROM pg_stat_user_tables ORDER BY relname"
        )
    )
    for row in rows:
        print(f"  {row.relname:<16} {row.n_live_tup:>10} rows  {row.size}", file=sys.stderr)


Factory = Callable[[int], DocumentFilter]


def filters(sample: dict[str, list[str]], now: datetime) -> dict[str, Factory]:
    """Filter name -> the k-th search of that kind (values rotate through ``sample``)."""
    senders, recipients = sample["senders"], sample["recipients"]
    busy = sample["busy"]
    doc_ids = sample["document_ids"]
    states = list(DeliveryState)
    codes = [StatusCode.ACCEPTANCE, StatusCode.PROCESSING, StatusCode.FINISH, StatusCode.REJECTION]

    def pick(values: list[str], k: int) -> str:
        return values[k % len(values)]

    def window(k: int, days: int = 7) -> tuple[datetime, datetime]:
        start = now - timedelta(days=5 + (k * 37) % 350)
        return start, start + timedelta(days=days)

    def dated(k: int, **kw: object) -> DocumentFilter:
        since, until = window(k)
        return DocumentFilter(since=since, until=until, **kw)  # type: ignore[arg-type]

    return {
        "unfiltered": lambda _k: DocumentFilter(),
        "unfiltered_deep": lambda _k: DocumentFilter(offset=DEEP_OFFSET),
        "document_id": lambda k: DocumentFilter(document_id=pick(doc_ids, k)),
        "sender": lambda k: DocumentFilter(sender=pick(senders, k)),
        "sender_deep": lambda k: DocumentFilter(sender=pick(busy, k), offset=DEEP_OFFSET),
        "recipient": lambda k: DocumentFilter(recipient=pick(recipients, k)),
        "recipient_deep": lambda k: DocumentFilter(recipient=pick(busy, k), offset=DEEP_OFFSET),
        "state": lambda k: DocumentFilter(state=states[k % len(states)]),
        "state_deep": lambda _k: DocumentFilter(state=DeliveryState.DELIVERED, offset=DEEP_OFFSET),
        "business_status": lambda k: DocumentFilter(business_status=codes[k % len(codes)]),
        "date_range": dated,
        "date_range_deep": lambda k: dated(k, offset=DEEP_OFFSET),
        "text": lambda k: DocumentFilter(text=pick(sample["words"], k)),
        "text_deep": lambda k: DocumentFilter(text=SEARCH_WORDS[k % 2], offset=DEEP_OFFSET),
        "sender+state": lambda k: DocumentFilter(
            sender=pick(senders, k), state=states[k % len(states)]
        ),
        "recipient+state": lambda k: DocumentFilter(
            recipient=pick(recipients, k), state=states[k % len(states)]
        ),
        "recipient+business_status": lambda k: DocumentFilter(
            recipient=pick(recipients, k), business_status=codes[k % len(codes)]
        ),
        "sender+recipient": lambda k: DocumentFilter(
            sender=pick(senders, k), recipient=pick(recipients, k + 1)
        ),
        "sender+date_range": lambda k: dated(k, sender=pick(senders, k)),
        "state+date_range": lambda k: dated(k, state=states[k % len(states)]),
        "text+sender": lambda k: DocumentFilter(
            text=pick(sample["words"], k), sender=pick(senders, k)
        ),
        "text+date_range": lambda k: dated(k, text=pick(sample["words"], k)),
    }


async def sample_values(url: str) -> dict[str, list[str]]:
    """Busy, middling and rare organs; existing DocumentIds; common and rare search words."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            ranked = [
                row[0]
                for row in await conn.execute(
                    text("SELECT sender FROM documents GROUP BY sender ORDER BY count(*) DESC")
                )
            ]
            doc_ids = [
                row[0]
                for row in await conn.execute(
                    text("SELECT document_id FROM documents TABLESAMPLE SYSTEM (1) LIMIT 40")
                )
            ]
    finally:
        await engine.dispose()
    spread = [ranked[i] for i in (0, 1, 2, 5, 20, 60, 150, 300, len(ranked) - 1)]
    return {
        "busy": ranked[:4],
        "senders": spread,
        "recipients": spread,
        "document_ids": doc_ids,
        "words": [*SEARCH_WORDS, "số 12345", "Công Văn", "xyz không có"],
    }


async def run_searches(url: str, repeat: int) -> dict[str, dict[str, float]]:
    sample = await sample_values(url)
    searches = filters(sample, datetime.now(UTC))
    log = await DeliveryLog.open(url)
    figures: dict[str, dict[str, float]] = {}
    try:
        for name, make in searches.items():
            await page(log, make(0))  # warm-up (caches, prepared statements)
            timings = [await timed_page(log, make(k)) for k in range(1, repeat + 1)]
            figures[name] = {
                "p50_ms": round(statistics.median(timings), 2),
                "p99_ms": round(percentile(timings, 0.99), 2),
            }
            print(
                f"  {name:<26} p50 {figures[name]['p50_ms']:>8.2f} ms   "
                f"p99 {figures[name]['p99_ms']:>8.2f} ms",
                file=sys.stderr,
                flush=True,
            )
    finally:
        await log.aclose()
    return figures


async def run_reports(url: str, repeat: int) -> dict[str, dict[str, float]]:
    """A year's report per role, as the console builds it (cache refresh, sums, assembly); the
    first refresh (every day of the year computed from the log) is timed on its own."""
    log = await DeliveryLog.open(url)
    cache = ReportCache(lambda: log.engines)
    last = today()
    first = last - timedelta(days=364)
    figures: dict[str, dict[str, float]] = {}
    try:
        await cache.forget()
        started = time.perf_counter()
        computed = await cache.refresh_recent()
        cold_s = time.perf_counter() - started
        figures["report_cache_cold"] = {"days": computed, "seconds": round(cold_s, 1)}
        print(f"  report cache: {computed} days computed in {cold_s:.1f} s", file=sys.stderr)
        for role in Role:
            wanted = ReportRequest(role, Granularity.MONTH, first, last)
            timings = []
            for _ in range(repeat):
                started = time.perf_counter()
                totals = await cache.totals(role, first, last)
                build_report(wanted, totals, {})
                timings.append((time.perf_counter() - started) * 1000)
            name = f"report_year_{role.value}"
            figures[name] = {
                "p50_ms": round(statistics.median(timings), 2),
                "p99_ms": round(percentile(timings, 0.99), 2),
            }
            print(
                f"  {name:<26} p50 {figures[name]['p50_ms']:>8.2f} ms   "
                f"p99 {figures[name]['p99_ms']:>8.2f} ms",
                file=sys.stderr,
                flush=True,
            )
    finally:
        await log.aclose()
    return figures


async def page(log: DeliveryLog, f: DocumentFilter) -> tuple[int, int]:
    """One page as the console shows it: the rows and the (capped) count."""
    rows = await log.list_documents(f)
    return len(rows), await log.count_documents(f)


async def timed_page(log: DeliveryLog, f: DocumentFilter) -> float:
    started = time.perf_counter()
    await page(log, f)
    return (time.perf_counter() - started) * 1000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main_async(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    documents = args.documents or (QUICK_DOCUMENTS if args.quick else FULL_DOCUMENTS)
    name = args.database or f"lgsp_bench_{secrets.token_hex(4)}"
    admin = create_async_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    url = make_url(args.pg_url).set(database=name).render_as_string(hide_password=False)
    started = time.perf_counter()
    if not args.database:
        await create_database(admin, name)
    try:
        log = await DeliveryLog.open(url)  # the real schema, indexes included
        await log.aclose()
        if not args.database:
            print(f"filling {name} with {documents} documents", file=sys.stderr, flush=True)
            await fill(url, documents)
        print(
            f"filled in {time.perf_counter() - started:.0f} s; searching "
            f"({args.repeat} times each)",
            file=sys.stderr,
            flush=True,
        )
        figures = {} if args.reports_only else await run_searches(url, args.repeat)
        reports = await run_reports(url, args.repeat)
    finally:
        if args.keep or args.database:
            print(f"kept database {name}: {url}", file=sys.stderr)
        else:
            await drop_database(admin, name)
        await admin.dispose()
    if figures:
        worst = max(f["p99_ms"] for f in figures.values())
        verdict = "meets" if worst < TARGET_P99_MS else "MISSES"
        print(
            f"{documents} documents; worst search p99 {worst:.1f} ms {verdict} the "
            f"{TARGET_P99_MS:.0f} ms target",
            file=sys.stderr,
        )
    worst_report = max(reports[f"report_year_{role.value}"]["p99_ms"] for role in Role)
    verdict = "meets" if worst_report < TARGET_REPORT_P99_MS else "MISSES"
    print(
        f"a year's report: worst p99 {worst_report:.1f} ms {verdict} the "
        f"{TARGET_REPORT_P99_MS:.0f} ms target; total {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
    )
    return {**figures, **reports}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DOCUMENTS} documents")
    parser.add_argument("--documents", type=int, help="how many documents (overrides --quick)")
    parser.add_argument("--repeat", type=int, default=100, help="timed searches per filter")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--database", help="an already filled database to measure again (kept)")
    parser.add_argument("--reports-only", action="store_true", help="time the reports only")
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="an existing database to connect to for CREATE/DROP DATABASE",
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))


if __name__ == "__main__":
    main()
