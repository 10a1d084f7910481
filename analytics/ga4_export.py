"""Import of GA4 BigQuery-export files: one JSON event row per line, plain or gzip.

Files run to millions of rows, so they are streamed in batches of constant size, each batch
in its own transaction; a crash leaves whole batches only, and a re-import adds nothing
(export rows carry no event id, so the dedupe key is the hash of the row's content).
Elsewhere a batch goes through `events_store` and `visitors_merge_traits`. On PostgreSQL,
about ten times faster, it is COPYed into temporary staging tables and stored by one
statement: INSERT ... ON CONFLICT DO NOTHING for the events, then an upsert of the visitors
that keeps first/last seen and counts as events_store does and merges traits as
visitors_merge_traits does. The tests check that both paths store the same.
Row format: ../shared/INTEGRATIONS.md, "GA4 BigQuery export rows (NDJSON)".
"""

from __future__ import annotations

import codecs
import contextlib
import gc
import gzip
import io
import json
import logging
import re
import threading
import time
import zlib
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from queue import Full, Queue
from typing import IO, Any

import orjson
from django.db import connection, models, transaction
from django.utils import timezone
from tqdm import tqdm

from ops.metrics import EVENTS_DUPLICATE, EVENTS_INGESTED

from .models import Event, EventSource, GA4ExportUpload, ImportStatus, RejectedEvent, Visitor
from .services import (
    EventIn,
    RejectedIn,
    content_dedupe_key,
    events_store,
    events_stored_announce,
    page_fields,
    rejected_events_store,
    visitors_merge_traits,
)
from .validation import (
    EARLIEST,
    EVENT_NAME_MESSAGE,
    EVENT_NAME_RE,
    MAX_PARAMS_BYTES,
    SUSPECT_ESCAPE_BYTES,
    USER_ID_MESSAGE,
    USER_PSEUDO_ID_RE,
    finite_float,
    has_unstorable_text,
    reject_constant,
)

logger = logging.getLogger(__name__)

SOURCE = EventSource.GA4_EXPORT
MAX_ERRORS = 100
# Far above any real export row (a few kB); a longer line is damage, and reading it whole
# would break the constant-memory promise.
MAX_LINE_BYTES = 1024 * 1024
# How much of an unparseable line is kept in its dead letter.
MAX_RAW_CHARS = 10_000
GZIP_MAGIC = b"\x1f\x8b"
# What a cut-off or corrupt gzip stream raises part-way through.
STREAM_DAMAGE = (EOFError, zlib.error, gzip.BadGzipFile)
TRAIT_OBJECTS = ("device", "geo", "traffic_source")
STAGING_EVENTS = "ga4_export_staging_events"
STAGING_VISITORS = "ga4_export_staging_visitors"
STAGING_COLUMNS = (
    "event_name",
    "user_pseudo_id",
    "event_params",
    "occurred_at",
    "received_at",
    "source",
    "session_id",
    "page_location",
    "page_referrer",
    "dedupe_key",
)
# PostgreSQL cannot store NUL in text or jsonb, nor an unpaired surrogate in UTF-8; a line
# whose JSON escapes could hold either gets the exact (slower) check.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DIGITS = re.compile(r"[0-9]{1,19}")
_INTEGER = re.compile(r"-?[0-9]{1,19}")


class _RowError(ValueError):
    def __init__(self, field_name: str, message: str, code: str) -> None:
        super().__init__(message)
        self.reason = {"field": field_name, "message": message, "code": code}


