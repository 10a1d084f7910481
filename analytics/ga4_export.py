"""Import of GA4 BigQuery-export files: one JSON event row per line, plain or gzip.

Files run to millions of rows, so they are streamed in batches of constant size, each batch
in its own transaction; a crash leaves whole batches only, and a re-import adds nothing
(export rows carry no event id, so the dedupe key is the hash of the row's content).
Elsewhere a batch goes through `events_store` and `visitors_merge_traits`. On PostgreSQL,
about ten times faster, it is COPYed into temporary staging tables and stored by one
statement: INSERT ... ON CONFLICT DO NOTHING for the events, then an upsert of the visitors
that keeps first/last seen and counts as events_store does and merges traits as
visitors_merge_traits does. The tests check that both paths store the same.
The file is read, validated and keyed ahead of the storing, in a child process where one can
start (see read_ahead), so that parsing and storing use two cores; on the COPY path that
process hands over the staging tables' COPY text, ready to send.
Row format: docs/INTEGRATIONS.md, "GA4 BigQuery export rows (NDJSON)".
"""

from __future__ import annotations

import codecs
import contextlib
import functools
import gc
import gzip
import io
import json
import logging
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from queue import Queue
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, connections, models, transaction
from django.utils import timezone
from tqdm import tqdm

from ops.metrics import EVENTS_DUPLICATE, EVENTS_INGESTED
from portfolio.api.json_depth import json_too_deep, too_deep_message
from portfolio.storable import storable_json, storable_text

