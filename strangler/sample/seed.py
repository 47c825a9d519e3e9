"""Deterministic generator of the sample monolith's data (schema ``monolith``, 001_monolith.sql).

Same arguments give byte-identical tables: every chunk of ``CHUNK_ROWS`` parent rows draws from
its own ``random.Random`` seeded by (seed, table, chunk), and rows are streamed to Postgres with
``COPY``, so memory stays flat from scale 0.01 to tens of millions of rows.

Time model. Rows spread over ``days`` UTC days (ending yesterday unless ``start_day`` is given);
ids grow with ``created_at`` as they would from a sequence. A row belongs to the UTC day of its
``created_at``. Natural activity (OCR, jobs) ends within an hour of its document, and every
natural timestamp stays before the end of the range. Late edits move ``updated_at`` of a few
rows to a later day of the range, always more than ``LATE_EDIT_MIN_DELAY`` after creation, so
``updated_at - created_at > 1 hour`` finds exactly them. Dirt is described in ``dirt.py``.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from psycopg import Connection, sql
from rich.console import Console
from rich.table import Table

from strangler.sample import vocabulary
from strangler.sample.dirt import DirtKind, kinds_for

SCHEMA = "monolith"
TABLES: tuple[str, ...] = ("customers", "documents", "ocr_pages", "processing_jobs")
COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": (
        "id",
        "email",
        "name",
        "plan",
        "country",
        "metadata",
        "created_at",
        "updated_at",
    ),
    "documents": (
        "id",
        "customer_id",
        "title",
        "category",
        "status",
        "page_count",
        "mime_type",
        "size_bytes",
        "attributes",
        "created_at",
        "updated_at",
    ),
    "ocr_pages": (
        "id",
        "document_id",
        "page_number",
        "text",
        "confidence",
        "created_at",
        "updated_at",
    ),
    "processing_jobs": (
        "id",
        "document_id",
        "service",
        "status",
        "attempt",
        "started_at",
        "finished_at",
        "duration_ms",
        "error",
        "created_at",
        "updated_at",
    ),
}

CUSTOMERS_PER_SCALE = 200
DOCUMENTS_PER_SCALE = 1_000
CHUNK_ROWS = 10_000
"""Parent rows per RNG stream and COPY batch; part of the determinism contract, do not tune."""
DEFAULT_LATE_EDIT_RATE = 0.03
ADVISORY_LOCK_KEY = 0x5EED_0001
"""Serializes concurrent seeds of one database (tests, CLI) on ``pg_advisory_xact_lock``."""

_US_PER_S = 1_000_000
_DAY_US = 86_400 * _US_PER_S
_HOUR_US = 3_600 * _US_PER_S
ACTIVITY_MARGIN = timedelta(hours=1)
"""Documents are created at least this long before the range ends, so their OCR and jobs
(all shorter than this) finish inside the range too."""
LATE_EDIT_MIN_DELAY = timedelta(hours=2)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

PLANS = (("free", 50), ("starter", 25), ("pro", 18), ("enterprise", 7))
COUNTRIES = ("US", "DE", "FR", "NL", "GB", "JP", "CA", "ES", "PL", "AU", "BR", "IN", "KR", "SE")
SIGNUP_SOURCES = ("web", "sales", "partner", "api", "mobile")
LOCALES = ("en-US", "de-DE", "fr-FR", "nl-NL", "en-GB", "ja-JP", "es-ES", "pl-PL")
EMAIL_DOMAINS = ("example.com", "mail.example", "corp.example", "inbox.example")
CATEGORY_WEIGHTS = (22, 12, 10, 12, 8, 14, 12, 10)
PAGE_COUNTS = (1, 2, 3, 4, 5, 6, 8)
PAGE_COUNT_WEIGHTS = (18, 17, 17, 16, 12, 11, 9)
MIME_TYPES = (("application/pdf", 70), ("image/tiff", 12), ("image/jpeg", 12), ("image/png", 6))
UPLOAD_SOURCES = ("email", "upload", "api", "scanner", "sftp")
OCR_STATUSES = (("completed", 86), ("failed", 8), ("running", 3), ("queued", 3))
EXTRA_SERVICES = ("classifier", "indexer", "thumbnailer", "virus_scan")
EXTRA_STATUSES = (("completed", 90), ("failed", 7), ("running", 2), ("queued", 1))
DOC_STATUS_BY_OCR = {
    "completed": "processed",
    "failed": "failed",
    "running": "processing",
    "queued": "uploaded",
}
ERRORS: dict[str, tuple[str, ...]] = {
    "ocr": (
        "TimeoutError: OCR engine did not respond within 300 s",
        "UnsupportedImageError: page 2 has an unreadable colour profile",
        "PDFSyntaxError: xref table is corrupt",
        "MemoryError: page raster exceeds 512 MiB",
    ),
    "classifier": ("ModelUnavailable: classifier v3 is warming up", "ValueError: empty text"),
    "indexer": ("ConnectionResetError: search cluster closed the connection",),
    "thumbnailer": ("ImageMagickError: no decode delegate for this image format",),
    "virus_scan": ("ScannerBusy: clamd queue is full, retry later",),
}
CONTROL_SEQUENCES = ("\\u0000", "\x01", "\x07", "\x08", "\x0c", "\x1b[0m", "\x1b", "\x7f")
"""``\\u0000`` is the literal six-character escape a NUL leaks as (text cannot hold NUL)."""


@dataclass
class SeedReport:
    """What a seed wrote: rows, dirty rows and late edits, per table and per dirt kind."""

    seed: int
    start_day: date
    days: int
    scale: float
    dirty_rate: float
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    dirty_by_table: dict[str, Counter[DirtKind]] = field(
        default_factory=lambda: {t: Counter() for t in TABLES}
    )
    late_edits: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    elapsed_s: float = 0.0

    @property
    def end_day(self) -> date:
        """The last day of the range (inclusive)."""
        return self.start_day + timedelta(days=self.days - 1)

    @property
    def range_end(self) -> datetime:
        """First instant after the range; clean timestamps are all before it."""
        return datetime.combine(self.start_day, datetime.min.time(), UTC) + timedelta(
            days=self.days
        )

    @property
    def dirty(self) -> dict[DirtKind, int]:
        """Dirty rows per kind over all tables (every kind listed, zero included)."""
        totals: Counter[DirtKind] = Counter()
        for counts in self.dirty_by_table.values():
            totals.update(counts)
        return {kind: totals[kind] for kind in DirtKind}

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def total_dirty(self) -> int:
        return sum(self.dirty.values())

    @property
    def rows_per_second(self) -> float:
        return self.total_rows / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def render(self, console: Console | None = None) -> None:
        """Print the report as two tables: by table, and by dirt kind."""
        console = console or Console()
        by_table = Table(
            title=(
                f"monolith seeded: seed={self.seed} scale={self.scale:g} "
                f"days={self.days} ({self.start_day}..{self.end_day}) "
                f"dirty_rate={self.dirty_rate:g}"
            )
        )
        for column in ("table", "rows", "dirty", "late edits"):
            by_table.add_column(column, justify="left" if column == "table" else "right")
        for table in TABLES:
            by_table.add_row(
                table,
                f"{self.rows[table]:,}",
                f"{sum(self.dirty_by_table[table].values()):,}",
                f"{self.late_edits[table]:,}",
            )
        by_table.add_row(
            "total",
            f"{self.total_rows:,}",
            f"{self.total_dirty:,}",
            f"{sum(self.late_edits.values()):,}",
            style="bold",
        )
        by_kind = Table(title="dirty rows by kind")
        by_kind.add_column("kind")
        by_kind.add_column("rows", justify="right")
        by_kind.add_column("columns", overflow="fold")
        by_kind.add_column("description")
        for kind, count in self.dirty.items():
            by_kind.add_row(kind.value, f"{count:,}", "\n".join(kind.columns), kind.description)
        console.print(by_table)
        console.print(by_kind)
        console.print(
            f"{self.total_rows:,} rows in {self.elapsed_s:.2f} s "
            f"({self.rows_per_second:,.0f} rows/s)"
        )


@dataclass(frozen=True)
class _Plan:
    """The arguments turned into integer microseconds and row counts."""

    seed: int
    days: int
    start_us: int
    span_us: int
    n_customers: int
    n_documents: int
    dirty_rate: float
    late_edit_rate: float

    @property
    def end_us(self) -> int:
        return self.start_us + self.days * _DAY_US


class _Doc(NamedTuple):
    """What pages and jobs of a document need from its row (kept for one chunk only)."""

    id: int
    category: str
    context: dict[str, str]
    pages: int
    created_us: int
    ocr_status: str
    ocr_created_us: int
    ocr_started_us: int
    ocr_duration_ms: int
    ocr_attempt: int


def _ts(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


def _rng(plan: _Plan, table: str, chunk: int) -> random.Random:
    return random.Random(f"strangler.sample:{plan.seed}:{table}:{chunk}")


def _weighted(rng: random.Random, pairs: Sequence[tuple[str, int]]) -> str:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def _dirt(
    rng: random.Random, plan: _Plan, table: str, excluded: Iterable[DirtKind] = ()
) -> DirtKind | None:
    if rng.random() >= plan.dirty_rate:
        return None
    skip = set(excluded)
    return rng.choice([k for k in kinds_for(table) if k not in skip])


def _late_edit_us(rng: random.Random, plan: _Plan, created_us: int) -> int | None:
    """A later day of the range, at least LATE_EDIT_MIN_DELAY after creation, or None."""
    if rng.random() >= plan.late_edit_rate:
        return None
    day = (created_us - plan.start_us) // _DAY_US
    if day >= plan.days - 1:
        return None
    new_day = rng.randint(day + 1, plan.days - 1)
    edited = plan.start_us + new_day * _DAY_US + rng.randrange(_DAY_US)
    min_delay_us = int(LATE_EDIT_MIN_DELAY.total_seconds()) * _US_PER_S
    return max(edited, created_us + min_delay_us)


def _future_us(rng: random.Random, plan: _Plan) -> int:
    return plan.end_us + rng.randrange(_DAY_US, 3_650 * _DAY_US)


def _control_chars(rng: random.Random, text: str) -> str:
    at = rng.randrange(len(text) + 1)
    return text[:at] + rng.choice(CONTROL_SEQUENCES) + text[at:]


def _malformed_json(rng: random.Random, valid: str, value: dict[str, Any]) -> str:
    """JSON as legacy writers break it; every variant fails json.loads and ::jsonb."""
    variant = rng.randrange(5)
    if variant == 0:
        return valid[: max(1, len(valid) // 2)]
    if variant == 1:
        return str(value)
    if variant == 2:
        return valid[:-1] + ",}"
    if variant == 3:
        return ""
    return "N/A"


def _chunks(total: int) -> Iterator[tuple[int, int, int]]:
    """(chunk number, first id, last id) of 1-based ids in CHUNK_ROWS blocks."""
    for chunk, first in enumerate(range(1, total + 1, CHUNK_ROWS)):
        yield chunk, first, min(total, first + CHUNK_ROWS - 1)


def _customer_rows(plan: _Plan, report: SeedReport) -> Iterator[tuple[Any, ...]]:
    dirt = report.dirty_by_table["customers"]
    slot = plan.span_us // plan.n_customers
    for chunk, first, last in _chunks(plan.n_customers):
        rng = _rng(plan, "customers", chunk)
        clean_emails: list[str] = []
        for cid in range(first, last + 1):
            created = plan.start_us + (cid - 1) * plan.span_us // plan.n_customers
            created += rng.randrange(max(1, min(slot, _HOUR_US) if cid == 1 else slot))
            first_name = rng.choice(vocabulary.FIRST_NAMES)
            last_name = rng.choice(vocabulary.LAST_NAMES)
            full_name = f"{first_name} {last_name}"
            name: str | None = full_name
            email = f"{first_name}.{last_name}{cid}@{rng.choice(EMAIL_DOMAINS)}".lower()
            plan_name = _weighted(rng, PLANS)
            metadata = {
                "signup_source": rng.choice(SIGNUP_SOURCES),
                "locale": rng.choice(LOCALES),
                "marketing_opt_in": rng.random() < 0.4,
                "seats": rng.randint(1, 250) if plan_name == "enterprise" else 1,
            }
            updated = created
            excluded = () if clean_emails else (DirtKind.DUPLICATE_NATURAL_KEY,)
            kind = _dirt(rng, plan, "customers", excluded)
            if kind is DirtKind.NULL_REQUIRED:
                name = None
            elif kind is DirtKind.DUPLICATE_NATURAL_KEY:
                email = rng.choice(clean_emails)
            elif kind is DirtKind.CONTROL_CHARS:
                name = _control_chars(rng, full_name)
            elif kind is DirtKind.FUTURE_TIMESTAMP:
                updated = _future_us(rng, plan)
            else:
                late = _late_edit_us(rng, plan, created)
                if late is not None:
                    updated = late
                    plan_name = rng.choice([p for p, _ in PLANS if p != plan_name])
                    report.late_edits["customers"] += 1
            if kind is not DirtKind.DUPLICATE_NATURAL_KEY:
                clean_emails.append(email)
            if kind is not None:
                dirt[kind] += 1
            report.rows["customers"] += 1
            yield (
                cid,
                email,
                name,
                plan_name,
                rng.choice(COUNTRIES),
                json.dumps(metadata, sort_keys=True),
                _ts(created),
                _ts(updated),
            )


def _document_rows(
    plan: _Plan, report: SeedReport, chunk: int, first: int, last: int, docs: list[_Doc]
) -> Iterator[tuple[Any, ...]]:
    """Documents of one chunk; fills ``docs`` for the chunk's pages and jobs."""
    dirt = report.dirty_by_table["documents"]
    rng = _rng(plan, "documents", chunk)
    # Customer 1 signs up within the first hour (or slot); every document comes after it.
    ready = min(-(-plan.span_us // plan.n_customers), _HOUR_US)
    window = plan.span_us - ready
    slot = max(1, window // plan.n_documents)
    for did in range(first, last + 1):
        offset = ready + (did - 1) * window // plan.n_documents + rng.randrange(slot)
        created = plan.start_us + offset
        eligible = max(1, min(plan.n_customers, offset * plan.n_customers // plan.span_us))
        customer_id = rng.randint(1, eligible)
        category = rng.choices(vocabulary.CATEGORY_NAMES, weights=CATEGORY_WEIGHTS)[0]
        context = vocabulary.document_context(rng, category)
        clean_title = vocabulary.document_title(rng, category, context)
        title: str | None = clean_title
        pages = rng.choices(PAGE_COUNTS, weights=PAGE_COUNT_WEIGHTS)[0]
        mime = _weighted(rng, MIME_TYPES)
        size = pages * rng.randint(40_000, 900_000)
        ocr_status = _weighted(rng, OCR_STATUSES)
        ocr_created = created + rng.randint(1, 120) * _US_PER_S
        ocr_started = ocr_created + rng.randrange(300 * _US_PER_S)
        ocr_duration_ms = pages * rng.randint(800, 9_000)
        ocr_attempt = rng.choices((1, 2, 3), weights=(90, 8, 2))[0]
        status = DOC_STATUS_BY_OCR[ocr_status]
        updated = created
        if ocr_status in ("completed", "failed"):
            updated = ocr_started + ocr_duration_ms * 1_000
        elif ocr_status == "running":
            updated = ocr_started
        attributes = {
            "language": rng.choice(("en", "en", "en", "de", "fr", "es")),
            "source": rng.choice(UPLOAD_SOURCES),
            "sha1": f"{rng.getrandbits(160):040x}",
            "dpi": rng.choice((150, 200, 300, 300, 600)),
            "tags": sorted(rng.sample(("urgent", "archive", "finance", "legal", "hr", "ops"), 2)),
        }
        attributes_text = json.dumps(attributes, sort_keys=True)
        page_count: int = pages
        kind = _dirt(rng, plan, "documents")
        if kind is DirtKind.NULL_REQUIRED:
            title = None
        elif kind is DirtKind.MALFORMED_JSON:
            attributes_text = _malformed_json(rng, attributes_text, attributes)
        elif kind is DirtKind.ORPHAN_FK:
            customer_id = plan.n_customers + did
        elif kind is DirtKind.OUT_OF_RANGE:
            page_count = rng.choice((0, -1, -pages, -pages * 1000))
        elif kind is DirtKind.CONTROL_CHARS:
            title = _control_chars(rng, clean_title)
        elif kind is DirtKind.FUTURE_TIMESTAMP:
            updated = _future_us(rng, plan)
        else:
            late = _late_edit_us(rng, plan, created)
            if late is not None:
                updated = late
                status = "archived"
                report.late_edits["documents"] += 1
        if kind is not None:
            dirt[kind] += 1
        docs.append(
            _Doc(
                did,
                category,
                context,
                pages,
                created,
                ocr_status,
                ocr_created,
                ocr_started,
                ocr_duration_ms,
                ocr_attempt,
            )
        )
        report.rows["documents"] += 1
        yield (
            did,
            customer_id,
            title,
            category,
            status,
            page_count,
            mime,
            size,
            attributes_text,
            _ts(created),
            _ts(updated),
        )


def _page_rows(
    plan: _Plan, report: SeedReport, chunk: int, docs: Sequence[_Doc], next_id: int
) -> Iterator[tuple[Any, ...]]:
    """OCR pages of the chunk's documents whose OCR completed."""
    dirt = report.dirty_by_table["ocr_pages"]
    rng = _rng(plan, "ocr_pages", chunk)
    page_id = next_id
    for doc in docs:
        if doc.ocr_status != "completed":
            continue
        created = doc.ocr_started_us + doc.ocr_duration_ms * 1_000
        for number in range(1, doc.pages + 1):
            created += rng.randint(10, 500) * 1_000
            clean_text = vocabulary.page_text(rng, doc.category, number, doc.context)
            text: str | None = clean_text
            confidence = round(rng.triangular(0.55, 0.999, 0.95), 3)
            document_id = doc.id
            page_number = number
            updated = created
            excluded = (DirtKind.ORPHAN_FK, DirtKind.DUPLICATE_NATURAL_KEY) if number == 1 else ()
            kind = _dirt(rng, plan, "ocr_pages", excluded)
            if kind is DirtKind.NULL_REQUIRED:
                text = None
            elif kind is DirtKind.ORPHAN_FK:
                document_id = plan.n_documents + page_id
            elif kind is DirtKind.DUPLICATE_NATURAL_KEY:
                page_number = 1
            elif kind is DirtKind.OUT_OF_RANGE:
                confidence = rng.choice((round(confidence * 100, 1), round(-confidence, 3), 1.5))
            elif kind is DirtKind.CONTROL_CHARS:
                text = _control_chars(rng, clean_text)
            else:
                late = _late_edit_us(rng, plan, created)
                if late is not None:
                    updated = late
                    confidence = round(min(0.999, confidence + 0.03), 3)
                    report.late_edits["ocr_pages"] += 1
            if kind is not None:
                dirt[kind] += 1
            report.rows["ocr_pages"] += 1
            yield (
                page_id,
                document_id,
                page_number,
                text,
                confidence,
                _ts(created),
                _ts(updated),
            )
            page_id += 1


def _job_rows(
    plan: _Plan, report: SeedReport, chunk: int, docs: Sequence[_Doc], next_id: int
) -> Iterator[tuple[Any, ...]]:
    """One OCR job per document, plus a second service's job for about half of them."""
    dirt = report.dirty_by_table["processing_jobs"]
    rng = _rng(plan, "processing_jobs", chunk)
    job_id = next_id
    for doc in docs:
        jobs = [
            (
                "ocr",
                doc.ocr_status,
                doc.ocr_created_us,
                doc.ocr_started_us,
                doc.ocr_duration_ms,
                doc.ocr_attempt,
            )
        ]
        if rng.random() < 0.5:
            extra_created = doc.created_us + rng.randint(60, 900) * _US_PER_S
            jobs.append(
                (
                    rng.choice(EXTRA_SERVICES),
                    _weighted(rng, EXTRA_STATUSES),
                    extra_created,
                    extra_created + rng.randrange(120 * _US_PER_S),
                    rng.randint(100, 60_000),
                    rng.choices((1, 2), weights=(95, 5))[0],
                )
            )
        for service, status, created, started_us, duration, attempt in jobs:
            started: int | None = started_us
            finished: int | None = started_us + duration * 1_000
            duration_ms: int | None = duration
            error: str | None = None
            if status == "queued":
                started = finished = duration_ms = None
            elif status == "running":
                finished = duration_ms = None
            elif status == "failed":
                error = rng.choice(ERRORS[service])
            updated = finished or started or created
            document_id = doc.id
            status_value: str | None = status
            kind = _dirt(rng, plan, "processing_jobs")
            if kind is DirtKind.NULL_REQUIRED:
                status_value = None
            elif kind is DirtKind.ORPHAN_FK:
                document_id = plan.n_documents + job_id
            elif kind is DirtKind.OUT_OF_RANGE:
                duration_ms = -rng.randint(1, 3_600_000)
            elif kind is DirtKind.FUTURE_TIMESTAMP:
                finished = _future_us(rng, plan)
            if kind is not None:
                dirt[kind] += 1
            report.rows["processing_jobs"] += 1
            yield (
                job_id,
                document_id,
                service,
                status_value,
                attempt,
                _ts(started),
                _ts(finished),
                duration_ms,
                error,
                _ts(created),
                _ts(updated),
            )
            job_id += 1


def _copy(conn: Connection[Any], table: str, rows: Iterable[Sequence[Any]]) -> None:
    statement = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
        sql.Identifier(SCHEMA),
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS[table]),
    )
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _table(table: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(table))


def _make_plan(
    *,
    seed: int,
    days: int,
    scale: float,
    dirty_rate: float,
    start_day: date,
    late_edit_rate: float,
) -> _Plan:
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if not 0.0 <= dirty_rate <= 1.0:
        raise ValueError(f"dirty_rate must be within [0, 1], got {dirty_rate}")
    if not 0.0 <= late_edit_rate <= 1.0:
        raise ValueError(f"late_edit_rate must be within [0, 1], got {late_edit_rate}")
    start = datetime.combine(start_day, datetime.min.time(), UTC)
    margin_us = int(ACTIVITY_MARGIN.total_seconds()) * _US_PER_S
    return _Plan(
        seed=seed,
        days=days,
        start_us=(start - _EPOCH) // timedelta(microseconds=1),
        span_us=days * _DAY_US - margin_us,
        n_customers=max(1, round(CUSTOMERS_PER_SCALE * scale)),
        n_documents=max(1, round(DOCUMENTS_PER_SCALE * scale)),
        dirty_rate=dirty_rate,
        late_edit_rate=late_edit_rate,
    )


def seed(
    conn: Connection[Any],
    *,
    seed: int,
    days: int,
    scale: float,
    dirty_rate: float,
    start_day: date | None = None,
    late_edit_rate: float = DEFAULT_LATE_EDIT_RATE,
    replace: bool = True,
) -> SeedReport:
    """Fill schema ``monolith`` with deterministic sample data and report what was written.

    Runs in one transaction (a savepoint if the caller has one open), so readers see the old
    sample or the new one, never half; concurrent seeds wait on an advisory lock. With
    ``replace`` (default) the tables are truncated first, which makes re-seeding idempotent;
    without it they must be empty. ``start_day`` defaults to ``days`` days before today (UTC),
    so the range ends yesterday; pass it explicitly to reproduce data on another day.
    """
    started = time.perf_counter()
    if start_day is None:
        start_day = datetime.now(UTC).date() - timedelta(days=days)
    plan = _make_plan(
        seed=seed,
        days=days,
        scale=scale,
        dirty_rate=dirty_rate,
        start_day=start_day,
        late_edit_rate=late_edit_rate,
    )
    report = SeedReport(
        seed=seed, start_day=start_day, days=days, scale=scale, dirty_rate=dirty_rate
    )
    tables = sql.SQL(", ").join(_table(t) for t in TABLES)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        if replace:
            conn.execute(sql.SQL("TRUNCATE {}").format(tables))
        else:
            for table in TABLES:
                query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(_table(table))
                row = conn.execute(query).fetchone()
                if row and row[0]:
                    raise ValueError(f"{SCHEMA}.{table} is not empty; seed with replace=True")
        _copy(conn, "customers", _customer_rows(plan, report))
        page_id = job_id = 1
        for chunk, first, last in _chunks(plan.n_documents):
            docs: list[_Doc] = []
            _copy(conn, "documents", _document_rows(plan, report, chunk, first, last, docs))
            _copy(conn, "ocr_pages", _page_rows(plan, report, chunk, docs, page_id))
            _copy(conn, "processing_jobs", _job_rows(plan, report, chunk, docs, job_id))
            page_id = report.rows["ocr_pages"] + 1
            job_id = report.rows["processing_jobs"] + 1
        for table in TABLES:
            conn.execute(
                sql.SQL(
                    "SELECT setval(pg_get_serial_sequence({qualified}, 'id'), "
                    "coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
                ).format(qualified=sql.Literal(_table(table).as_string(conn)), table=_table(table))
            )
        conn.execute(sql.SQL("ANALYZE {}").format(tables))
    report.elapsed_s = time.perf_counter() - started
    return report