@dataclass
class ImportSummary:
    rows_read: int = 0
    rows_imported: int = 0
    rows_duplicate: int = 0
    rows_rejected: int = 0
    # The first MAX_ERRORS bad lines, [{"line": 12, "error": "..."}]; all are in RejectedEvent.
    # A damaged gzip stream adds one more entry, always kept, and sets `truncated`.
    errors: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Batch:
    events: list[EventIn] = field(default_factory=list)
    # The COPY path's staging rows by dedupe key, made by the reading thread (see _read_ahead)
    copy_rows: dict[str, tuple[Any, ...]] | None = None
    traits: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejects: list[RejectedIn] = field(default_factory=list)
    position: int = 0  # bytes read from the file when the batch was complete
    received_at: datetime = field(default_factory=timezone.now)

    @cached_property
    def received_at_text(self) -> str:
        return self.received_at.isoformat()

    def __len__(self) -> int:
        return len(self.events) + len(self.rejects)


def import_export_file(
    path: str | Path,
    *,
    context: str = "",
    progress: bool = False,
    batch_size: int = 5000,
    use_copy: bool | None = None,
) -> ImportSummary:
    """Import a GA4 BigQuery-export NDJSON file (gzip detected by its magic bytes).

    Bad lines are dead-lettered with their line number and skipped; a damaged gzip stream
    keeps what precedes the damage. `context` names the file in dead letters (default: its
    name). `use_copy` picks the PostgreSQL COPY path (default: on PostgreSQL) or forces the
    portable `events_store` path with False.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    path = Path(path)
    context = (context or path.name)[:300]
    if use_copy is None:
        use_copy = connection.vendor == "postgresql"
    elif use_copy and connection.vendor != "postgresql":
        raise ValueError("the COPY path needs PostgreSQL")
    summary = ImportSummary()
    started = time.monotonic()
    with _cycle_collector_paused(), path.open("rb") as raw:
        is_gzip = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        stream: io.BufferedIOBase = gzip.GzipFile(fileobj=raw, mode="rb") if is_gzip else raw
        if use_copy:
            _staging_prepare()
        lines = _Lines(stream)
        batches = _batches(
            lines, raw, batch_size=batch_size, use_copy=use_copy, context=context, summary=summary
        )
        with (
            tqdm(
                total=path.stat().st_size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=path.name,
                disable=not progress,
                leave=False,
            ) as bar,
            contextlib.closing(_read_ahead(batches)) as ready,
        ):
            for batch in ready:
                _flush(batch, context=context, summary=summary)
                bar.update(batch.position - bar.n)
    if lines.damage:
        summary.truncated = True
        summary.errors.append(
            {"line": lines.line_number + 1, "error": f"file truncated or corrupt: {lines.damage}"}
        )
    logger.info(
        "ga4_export.imported",
        extra={
            "context": context,
            "seconds": round(time.monotonic() - started, 3),
            **{k: v for k, v in summary.as_dict().items() if k != "errors"},
        },
    )
    return summary


def import_upload(upload_id: int) -> None:
    """Import an admin upload and record the outcome on it; re-running it is harmless."""
    upload = GA4ExportUpload.objects.get(pk=upload_id)
    upload.status = ImportStatus.RUNNING
    upload.rows_read = upload.rows_imported = upload.rows_duplicate = upload.rows_rejected = 0
    upload.errors = []
    upload.finished_at = None
    fields = [
        "status",
        "rows_read",
        "rows_imported",
        "rows_duplicate",
        "rows_rejected",
        "errors",
        "finished_at",
    ]
    # update_fields: the admin writes task_id to this row concurrently.
    upload.save(update_fields=fields)
    try:
        summary = import_export_file(upload.file.path, context=upload.file.name)
    except Exception as exc:
        upload.status = ImportStatus.FAILED
        upload.errors = [{"line": None, "error": f"{type(exc).__name__}: {exc}"}]
        upload.finished_at = timezone.now()
        upload.save(update_fields=fields)
        raise
    upload.status = ImportStatus.DONE
    upload.rows_read = summary.rows_read
    upload.rows_imported = summary.rows_imported
    upload.rows_duplicate = summary.rows_duplicate
    upload.rows_rejected = summary.rows_rejected
    upload.errors = summary.errors
    upload.finished_at = timezone.now()
    upload.save(update_fields=fields)


@contextlib.contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Parsed rows are trees, freed by reference counting alone; with the batches in flight
    alive, the cycle collector would rescan them every few hundred rows for nothing, and
    take a third of the parsing time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _batches(
    lines: _Lines,
    raw: IO[bytes],
    *,
    batch_size: int,
    use_copy: bool,
    context: str,
    summary: ImportSummary,
) -> Iterator[_Batch]:
    def new_batch() -> _Batch:
        return _Batch(copy_rows={} if use_copy else None)

    batch = new_batch()
    for line_number, line in lines:
        summary.rows_read += 1
        _take_line(batch, line, line_number, context=context, summary=summary)
        if len(batch) >= batch_size:
            batch.position = raw.tell()
            yield batch
            batch = new_batch()
    batch.position = raw.tell()
    yield batch


_DONE = object()


def _read_ahead(batches: Iterator[_Batch]) -> Generator[_Batch, None, None]:
    """The batches, the next one read, parsed and keyed in a thread while the current one is
    stored: PostgreSQL inserts while Python parses (the GIL is free while we wait on the
    database), when the machine has a core to spare. At most three batches exist at a time:
    stored, queued, being parsed. The thread touches no database connection; its exceptions
    are raised here."""
    queue: Queue[Any] = Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(_DONE)
        except BaseException as exc:
            put(exc)

    thread = threading.Thread(target=produce, name="ga4-export-reader", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class _Lines:
    """(line number, line) of the non-blank lines; a line over MAX_LINE_BYTES comes as None.
    Stops at a damaged gzip stream and keeps why in `damage`."""

    def __init__(self, stream: io.BufferedIOBase) -> None:
        self.stream = stream
        self.line_number = 0
        self.damage = ""

    def __iter__(self) -> Iterator[tuple[int, bytes | None]]:
        readline = self.stream.readline
        try:
            while line := readline(MAX_LINE_BYTES + 1):
                self.line_number += 1
                if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                    while (rest := readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                        pass
                    yield self.line_number, None
                elif not line.isspace():
                    yield self.line_number, line
        except STREAM_DAMAGE as exc:
            self.damage = f"{type(exc).__name__}: {exc}"


# One decoder and encoder for the whole file: json.loads(..., **options) would build one
# per line.
_DECODER = json.JSONDecoder(parse_float=finite_float, parse_constant=reject_constant)
_PARAMS_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


# orjson reads a line in a third of the stdlib's time and agrees with it on every line it
# accepts, with one difference: a JSON number past 64 bits becomes a float (BigQuery's INT64
# is 64 bits, and exports write it as a string anyway). Every line orjson refuses goes to the
# stdlib decoder, whose verdict and messages are the ones users see.
def _decode_line(line: bytes) -> Any:
    """A line already known to be UTF-8, decoded."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return _DECODER.decode(line.decode("utf-8"))