from .dead_letters import dead_letter_scrub
from .models import Event, EventSource, GA4ExportUpload, ImportStatus, RejectedEvent, Visitor
from .read_ahead import ReadAhead
from .services import (
    EventIn,
    RejectedIn,
    content_dedupe_digest,
    events_store,
    events_stored_announce,
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
# What the staging table holds; received_at and source, the same for a whole batch, are given
# to the INSERT instead.
STAGING_COLUMNS = (
    "event_name",
    "user_pseudo_id",
    "event_params",
    "occurred_at",
    "session_id",
    "page_location",
    "page_referrer",
    "dedupe_key",
)
# PostgreSQL cannot store NUL in text or jsonb, nor an unpaired surrogate in UTF-8; a line
# whose JSON escapes could hold either gets the exact (slower) check.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DIGITS = re.compile(r"[0-9]{1,19}")
# Text COPY's special characters, in a value; anything else goes as it is.
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_TABS = len(STAGING_COLUMNS) - 1
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
    """Up to batch_size lines, validated: events and dead letters, stored in one transaction.

    Made where the file is read (a child process or thread, see read_ahead). On the COPY path
    the events travel as the staging tables' COPY text, made there too: one line per distinct
    dedupe key in `copy_events`, one per visitor in `copy_visitors`; elsewhere as EventIn.
    """

    copy: bool = False
    events: list[EventIn] = field(default_factory=list)  # not on the COPY path
    event_count: int = 0  # events taken, a repeated dedupe key included
    traits: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejects: list[RejectedIn] = field(default_factory=list)
    position: int = 0  # bytes read from the file when the batch was complete
    received_at: datetime = field(default_factory=timezone.now)
    copy_events: bytes = b""
    copy_visitors: bytes = b""
    # Only the file's last batch tells these: lines read, and why the stream stopped early.
    last_line: int = 0
    damage: str = ""
    # The COPY path's work in progress, emptied by finish(): staging rows by (visitor, dedupe
    # key's 16 bytes), the order they are inserted in. The key alone tells the visitor.
    _copy_rows: dict[tuple[str, bytes], str] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.event_count + len(self.rejects)

    def take(
        self,
        name: str,
        user: str,
        occurred_at: datetime,
        params: dict[str, Any],
        params_json: str,
        data: dict[str, Any],
    ) -> None:
        """One valid row."""
        self.event_count += 1
        if self.copy:
            self._copy_row_add(name, user, occurred_at.isoformat(), params, params_json)
        else:
            self.events.append(
                EventIn(
                    event_name=name,
                    user_pseudo_id=user,
                    occurred_at=occurred_at,
                    event_params=params,
                    session_id=_param_text(params, "ga_session_id")[:100],
                    page_location=_param_text(params, "page_location"),
                    page_referrer=_param_text(params, "page_referrer"),
                )
            )
        # Every visitor of the batch gets an entry, with or without traits: the COPY path
        # upserts visitors from these.
        traits = self.traits.get(user)
        if traits is None:
            traits = self.traits[user] = {}
        _traits_take(traits, data)

    def _copy_row_add(
        self, name: str, user: str, occurred_at: str, params: dict[str, Any], params_json: str
    ) -> None:
        """The event's staging row as COPY text, unless the batch has its dedupe key already.
        The columns exactly as services._to_row fills them for events_store (the tests compare
        the two paths); times as ISO text, which PostgreSQL parses faster than psycopg
        formats a datetime."""
        key = content_dedupe_digest(user, name, occurred_at, params)
        if (user, key) in self._copy_rows:
            return
        values = (
            name,
            user,
            params_json,
            occurred_at,
            _param_text(params, "ga_session_id")[:100],
            _param_text(params, "page_location"),
            _param_text(params, "page_referrer"),
            key.hex(),  # uuid's input takes 32 hex digits
        )
        line = "\t".join(values)
        # Rarely a value needs escaping (names, visitor ids, times and keys are plain by
        # validation; JSON holds no raw control character): look at the whole line at once.
        if "\\" in line or "\n" in line or "\r" in line or line.count("\t") != _COPY_TABS:
            line = "\t".join([_copy_escape(value) for value in values])
        self._copy_rows[user, key] = line

    def finish(self) -> None:
        """Complete the COPY text: what is sent to the storing side is bytes alone. Rows go
        in the order the INSERT sorts them in (events by visitor then dedupe key, visitors by
        id; byte order: code point order is UTF-8's byte order, and a uuid sorts by its
        bytes), sorted here, where there is a core to spare: PostgreSQL then finds them
        sorted already."""
        if not self.copy:
            return
        rows = self._copy_rows
        self.copy_events = "".join([f"{rows[key]}\n" for key in sorted(rows)]).encode()
        traits = self.traits
        self.copy_visitors = b"".join(
            [b"%s\t%s\n" % (uid.encode(), _copy_json(traits[uid])) for uid in sorted(traits)]
        )
        self._copy_rows, self.traits = {}, {}


def _param_text(params: dict[str, Any], name: str) -> str:
    """A param as text for a column; absent or null is "" (services.param_text)."""
    value = params.get(name)
    return "" if value is None else str(value)


def _copy_json(value: Any) -> bytes:
    """Compact JSON for a jsonb column, escaped for text COPY (JSON holds no raw control
    character: only its backslashes need doubling)."""
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:  # an integer past 64 bits
        encoded = _PARAMS_ENCODER.encode(value).encode()
    return encoded.replace(b"\\", b"\\\\") if b"\\" in encoded else encoded


def _copy_escape(text: str) -> str:
    """A value for text COPY: backslash, newline, carriage return and tab escaped."""
    if not _COPY_SPECIAL.search(text):
        return text
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def import_export_file(
    path: str | Path,
    *,
    context: str = "",
    progress: bool = False,
    batch_size: int = 20_000,
    use_copy: bool | None = None,
    read_in_process: bool | None = None,
    on_batch: Callable[[ImportSummary], None] | None = None,
) -> ImportSummary:
    """Import a GA4 BigQuery-export NDJSON file (gzip detected by its magic bytes).

    Bad lines are dead-lettered with their line number and skipped; a damaged gzip stream
    keeps what precedes the damage. `context` names the file in dead letters (default: its
    name). `use_copy` picks the PostgreSQL COPY path (default: on PostgreSQL) or forces the
    portable `events_store` path with False. `read_in_process` reads the file in a child
    process (default: on the COPY path); where none can start, as in a daemonic process, a
    thread reads it. `on_batch` is called after each batch is stored (a heartbeat).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    path = Path(path)
    # Dead letters are stored and looked up by it (replays): storable, as RejectedEvent keeps it.
    context = storable_text(context or path.name)[:300]
    if use_copy is None:
        use_copy = connection.vendor == "postgresql"
    elif use_copy and connection.vendor != "postgresql":
        raise ValueError("the COPY path needs PostgreSQL")
    if read_in_process is None:
        read_in_process = use_copy
    summary = ImportSummary()
    started = time.monotonic()
    size = path.stat().st_size
    last: _Batch | None = None

    def produce() -> Iterator[_Batch]:
        return _read_batches(path, batch_size=batch_size, use_copy=use_copy, context=context)

    with _cycle_collector_paused():
        if use_copy:
            _staging_prepare()
        # Started before the progress bar: a child process is forked before its thread exists.
        with (
            ReadAhead(produce, process=read_in_process) as ready,
            tqdm(
                total=size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=path.name,
                disable=not progress,
                leave=False,
            ) as bar,
            _Announcer() as announcer,
        ):
            for batch in ready:
                _account(batch, summary)
                _flush(batch, context=context, summary=summary, announcer=announcer)
                if on_batch is not None:
                    on_batch(summary)
                bar.update(batch.position - bar.n)
                last = batch
    if last is not None and last.damage:
        summary.truncated = True
        summary.errors.append(
            {"line": last.last_line + 1, "error": f"file truncated or corrupt: {last.damage}"}
        )
    logger.info(
        "ga4_export.imported",
        extra={
            "context": context,
            "seconds": round(time.monotonic() - started, 3),
            "reader": "process" if ready.in_process else "thread",
            **{k: v for k, v in summary.as_dict().items() if k != "errors"},
        },
    )
    return summary


def _heartbeat_seconds() -> float:
    """How often a running import moves its upload's heartbeat_at: every 10 s, and at least
    6 times within GA4_IMPORT_STALE_SECONDS, so a live import never looks dead."""
    return min(10.0, settings.GA4_IMPORT_STALE_SECONDS / 6)


def import_upload(upload_id: int, *, resume: bool = False, redelivered: bool = False) -> None:
    """Import an admin upload and record the outcome on it; re-running it is harmless.

    While it runs, the upload's heartbeat_at moves every 10 s: an upload left
    "running" by a killed worker stops moving and `uploads_resume_stale` re-queues it with
    `resume`, which claims the upload only if it is still unfinished and its heartbeat stale
    (or it waits, re-queued): never a second run beside a live one, nor over a finished one.
    A `redelivered` message (the broker's copy of a killed run's, an hour later) leaves a
    finished upload alone too.
    """
    now = timezone.now()
    finished = (ImportStatus.DONE, ImportStatus.FAILED)
    if redelivered and GA4ExportUpload.objects.filter(pk=upload_id, status__in=finished).exists():
        logger.info("ga4_export.redelivery_skipped", extra={"upload_id": upload_id})
        return
    if resume:
        claimed = (
            GA4ExportUpload.objects.filter(pk=upload_id)
            .filter(
                models.Q(status=ImportStatus.PENDING)
                | models.Q(status=ImportStatus.RUNNING, heartbeat_at__lt=_stale_before(now))
            )
            .update(status=ImportStatus.RUNNING, heartbeat_at=now)
        )
        if not claimed:
            logger.info("ga4_export.resume_skipped", extra={"upload_id": upload_id})
            return
    upload = GA4ExportUpload.objects.get(pk=upload_id)
    upload.status = ImportStatus.RUNNING
    upload.heartbeat_at = now
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
        "heartbeat_at",
    ]
    # update_fields: the admin writes task_id to this row concurrently.
    upload.save(update_fields=fields)
    last_beat, every = time.monotonic(), _heartbeat_seconds()

    def heartbeat(summary: ImportSummary) -> None:
        nonlocal last_beat
        if time.monotonic() - last_beat < every:
            return
        last_beat = time.monotonic()
        GA4ExportUpload.objects.filter(pk=upload_id).update(
            heartbeat_at=timezone.now(), rows_read=summary.rows_read
        )

    try:
        summary = import_export_file(upload.file.path, context=upload.file.name, on_batch=heartbeat)
    except Exception as exc:
        upload.status = ImportStatus.FAILED
        upload.errors = [{"line": None, "error": f"{type(exc).__name__}: {exc}"}]
        upload.finished_at = upload.heartbeat_at = timezone.now()
        upload.save(update_fields=fields)
        raise
    upload.status = ImportStatus.DONE
    upload.rows_read = summary.rows_read
    upload.rows_imported = summary.rows_imported
    upload.rows_duplicate = summary.rows_duplicate
    upload.rows_rejected = summary.rows_rejected
    upload.errors = summary.errors
    upload.finished_at = upload.heartbeat_at = timezone.now()
    upload.save(update_fields=fields)


def _stale_before(now: datetime) -> datetime:
    return now - timedelta(seconds=settings.GA4_IMPORT_STALE_SECONDS)


def uploads_resume_stale(*, now: datetime | None = None, queue: str | None = None) -> list[int]:
    """Re-queue the imports whose worker died: "running" with a heartbeat older than
    GA4_IMPORT_STALE_SECONDS, or re-queued by an earlier sweep and still not started (that
    message was lost too). Each is claimed by one conditional UPDATE, so concurrent sweeps
    queue it once; its heartbeat then restarts the wait. The ids re-queued."""
    from .tasks import import_ga4_upload

    now = now or timezone.now()
    stale = models.Q(heartbeat_at__lt=_stale_before(now)) | models.Q(
        heartbeat_at__isnull=True,
        uploaded_at__lt=_stale_before(now),  # running before heartbeats
    )
    candidates = GA4ExportUpload.objects.filter(
        models.Q(status=ImportStatus.RUNNING, finished_at__isnull=True) & stale
        | models.Q(status=ImportStatus.PENDING, heartbeat_at__lt=_stale_before(now))
    ).values_list("pk", "heartbeat_at")
    resumed = []
    options: dict[str, Any] = {"queue": queue} if queue else {}
    for pk, heartbeat_at in candidates:
        claimed = (
            GA4ExportUpload.objects.filter(pk=pk, heartbeat_at=heartbeat_at)
            .exclude(status__in=[ImportStatus.DONE, ImportStatus.FAILED])
            .update(status=ImportStatus.PENDING, heartbeat_at=now)
        )
        if not claimed:
            continue  # another sweep, or the import itself, moved it first
        resumed.append(pk)
        transaction.on_commit(
            functools.partial(
                import_ga4_upload.apply_async, args=[pk], kwargs={"resume": True}, **options
            )
        )
        logger.warning("ga4_export.import_resumed", extra={"upload_id": pk})
    return resumed


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


def _read_batches(path: Path, *, batch_size: int, use_copy: bool, context: str) -> Iterator[_Batch]:
    """The file's lines, validated into batches; the last one (maybe empty) tells how many
    lines there were and whether the stream was damaged. Runs where the file is read (a child
    process or thread): it touches no database connection."""
    with path.open("rb") as raw:
        is_gzip = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        stream: io.BufferedIOBase = gzip.GzipFile(fileobj=raw, mode="rb") if is_gzip else raw
        lines = _Lines(stream)
        batch = _Batch(copy=use_copy)
        for line_number, line in lines:
            _take_line(batch, line, line_number, context=context)
            if len(batch) >= batch_size:
                batch.position = raw.tell()
                batch.finish()
                yield batch
                batch = _Batch(copy=use_copy)
        batch.position = raw.tell()
        batch.last_line = lines.line_number
        batch.damage = lines.damage
        batch.finish()
        yield batch


def _account(batch: _Batch, summary: ImportSummary) -> None:
    """Count a batch's lines and report its bad ones, the first MAX_ERRORS of the file."""
    summary.rows_read += len(batch)
    summary.rows_rejected += len(batch.rejects)
    for item in batch.rejects:
        if len(summary.errors) >= MAX_ERRORS:
            break
        message = "; ".join(f"{r['field']}: {r['message']}" for r in item.reasons)
        summary.errors.append({"line": item.line_number, "error": message})


class _Lines:
    """(line number, line) of the non-blank lines, without their line break; a line over
    MAX_LINE_BYTES comes as None, and is never held whole. Stops at a damaged gzip stream,
    after every line completed before the damage, and keeps why in `damage`."""

    def __init__(
        self,
        stream: io.BufferedIOBase,
        *,
        max_line_bytes: int = MAX_LINE_BYTES,
        chunk_bytes: int = 64 * 1024,
    ) -> None:
        self.stream = stream
        self.max_line_bytes = max_line_bytes
        self.chunk_bytes = chunk_bytes
        self.line_number = 0
        self.damage = ""

    def __iter__(self) -> Iterator[tuple[int, bytes | None]]:
        # Chunks split into lines: a third of readline's time per line. read1 makes one read
        # of the stream at most, so a damaged stream loses no line completed before it.
        read1, size, limit = self.stream.read1, self.chunk_bytes, self.max_line_bytes
        head = b""  # the current line's start, from earlier chunks
        too_long = False  # the current line is over the limit: skipped to its end
        try:
            while chunk := read1(size):
                lines = chunk.split(b"\n")
                tail = lines.pop()  # the start of a line the next chunk ends
                if lines:
                    first = lines[0]
                    if too_long or len(head) + len(first) > limit:
                        lines[0] = b""
                        self.line_number += 1
                        yield self.line_number, None
                        start = 1
                    else:
                        lines[0] = head + first if head else first
                        start = 0
                    head, too_long = b"", False
                    for index in range(start, len(lines)):
                        line = lines[index]
                        self.line_number += 1
                        if len(line) > limit:
                            yield self.line_number, None
                        elif line and not line.isspace():
                            yield self.line_number, line
                if too_long:
                    continue
                if len(head) + len(tail) > limit:
                    head, too_long = b"", True
                else:
                    head += tail
            if too_long or head:
                self.line_number += 1
                if too_long:
                    yield self.line_number, None
                elif not head.isspace():
                    yield self.line_number, head
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


def _take_line(batch: _Batch, line: bytes | None, line_number: int, *, context: str) -> None:
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
        if json_too_deep(line):  # about 2 us a line; nothing deeper reaches a recursive walk
            raise _RowError("line", too_deep_message(), "TOO_DEEP")
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
        name, user, occurred_at, params, params_json = _parse_row(data)
    except _RowError as exc:
        stored = isinstance(data, dict) and exc.reason["code"] != "TEXT_INVALID"
        if stored:
            payload = data
        else:
            text = "" if line is None else line.decode("utf-8", "replace")
            payload = {"raw": _raw_text(text)}
        batch.rejects.append(
            RejectedIn(
                payload=payload, reasons=[exc.reason], context=context, line_number=line_number
            )
        )
        return
    batch.take(name, user, occurred_at, params, params_json, data)


def _parse_row(data: dict[str, Any]) -> tuple[str, str, datetime, dict[str, Any], str]:
    """A decoded export row → (event name, visitor, time, params, params as JSON). Raises
    _RowError for the first problem found."""
    name = data.get("event_name")
    if type(name) is not str or (name not in _VALID_NAMES and not _valid_name(name)):
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
    return name, user, occurred_at, params, params_json


# An export holds a few dozen event names: each is checked once.
_VALID_NAMES: set[str] = set()


def _valid_name(name: str) -> bool:
    if not EVENT_NAME_RE.fullmatch(name):
        return False
    if len(_VALID_NAMES) < 10_000:
        _VALID_NAMES.add(name)
    return True


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
            if text is None and type(number) is str and _is_int64_text(number):
                flat[key] = int(number)
                continue
        try:
            flat[key] = _scalar(value)
        except ValueError as exc:
            raise _RowError(f"{field_name}.{index}.value", str(exc), "PARAMS_INVALID") from exc
    return flat


def _is_int64_text(text: str) -> bool:
    """_INTEGER.fullmatch, faster for the usual non-negative numbers."""
    if text.isdigit() and text.isascii():
        return len(text) <= 19
    return _INTEGER.fullmatch(text) is not None


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


class _Announcer:
    """events_stored_announce for the COPY path's batches, from a thread while the import goes
    on: queueing re-segmentation costs a few µs per visitor, which the import's process would
    otherwise spend while PostgreSQL waits for the next batch. In order, after each commit
    (announce() is an on_commit callback). A listener's exception is raised by the next
    announce() or by leaving the context. Once closed, it announces directly."""

    def __init__(self) -> None:
        self._queue: Queue[tuple[str, ...] | None] = Queue(maxsize=4)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._closed = False

    def announce(self, user_pseudo_ids: tuple[str, ...]) -> None:
        if self._closed:
            events_stored_announce(user_pseudo_ids, SOURCE)
            return
        self._raise_error()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ga4-export-announcer")
            self._thread.start()
        self._queue.put(user_pseudo_ids)

    def _run(self) -> None:
        try:
            while (user_pseudo_ids := self._queue.get()) is not None:
                if self._error is None:
                    try:
                        events_stored_announce(user_pseudo_ids, SOURCE)
                    except BaseException as exc:
                        self._error = exc
        finally:
            # A listener may have used the database (an eager Celery task does): this
            # thread's connections end with it.
            connections.close_all()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def __enter__(self) -> _Announcer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
        if exc_info[0] is None:
            self._raise_error()


def _flush(batch: _Batch, *, context: str, summary: ImportSummary, announcer: _Announcer) -> None:
    """Store one batch, all or nothing."""
    if not len(batch):
        return
    own_transaction = not connection.in_atomic_block
    with transaction.atomic():
        if own_transaction and connection.vendor == "postgresql":
            _commit_without_waiting_for_disk()
        rejected_events_store(source=SOURCE, items=_new_rejects(batch.rejects, context=context))
        imported = _events_store_batch(batch, announcer) if batch.event_count else 0
    summary.rows_imported += imported
    summary.rows_duplicate += batch.event_count - imported


def _commit_without_waiting_for_disk() -> None:
    """The batch's COMMIT returns before its WAL is flushed to disk; the WAL writer flushes it
    a fraction of a second later. A crash in between may lose the last batches committed,
    whole (never part of one, never corrupting anything): harmless, as the import is
    idempotent, and importing the file again stores exactly those. Any synchronous commit
    after them (import_upload's record of the outcome) flushes them too, WAL being written in
    order. Only in a transaction of the batch's own: SET LOCAL lasts until the end of the
    top-level transaction, and a caller's would otherwise lose its durability too."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")


def _events_store_batch(batch: _Batch, announcer: _Announcer) -> int:
    """The batch's events and visitors; how many events were new."""
    if not batch.copy:
        imported = events_store(events=batch.events, source=SOURCE).accepted
        visitors_merge_traits(
            traits_by_visitor={uid: traits for uid, traits in batch.traits.items() if traits}
        )
        return imported
    new_by_visitor = _store_copy(batch)
    imported = sum(new_by_visitor.values())
    # What events_store does after its inserts: re-segmentation hears of them after commit.
    user_pseudo_ids = tuple(sorted(new_by_visitor))
    if user_pseudo_ids:
        transaction.on_commit(lambda: announcer.announce(user_pseudo_ids))
    EVENTS_INGESTED.labels(SOURCE.value).inc(imported)
    EVENTS_DUPLICATE.labels(SOURCE.value).inc(batch.event_count - imported)
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
    # Compared as stored: dead letters are written without personal fields (dead_letters.py).
    return [
        item
        for item in items
        if storable_json(dead_letter_scrub(item.payload, source=SOURCE))
        not in stored.get(item.line_number or 0, [])
    ]


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
    received_at, source = quote("received_at"), quote("source")
    # Rows go in (user_pseudo_id, dedupe_key) order, visitors in user_pseudo_id order, as
    # events_store's: every writer then takes its locks in the same order, and overlapping
    # batches cannot deadlock. A key tells its visitor (both hashes cover it), so this is one
    # order of the keys. Byte order: the ids COLLATE "C", a uuid compares its bytes. By visitor
    # first, the inserts into the (user_pseudo_id, occurred_at) index walk it in one direction,
    # as the visitor upsert walks the visitor index; the uuid dedupe index, the smaller, is
    # the one left to keys in random order.
    # A visitor whose rows were all duplicates exists already, unless deleted since: then it
    # stays deleted, as visitors_merge_traits leaves it; it has no first/last seen to propose,
    # and NOT NULL is checked before ON CONFLICT, so it proposes +/-infinity, which
    # LEAST/GREATEST ignore. Whether it exists is asked by a scalar subquery (true or NULL:
    # the id is unique), an index lookup per row: as EXISTS the planner may hash the whole
    # visitor table instead, once per batch, which made re-imports of big files crawl.
    # The last WHERE spares the rows that would not change a new version.
    return f"""
        WITH inserted AS (
            INSERT INTO {events} ({columns}, {received_at}, {source})
            SELECT {columns}, %s::timestamptz, %s FROM {STAGING_EVENTS}
            ORDER BY user_pseudo_id COLLATE "C", dedupe_key
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
                AND (SELECT true FROM {visitors} o WHERE o.user_pseudo_id = t.user_pseudo_id)
            )
            ORDER BY t.user_pseudo_id COLLATE "C"
            ON CONFLICT (user_pseudo_id) DO UPDATE SET
                first_seen = LEAST(v.first_seen, EXCLUDED.first_seen),
                last_seen = GREATEST(v.last_seen, EXCLUDED.last_seen),
                event_count = v.event_count + EXCLUDED.event_count,
                traits = v.traits || EXCLUDED.traits
            WHERE EXCLUDED.event_count > 0 OR v.traits || EXCLUDED.traits <> v.traits
        )
        SELECT user_pseudo_id, events FROM seen
    """  # noqa: S608 - identifiers from model metadata, no input


_WORK_MEM_SQL = """
    SELECT set_config('work_mem',
                      GREATEST(pg_size_bytes(current_setting('work_mem')), %s) / 1024 || 'kB',
                      true)
"""


def _store_copy(batch: _Batch) -> dict[str, int]:
    """PostgreSQL: COPY the batch into staging, insert what is new, fold it into visitors.
    Returns how many events were new, by visitor. Must run inside the batch's transaction."""
    with connection.cursor() as cursor:
        # Room to sort the batch in memory: past work_mem (4 MB by default, a few thousand
        # rows) the sorts would spill to disk.
        cursor.execute(_WORK_MEM_SQL, [3 * (len(batch.copy_events) + len(batch.copy_visitors))])
        copy_events = f"COPY {STAGING_EVENTS} ({_column_list()}) FROM STDIN"
        with cursor.cursor.copy(copy_events) as copy:
            copy.write(batch.copy_events)
        copy_visitors = f"COPY {STAGING_VISITORS} (user_pseudo_id, traits) FROM STDIN"
        with cursor.cursor.copy(copy_visitors) as copy:
            copy.write(batch.copy_visitors)
        cursor.execute(_insert_sql(), [batch.received_at, SOURCE.value])
        new_by_visitor = {uid: int(count) for uid, count in cursor.fetchall()}
        cursor.execute(f"TRUNCATE {STAGING_EVENTS}, {STAGING_VISITORS}")
    return new_by_visitor