def _json_text(value: Any) -> str:
    """Compact JSON for a jsonb column (PostgreSQL normalises it, so any valid form will do)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # an integer past 64 bits
        return _PARAMS_ENCODER.encode(value)


def _take_line(
    batch: _Batch, line: bytes | None, line_number: int, *, context: str, summary: ImportSummary
) -> None:
    """Validate one line into the batch, as an event or as a dead letter."""
    data: Any = None
    try:
        if line is None:
            raise _RowError("line", f"Line is longer than {MAX_LINE_BYTES} bytes.", "LINE_TOO_LONG")
        if line_number == 1 and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :]
        if not line.isascii():
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _RowError("line", f"Not UTF-8: {exc}", "NOT_UTF8") from exc
        try:
            data = _decode_line(line)
        except json.JSONDecodeError as exc:
            # Its own "line 1 column 9 (char 8)" would compete with the file's line number.
            message = f"Invalid JSON: {exc.msg} at column {exc.colno}."
            raise _RowError("line", message, "INVALID_JSON") from exc
        except (ValueError, RecursionError) as exc:
            raise _RowError("line", f"Invalid JSON: {exc}.", "INVALID_JSON") from exc
        if not isinstance(data, dict):
            raise _RowError("line", "Each line must be a JSON object.", "NOT_OBJECT")
        if b"\\u" in line and SUSPECT_ESCAPE_BYTES.search(line) and has_unstorable_text(data):
            raise _RowError(
                "line", "Text holds NUL or unpaired surrogate characters.", "TEXT_INVALID"
            )
        event, params_json = _parse_row(data)
    except _RowError as exc:
        reasons = [exc.reason]
        stored = isinstance(data, dict) and exc.reason["code"] != "TEXT_INVALID"
        if stored:
            payload = data
        else:
            text = "" if line is None else line.decode("utf-8", "replace")
            payload = {"raw": _raw_text(text)}
        _reject(batch, payload, reasons, line_number, context=context, summary=summary)
        return
    batch.events.append(event)
    if batch.copy_rows is not None:
        _copy_row_add(batch.copy_rows, event, params_json, batch.received_at_text)
    # Every visitor of the batch gets an entry, with or without traits: the COPY path
    # upserts visitors from these.
    traits = batch.traits.get(event.user_pseudo_id)
    if traits is None:
        traits = batch.traits[event.user_pseudo_id] = {}
    _traits_take(traits, data)


def _parse_row(data: dict[str, Any]) -> tuple[EventIn, str]:
    """A decoded export row → the event and its params as JSON. Raises _RowError for the
    first problem found."""
    name = data.get("event_name")
    if not isinstance(name, str) or not EVENT_NAME_RE.fullmatch(name):
        raise _RowError("event_name", EVENT_NAME_MESSAGE, "NAME_INVALID")
    user = data.get("user_pseudo_id")
    if not isinstance(user, str) or not USER_PSEUDO_ID_RE.fullmatch(user):
        code = "USER_PSEUDO_ID_MISSING" if user is None else "USER_PSEUDO_ID_INVALID"
        raise _RowError("user_pseudo_id", USER_ID_MESSAGE, code)
    occurred_at = _occurred_at(data.get("event_timestamp"))
    params = _flatten(data.get("event_params"), "event_params")
    try:
        encoded = orjson.dumps(params)
    except orjson.JSONEncodeError:  # an integer past 64 bits
        encoded = _PARAMS_ENCODER.encode(params).encode()
    size = len(encoded)
    params_json = encoded.decode()
    if size > MAX_PARAMS_BYTES:
        raise _RowError(
            "event_params",
            f"Must be at most {MAX_PARAMS_BYTES} bytes serialized; got {size}.",
            "PARAMS_TOO_LARGE",
        )
    event = EventIn(
        event_name=name,
        user_pseudo_id=user,
        occurred_at=occurred_at,
        event_params=params,
        session_id="" if (session := params.get("ga_session_id")) is None else str(session)[:100],
        page_location="" if (page := params.get("page_location")) is None else str(page),
        page_referrer="" if (referrer := params.get("page_referrer")) is None else str(referrer),
    )
    return event, params_json


def _occurred_at(value: Any) -> datetime:
    # JSON exports write INT64 as a string; a number is accepted too.
    if type(value) is str and _DIGITS.fullmatch(value):
        micros: Any = int(value)
    elif type(value) is float and value.is_integer():
        micros = int(value)
    else:
        micros = value
    if type(micros) is not int or micros <= 0:
        raise _RowError(
            "event_timestamp", "Must be a positive integer (microseconds).", "TIMESTAMP_INVALID"
        )
    # Always microseconds in an export: integer arithmetic keeps every one of them exact.
    try:
        moment = _EPOCH + timedelta(microseconds=micros)
    except OverflowError as exc:
        raise _RowError(
            "event_timestamp", "Timestamp is out of range.", "TIMESTAMP_INVALID"
        ) from exc
    if moment < EARLIEST:
        raise _RowError(
            "event_timestamp",
            "Timestamp is before 2000-01-01 (it must be in microseconds).",
            "TIMESTAMP_INVALID",
        )
    return moment


def _flatten(items: Any, field_name: str) -> dict[str, Any]:
    """GA4's [{"key": k, "value": {"string_value": ..., "int_value": ...}}] → {k: scalar}."""
    if items is None:
        return {}
    if type(items) is not list:
        raise _RowError(field_name, "Must be a list of {key, value}.", "PARAMS_INVALID")
    flat: dict[str, Any] = {}
    for index, item in enumerate(items):
        key = item.get("key") if type(item) is dict else None
        if type(key) is not str:
            raise _RowError(
                f"{field_name}.{index}", "Must be {key: string, value: {...}}.", "PARAMS_INVALID"
            )
        value = item.get("value")
        # Settle the common shapes without a call: this runs for every parameter of every row.
        if type(value) is dict:
            text = value.get("string_value")
            if type(text) is str:
                flat[key] = text
                continue
            number = value.get("int_value")
            if text is None and type(number) is str and _INTEGER.fullmatch(number):
                flat[key] = int(number)
                continue
        try:
            flat[key] = _scalar(value)
        except ValueError as exc:
            raise _RowError(f"{field_name}.{index}.value", str(exc), "PARAMS_INVALID") from exc
    return flat


def _scalar(value: Any) -> Any:
    """The one set member of a GA4 value record; None when none is."""
    if value is None:
        return None
    if type(value) is not dict:
        raise ValueError("Must be an object of typed values.")
    if value.get("string_value") is not None:
        raise ValueError("string_value must be a string.")
    number = value.get("int_value")
    if number is not None:
        # JSON exports write INT64 as a string.
        if type(number) is str and _INTEGER.fullmatch(number):
            return int(number)
        if type(number) is int:
            return number
        raise ValueError("int_value must be an integer.")
    for key in ("double_value", "float_value"):
        number = value.get(key)
        if number is None:
            continue
        if type(number) is str:
            try:
                number = finite_float(number)
            except ValueError:
                number = None
        if type(number) in (int, float):
            return number
        raise ValueError(f"{key} must be a finite number.")
    return None


def _traits_take(traits: dict[str, Any], data: dict[str, Any]) -> None:
    """Fold what a row tells about its visitor into `traits`. Whole objects, as GA4 repeats
    the current device, geo, traffic source and user properties on every row: a later row's
    replace an earlier one's, here and, through the merge, in the stored traits."""
    for key in TRAIT_OBJECTS:
        value = data.get(key)
        if value and type(value) is dict:
            traits[key] = value
    properties = data.get("user_properties")
    if properties:
        # A trait, not the event: bad properties are skipped, the event is kept.
        with contextlib.suppress(_RowError):
            traits["user_properties"] = _flatten(properties, "user_properties")
    user_id = data.get("user_id")
    if user_id and type(user_id) is str:
        traits["user_id"] = user_id


def _raw_text(text: str) -> str:
    return text[:MAX_RAW_CHARS].rstrip("\r\n").replace("\x00", "\ufffd")


def _reject(
    batch: _Batch,
    payload: dict[str, Any],
    reasons: list[dict[str, str]],
    line_number: int,
    *,
    context: str,
    summary: ImportSummary,
) -> None:
    summary.rows_rejected += 1
    if len(summary.errors) < MAX_ERRORS:
        message = "; ".join(f"{r['field']}: {r['message']}" for r in reasons)
        summary.errors.append({"line": line_number, "error": message})
    batch.rejects.append(
        RejectedIn(payload=payload, reasons=reasons, context=context, line_number=line_number)
    )


def _flush(batch: _Batch, *, context: str, summary: ImportSummary) -> None:
    """Store one batch, all or nothing."""
    if not len(batch):
        return
    with transaction.atomic():
        rejected_events_store(source=SOURCE, items=_new_rejects(batch.rejects, context=context))
        imported = _events_store_batch(batch) if batch.events else 0
    summary.rows_imported += imported
    summary.rows_duplicate += len(batch.events) - imported


def _events_store_batch(batch: _Batch) -> int:
    """The batch's events and visitors; how many events were new."""
    if batch.copy_rows is None:
        imported = events_store(events=batch.events, source=SOURCE).accepted
        visitors_merge_traits(
            traits_by_visitor={uid: traits for uid, traits in batch.traits.items() if traits}
        )
        return imported
    new_by_visitor = _store_copy(batch.copy_rows, batch.traits)
    imported = sum(new_by_visitor.values())
    # What events_store does after its inserts: re-segmentation hears of them after commit.
    user_pseudo_ids = tuple(sorted(new_by_visitor))
    if user_pseudo_ids:
        transaction.on_commit(lambda: events_stored_announce(user_pseudo_ids, SOURCE))
    EVENTS_INGESTED.labels(SOURCE.value).inc(imported)
    EVENTS_DUPLICATE.labels(SOURCE.value).inc(len(batch.events) - imported)
    return imported


def _new_rejects(items: list[RejectedIn], *, context: str) -> list[RejectedIn]:
    """Leave out the dead letters a previous import of this file already stored, so that
    importing it again adds nothing here either."""
    if not items:
        return items
    stored: dict[int, list[Any]] = {}
    for line_number, payload in RejectedEvent.objects.filter(
        source=SOURCE, context=context, line_number__in=[item.line_number for item in items]
    ).values_list("line_number", "payload"):
        stored.setdefault(line_number or 0, []).append(payload)
    return [item for item in items if item.payload not in stored.get(item.line_number or 0, [])]


def _event_fields() -> list[models.Field[Any, Any]]:
    fields = [Event._meta.get_field(name) for name in STAGING_COLUMNS]
    return [f for f in fields if isinstance(f, models.Field)]


def _column_list() -> str:
    return ", ".join(connection.ops.quote_name(f.column) for f in _event_fields())


def _staging_prepare() -> None:
    """The session's staging tables, typed like the event and visitor tables."""
    quote = connection.ops.quote_name
    events = ", ".join(f"{quote(f.column)} {f.db_type(connection)}" for f in _event_fields())
    uid = Visitor._meta.get_field("user_pseudo_id")
    assert isinstance(uid, models.Field)  # noqa: S101 - for the type checker
    visitors = f"user_pseudo_id {uid.db_type(connection)}, traits jsonb"
    with connection.cursor() as cursor:
        # Made afresh for each file: a connection can outlive a migration of the event table.
        cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{STAGING_EVENTS}, pg_temp.{STAGING_VISITORS}")
        cursor.execute(f"CREATE TEMPORARY TABLE {STAGING_EVENTS} ({events})")
        cursor.execute(f"CREATE TEMPORARY TABLE {STAGING_VISITORS} ({visitors})")


def _insert_sql() -> str:
    """One statement: insert the new events, then create or update every visitor of the batch
    (first/last seen and count from the new events, as events_store does; traits merged, a
    newer value for a key replacing the older one, as visitors_merge_traits does). Answers
    how many new events each visitor got."""
    quote = connection.ops.quote_name
    events, visitors = quote(Event._meta.db_table), quote(Visitor._meta.db_table)
    columns = _column_list()
    # Rows go in dedupe-key order, visitors in user_pseudo_id order: two imports of overlapping
    # files then take their locks in the same order and cannot deadlock. A visitor whose rows
    # were all duplicates exists already, unless deleted since: then it stays deleted, as
    # visitors_merge_traits leaves it; it has no first/last seen to propose, and NOT NULL is
    # checked before ON CONFLICT, so it proposes +/-infinity, which LEAST/GREATEST ignore.
    # The last WHERE spares the rows that would not change a new version.
    return f"""
        WITH inserted AS (
            INSERT INTO {events} ({columns})
            SELECT {columns} FROM {STAGING_EVENTS} ORDER BY dedupe_key
            ON CONFLICT (dedupe_key) DO NOTHING
            RETURNING user_pseudo_id, occurred_at
        ), seen AS (
            SELECT user_pseudo_id, MIN(occurred_at) AS first_seen,
                   MAX(occurred_at) AS last_seen, COUNT(*) AS events
            FROM inserted GROUP BY user_pseudo_id
        ), upserted AS (
            INSERT INTO {visitors} AS v
                (user_pseudo_id, first_seen, last_seen, event_count, traits)
            SELECT t.user_pseudo_id, COALESCE(s.first_seen, 'infinity'),
                   COALESCE(s.last_seen, '-infinity'), COALESCE(s.events, 0), t.traits
            FROM {STAGING_VISITORS} t LEFT JOIN seen s ON s.user_pseudo_id = t.user_pseudo_id
            WHERE s.user_pseudo_id IS NOT NULL OR (
                t.traits <> '{{}}'
                AND EXISTS (SELECT 1 FROM {visitors} o WHERE o.user_pseudo_id = t.user_pseudo_id)
            )
            ORDER BY t.user_pseudo_id
            ON CONFLICT (user_pseudo_id) DO UPDATE SET
                first_seen = LEAST(v.first_seen, EXCLUDED.first_seen),
                last_seen = GREATEST(v.last_seen, EXCLUDED.last_seen),
                event_count = v.event_count + EXCLUDED.event_count,
                traits = v.traits || EXCLUDED.traits
            WHERE EXCLUDED.event_count > 0 OR v.traits || EXCLUDED.traits <> v.traits
        )
        SELECT user_pseudo_id, events FROM seen
    """  # noqa: S608 - identifiers from model metadata, no input


def _copy_row_add(
    rows: dict[str, tuple[Any, ...]], event: EventIn, params_json: str, received_at: str
) -> None:
    """The event's staging row, unless the batch has it already."""
    # Times go to COPY as ISO text: psycopg formatting a datetime per row costs more.
    occurred_at = event.occurred_at.isoformat()
    key = content_dedupe_key(
        event.user_pseudo_id, event.event_name, occurred_at, event.event_params
    )
    if key in rows:
        return
    # The columns exactly as services._to_row fills them for events_store (a model instance
    # per row would cost a fifth of the import's time); the tests compare the two paths.
    rows[key] = (
        event.event_name,
        event.user_pseudo_id,
        params_json,
        occurred_at,
        received_at,
        SOURCE.value,
        *page_fields(event),
        key,
    )


def _store_copy(
    rows: dict[str, tuple[Any, ...]], traits: dict[str, dict[str, Any]]
) -> dict[str, int]:
    """PostgreSQL: COPY the batch into staging, insert what is new, fold it into visitors.
    Returns how many events were new, by visitor. Must run inside the batch's transaction."""
    with connection.cursor() as cursor:
        copy_events = f"COPY {STAGING_EVENTS} ({_column_list()}) FROM STDIN"
        with cursor.cursor.copy(copy_events) as copy:
            for row in rows.values():
                copy.write_row(row)
        copy_visitors = f"COPY {STAGING_VISITORS} (user_pseudo_id, traits) FROM STDIN"
        with cursor.cursor.copy(copy_visitors) as copy:
            for uid, known in traits.items():
                copy.write_row((uid, _json_text(known)))
        cursor.execute(_insert_sql())
        new_by_visitor = {uid: int(count) for uid, count in cursor.fetchall()}
        cursor.execute(f"TRUNCATE {STAGING_EVENTS}, {STAGING_VISITORS}")
    return new_by_visitor
