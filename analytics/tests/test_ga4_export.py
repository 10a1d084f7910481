"""GA4 BigQuery-export import, on the files such an export writes (built here in tmp_path).

Runs on SQLite (the events_store path) and, with DATABASE_URL, on PostgreSQL (the COPY path);
the two must store the same rows, which the PostgreSQL run also checks directly.
"""

import gzip
import io
import json
import re
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import ga4_export
from analytics.ga4_export import MAX_LINE_BYTES, ImportSummary, import_export_file, import_upload
from analytics.models import (
    Event,
    EventSource,
    GA4ExportUpload,
    ImportStatus,
    RejectedEvent,
    Visitor,
)
from analytics.signals import events_stored
from analytics.tasks import import_ga4_upload
from conftest import run_celery_worker

T0 = 1_732_000_000_000_000  # µs: 2024-11-19 07:06:40 UTC
MOMENT = datetime(2024, 11, 19, 7, 6, 40, tzinfo=UTC)
VISITOR = "1234567.7654321"


# --- A small generator of export rows, shaped as BigQuery's JSON export writes them ---------


def typed(value):
    """One GA4 value record: every member present, the unused ones null, INT64 as a string."""
    record: dict[str, object] = {
        "string_value": None,
        "int_value": None,
        "float_value": None,
        "double_value": None,
    }
    if isinstance(value, str):
        record["string_value"] = value
    elif isinstance(value, int):
        record["int_value"] = str(value)
    elif isinstance(value, float):
        record["double_value"] = value
    return record


def export_row(
    *,
    user=VISITOR,
    name="page_view",
    micros=T0,
    params=None,
    user_id=None,
    user_properties=None,
    device_category="desktop",
    country="Germany",
):
    params = {
        "ga_session_id": 1732000000,
        "ga_session_number": 2,
        "page_location": "https://jane.dev/projects/llm-eval",
        "page_title": "LLM evaluation harness",
        "engagement_time_msec": 5120,
        **(params or {}),
    }
    return {
        "event_date": "20241119",
        "event_timestamp": str(micros),
        "event_name": name,
        "event_params": [{"key": key, "value": typed(value)} for key, value in params.items()],
        "event_previous_timestamp": None,
        "event_bundle_sequence_id": "1618239",
        "user_id": user_id,
        "user_pseudo_id": user,
        "privacy_info": {"analytics_storage": "Yes", "ads_storage": "No"},
        "user_properties": [
            {"key": key, "value": {**typed(value), "set_timestamp_micros": str(T0)}}
            for key, value in (user_properties or {}).items()
        ],
        "user_first_touch_timestamp": str(T0 - 86_400_000_000),
        "device": {
            "category": device_category,
            "mobile_brand_name": None,
            "operating_system": "Linux",
            "language": "en-us",
            "web_info": {"browser": "Chrome", "browser_version": "131.0.0.0"},
        },
        "geo": {"country": country, "city": "Berlin", "continent": "Europe"},
        "app_info": None,
        "traffic_source": {"name": "(organic)", "medium": "organic", "source": "google"},
        "collected_traffic_source": {"manual_source": "google", "manual_medium": "organic"},
        "stream_id": "4567890123",
        "platform": "WEB",
        "ecommerce": None,
        "items": [],
    }


def session(user=VISITOR, count=3, start=T0):
    return [
        export_row(user=user, micros=start + i * 1_000_000, params={"page_number": i})
        for i in range(count)
    ]


def write_export(path, lines, *, compress=False):
    """NDJSON of `lines`: dicts are rows, strings and bytes are written as they are."""
    body = b"".join(
        (line if isinstance(line, bytes) else line.encode())
        if isinstance(line, (str, bytes))
        else json.dumps(line).encode() + b"\n"
        for line in lines
    )
    path = Path(path)
    path.write_bytes(gzip.compress(body) if compress else body)
    return path


def stored():
    """Everything an import writes, in a comparable form (ids and received_at left out)."""
    events = sorted(
        Event.objects.values_list(
            "dedupe_key",
            "event_name",
            "user_pseudo_id",
            "event_params",
            "occurred_at",
            "source",
            "session_id",
            "page_location",
            "page_referrer",
        )
    )
    visitors = sorted(
        Visitor.objects.values_list(
            "user_pseudo_id", "first_seen", "last_seen", "event_count", "traits"
        )
    )
    rejected = sorted(
        RejectedEvent.objects.values_list("line_number", "context", "source", "reasons")
    )
    return events, visitors, rejected


def counts(summary: ImportSummary):
    return (
        summary.rows_read,
        summary.rows_imported,
        summary.rows_duplicate,
        summary.rows_rejected,
    )


# --- Files -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_import_export_file__plain_ndjson__events_stored_from_rows(tmp_path):
    path = write_export(tmp_path / "events_20241119.json", session(count=3))

    summary = import_export_file(path)

    assert counts(summary) == (3, 3, 0, 0)
    assert summary.errors == []
    assert not summary.truncated
    event = Event.objects.get(event_params__page_number=1)
    assert event.event_name == "page_view"
    assert event.user_pseudo_id == VISITOR
    assert event.source == EventSource.GA4_EXPORT
    assert event.occurred_at == MOMENT + timedelta(seconds=1)
    assert event.session_id == "1732000000"
    assert event.page_location == "https://jane.dev/projects/llm-eval"
    assert event.event_params == {
        "ga_session_id": 1732000000,
        "ga_session_number": 2,
        "page_location": "https://jane.dev/projects/llm-eval",
        "page_title": "LLM evaluation harness",
        "engagement_time_msec": 5120,
        "page_number": 1,
    }


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "compress"), [("export.json", True), ("export.json.gz", False)])
def test_import_export_file__any_file_name__gzip_told_by_magic_bytes(tmp_path, name, compress):
    path = write_export(tmp_path / name, session(count=2), compress=compress)

    assert counts(import_export_file(path)) == (2, 2, 0, 0)


@pytest.mark.django_db
def test_import_export_file__gzip_bad_line_in_middle__neighbours_imported_line_dead_lettered(
    tmp_path,
):
    rows = session(count=4)
    lines = [*rows[:2], '{"event_name": "page_view", "user_pseudo_id": \n', *rows[2:]]
    path = write_export(tmp_path / "export.json.gz", lines, compress=True)

    summary = import_export_file(path)

    assert counts(summary) == (5, 4, 0, 1)
    assert len(summary.errors) == 1
    assert summary.errors[0]["line"] == 3
    assert "Invalid JSON" in summary.errors[0]["error"]
    assert Event.objects.count() == 4
    dead = RejectedEvent.objects.get()
    assert dead.source == EventSource.GA4_EXPORT
    assert dead.line_number == 3
    assert dead.context == "export.json.gz"
    assert dead.payload == {"raw": '{"event_name": "page_view", "user_pseudo_id": '}
    assert dead.reasons[0]["code"] == "INVALID_JSON"


@pytest.mark.django_db
def test_import_export_file__int64_as_strings_or_numbers__same_values(tmp_path):
    as_strings = export_row(params={"value_cents": 4200, "ratio": 0.5})
    as_numbers = export_row(user="99.11", params={"value_cents": 4200, "ratio": 0.5})
    as_numbers["event_timestamp"] = T0
    for param in as_numbers["event_params"]:
        if param["value"]["int_value"] is not None:
            param["value"]["int_value"] = int(param["value"]["int_value"])
    path = write_export(tmp_path / "export.json", [as_strings, as_numbers])

    import_export_file(path)

    by_string, by_number = (
        Event.objects.get(user_pseudo_id=VISITOR),
        Event.objects.get(user_pseudo_id="99.11"),
    )
    assert by_string.occurred_at == by_number.occurred_at == MOMENT
    assert by_string.event_params == by_number.event_params
    assert by_string.event_params["value_cents"] == 4200
    assert by_string.event_params["ga_session_id"] == 1732000000
    assert by_string.event_params["ratio"] == 0.5


@pytest.mark.django_db
def test_import_export_file__microsecond_timestamps__kept_exactly(tmp_path):
    path = write_export(tmp_path / "export.json", [export_row(micros=T0 + 695_757)])

    import_export_file(path)

    assert Event.objects.get().occurred_at == MOMENT + timedelta(microseconds=695_757)


@pytest.mark.django_db
def test_import_export_file__imported_again__nothing_added_all_duplicates(tmp_path):
    lines = [*session(count=3), *session(user="42.42", count=2), "not json\n"]
    path = write_export(tmp_path / "export.json.gz", lines, compress=True)
    import_export_file(path)
    before = stored()

    again = import_export_file(path)

    assert counts(again) == (6, 0, 5, 1)
    assert stored() == before
    assert RejectedEvent.objects.count() == 1


@pytest.mark.django_db
def test_import_export_file__same_row_twice_in_file__stored_once(tmp_path):
    row = export_row()
    path = write_export(tmp_path / "export.json", [row, export_row(micros=T0 + 1), row])

    summary = import_export_file(path, batch_size=2)

    assert counts(summary) == (3, 2, 1, 0)
    assert Event.objects.count() == 2
    assert Visitor.objects.get().event_count == 2


def _complete_lines_before_damage(data: bytes) -> int:
    """How many whole lines a damaged gzip stream still holds: the import's expected yield."""
    inflated = zlib.decompressobj(wbits=31).decompress(data)
    return inflated.count(b"\n")


@pytest.mark.django_db
def test_import_export_file__truncated_gzip__rows_before_damage_imported_and_reported(tmp_path):
    rows = [export_row(micros=T0 + i, params={"nonce": uuid.uuid4().hex}) for i in range(400)]
    whole = gzip.compress(b"".join(json.dumps(row).encode() + b"\n" for row in rows))
    cut = whole[: len(whole) // 2]
    path = tmp_path / "export.json.gz"
    path.write_bytes(cut)
    complete = _complete_lines_before_damage(cut)

    summary = import_export_file(path, batch_size=50)

    assert 0 < complete < 400
    assert summary.truncated
    assert counts(summary) == (complete, complete, 0, 0)
    assert Event.objects.count() == complete
    damage = summary.errors[-1]
    assert damage["line"] == complete + 1
    assert "truncated or corrupt" in damage["error"]


@pytest.mark.django_db
def test_import_export_file__gzip_cut_inside_header__reported_not_raised(tmp_path):
    path = tmp_path / "export.json.gz"
    path.write_bytes(gzip.compress(b"{}\n")[:5])

    summary = import_export_file(path)

    assert summary.truncated
    assert counts(summary) == (0, 0, 0, 0)
    assert summary.errors[0]["line"] == 1


# --- Visitors ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_import_export_file__visitors__first_last_seen_count_and_traits_across_batches(tmp_path):
    rows = [
        export_row(micros=T0 + 5_000_000, user_properties={"plan": "free"}),
        export_row(micros=T0, user_id="member-7"),
        export_row(user="42.42", micros=T0 + 1_000_000, country="France"),
        export_row(micros=T0 + 2_000_000),
        export_row(
            micros=T0 + 9_000_000, device_category="mobile", user_properties={"plan": "pro"}
        ),
    ]
    path = write_export(tmp_path / "export.json", rows)

    import_export_file(path, batch_size=2)

    visitor = Visitor.objects.get(user_pseudo_id=VISITOR)
    assert visitor.event_count == 4
    assert visitor.first_seen == MOMENT
    assert visitor.last_seen == MOMENT + timedelta(seconds=9)
    # Whole objects, the file's last word on each: device from row 5, user_id from row 2.
    assert visitor.traits["device"]["category"] == "mobile"
    assert visitor.traits["user_properties"] == {"plan": "pro"}
    assert visitor.traits["user_id"] == "member-7"
    assert visitor.traits["geo"]["country"] == "Germany"
    assert visitor.traits["traffic_source"] == {
        "name": "(organic)",
        "medium": "organic",
        "source": "google",
    }
    other = Visitor.objects.get(user_pseudo_id="42.42")
    assert (other.event_count, other.traits["geo"]["country"]) == (1, "France")


@pytest.mark.django_db
def test_import_export_file__later_file_for_known_visitor__counts_added_traits_merged(tmp_path):
    Visitor.objects.create(
        user_pseudo_id=VISITOR,
        first_seen=MOMENT + timedelta(days=1),
        last_seen=MOMENT + timedelta(days=1),
        event_count=10,
        traits={"consent": "granted", "device": {"category": "tablet"}},
    )
    path = write_export(tmp_path / "export.json", session(count=2))

    import_export_file(path)

    visitor = Visitor.objects.get()
    assert visitor.event_count == 12
    assert visitor.first_seen == MOMENT
    assert visitor.last_seen == MOMENT + timedelta(days=1)
    assert visitor.traits["consent"] == "granted"
    assert visitor.traits["device"]["category"] == "desktop"


@pytest.mark.django_db
def test_import_export_file__new_events__visitors_announced_after_commit(
    tmp_path, django_capture_on_commit_callbacks
):
    heard = []

    def listener(sender, *, user_pseudo_ids, source, **kwargs):
        heard.append((user_pseudo_ids, source))

    path = write_export(tmp_path / "export.json", [*session(count=3), *session(user="42.42")])
    events_stored.connect(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            import_export_file(path)
        with django_capture_on_commit_callbacks(execute=True):
            import_export_file(path)  # nothing new: nobody to tell
    finally:
        events_stored.disconnect(listener)

    assert heard == [((VISITOR, "42.42"), EventSource.GA4_EXPORT)]


@pytest.mark.django_db
def test_import_export_file__batch_size__same_result(tmp_path):
    rows = [
        export_row(user=f"{n % 3}.{n % 3}", micros=T0 + n * 1_000, params={"n": n % 7})
        for n in range(40)
    ]
    path = write_export(tmp_path / "export.json", [*rows, *rows[:5], "[]\n"])

    one_by_one = counts(import_export_file(path, batch_size=1))
    result = stored()
    Event.objects.all().delete()
    Visitor.objects.all().delete()
    RejectedEvent.objects.all().delete()
    all_at_once = counts(import_export_file(path, batch_size=1000))

    assert one_by_one == all_at_once == (46, 40, 5, 1)
    assert stored() == result


# --- Bad rows ------------------------------------------------------------------------------------


def _with(**changes):
    row = export_row()
    row.update(changes)
    return json.dumps(row) + "\n"


def _with_param(key, value):
    row = export_row()
    row["event_params"].append({"key": key, "value": value})
    return json.dumps(row) + "\n"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("line", "field", "code"),
    [
        ("{not json\n", "line", "INVALID_JSON"),
        ('["page_view"]\n', "line", "NOT_OBJECT"),
        (_with_param("x", {"double_value": "NaN"}), "event_params.5.value", "PARAMS_INVALID"),
        (_with(event_timestamp=T0).replace(str(T0), "NaN"), "line", "INVALID_JSON"),
        (_with(event_timestamp=T0).replace(str(T0), "1e400"), "line", "INVALID_JSON"),
        (_with(event_name="page view"), "event_name", "NAME_INVALID"),
        (_with(event_name=""), "event_name", "NAME_INVALID"),
        (_with(event_name="x" * 101), "event_name", "NAME_INVALID"),
        (_with(user_pseudo_id=None), "user_pseudo_id", "USER_PSEUDO_ID_MISSING"),
        (_with(user_pseudo_id="a b"), "user_pseudo_id", "USER_PSEUDO_ID_INVALID"),
        (_with(user_pseudo_id=1234567), "user_pseudo_id", "USER_PSEUDO_ID_INVALID"),
        (_with(event_timestamp="soon"), "event_timestamp", "TIMESTAMP_INVALID"),
        (_with(event_timestamp=0), "event_timestamp", "TIMESTAMP_INVALID"),
        (_with(event_timestamp="-5"), "event_timestamp", "TIMESTAMP_INVALID"),
        (_with(event_timestamp=1.5), "event_timestamp", "TIMESTAMP_INVALID"),
        (_with(event_timestamp=True), "event_timestamp", "TIMESTAMP_INVALID"),
        (_with(event_timestamp=T0 // 1000), "event_timestamp", "TIMESTAMP_INVALID"),
        (_with(event_timestamp=10**19), "event_timestamp", "TIMESTAMP_INVALID"),
        (_with(event_params={"a": 1}), "event_params", "PARAMS_INVALID"),
        (_with_param("n", {"int_value": "forty-two"}), "event_params.5.value", "PARAMS_INVALID"),
        (_with_param("s", {"string_value": 7}), "event_params.5.value", "PARAMS_INVALID"),
        (_with_param("big", typed("x" * 10_001)), "event_params", "PARAMS_TOO_LARGE"),
        (_with_param("nul", typed("a\x00b")), "line", "TEXT_INVALID"),
        (_with_param("half", typed("\ud800")), "line", "TEXT_INVALID"),
    ],
)
def test_import_export_file__bad_row__dead_lettered_with_reason(tmp_path, line, field, code):
    path = write_export(tmp_path / "export.json", [export_row(), line, export_row(user="5.5")])

    summary = import_export_file(path)

    assert counts(summary) == (3, 2, 0, 1)
    assert summary.errors[0]["line"] == 2
    dead = RejectedEvent.objects.get()
    assert dead.line_number == 2
    assert dead.reasons == [{"field": field, "message": dead.reasons[0]["message"], "code": code}]
    assert dead.payload


@pytest.mark.django_db
def test_import_export_file__not_utf8__dead_lettered_as_text(tmp_path):
    path = write_export(tmp_path / "export.json", [b'{"event_name": "caf\xe9"}\n', export_row()])

    summary = import_export_file(path)

    assert counts(summary) == (2, 1, 0, 1)
    dead = RejectedEvent.objects.get()
    assert dead.reasons[0]["code"] == "NOT_UTF8"
    assert dead.payload == {"raw": '{"event_name": "caf\ufffd"}'}


@pytest.mark.django_db
def test_import_export_file__rejected_object__payload_kept_as_sent_without_geo(tmp_path):
    row = export_row(name="bad name")
    path = write_export(tmp_path / "export.json", [row])

    import_export_file(path)

    rejected = RejectedEvent.objects.get()
    assert rejected.payload == {key: value for key, value in row.items() if key != "geo"}
    assert rejected.user_pseudo_id == VISITOR


@pytest.mark.django_db
def test_import_export_file__rejected_row_with_geo_imported_again__one_dead_letter(tmp_path):
    path = write_export(tmp_path / "export.json", [export_row(name="bad name"), export_row()])
    import_export_file(path)

    again = import_export_file(path)

    assert counts(again) == (2, 0, 1, 1)
    assert RejectedEvent.objects.count() == 1


@pytest.mark.django_db
def test_import_export_file__line_over_limit__skipped_not_read_whole(tmp_path):
    huge = '{"event_name": "' + "x" * MAX_LINE_BYTES + '"}\n'
    path = write_export(tmp_path / "export.json", [export_row(), huge, export_row(user="5.5")])

    summary = import_export_file(path)

    assert counts(summary) == (3, 2, 0, 1)
    assert summary.errors[0]["line"] == 2
    assert RejectedEvent.objects.get().reasons[0]["code"] == "LINE_TOO_LONG"


@pytest.mark.django_db
def test_import_export_file__blank_lines_bom_crlf__tolerated(tmp_path):
    first, second = (json.dumps(row) for row in session(count=2))
    path = tmp_path / "export.json"
    path.write_bytes(f"\ufeff{first}\r\n\r\n   \n{second}\r\n".encode())

    summary = import_export_file(path)

    assert counts(summary) == (2, 2, 0, 0)


@pytest.mark.django_db
def test_import_export_file__many_bad_lines__first_100_reported_all_dead_lettered(tmp_path):
    path = write_export(tmp_path / "export.json", [*(["nope\n"] * 150), export_row()])

    summary = import_export_file(path, batch_size=40)

    assert counts(summary) == (151, 1, 0, 150)
    assert [error["line"] for error in summary.errors] == list(range(1, 101))
    assert RejectedEvent.objects.count() == 150


@pytest.mark.django_db
def test_import_export_file__context_given__names_dead_letters(tmp_path):
    path = write_export(tmp_path / "export.json", ["nope\n"])

    import_export_file(path, context="ga4-exports/2024/11/export.json")

    assert RejectedEvent.objects.get().context == "ga4-exports/2024/11/export.json"


@pytest.mark.django_db
def test_import_export_file__progress__bar_on_stderr(tmp_path, capsys):
    path = write_export(tmp_path / "export.json.gz", session(count=3), compress=True)

    import_export_file(path, progress=True)

    captured = capsys.readouterr()
    assert "export.json.gz" in captured.err
    assert captured.out == ""


@pytest.mark.django_db
def test_import_export_file__copy_path_and_events_store_path__store_the_same(tmp_path, postgres):
    rows = [
        *session(count=3),
        *session(user="42.42", count=2, start=T0 + 7),
        export_row(user_id="member-7", user_properties={"plan": "pro", "visits": 3}),
        export_row(params={"page_referrer": "https://www.google.com/", "ga_session_id": None}),
        export_row(params={"page_location": None, "score": 0.25}),
        # Text COPY's special characters, in the columns and in the params' JSON.
        export_row(
            micros=T0 + 99,
            params={
                "page_location": "https://jane.dev/a\tb\nc\\d\re",
                "page_referrer": "\\N",
                "ga_session_id": "s\t1\\",
                "page_title": 'Caf\u00e9 "LLM" \\. \U0001f600',
            },
            user_properties={"quote": 'say "hi"\\'},
        ),
    ]
    path = write_export(tmp_path / "export.json.gz", [*rows, rows[0], "{}\n"], compress=True)
    results = []
    for use_copy in (True, False):
        first = counts(import_export_file(path, batch_size=3, use_copy=use_copy))
        again = counts(import_export_file(path, batch_size=3, use_copy=use_copy))
        results.append((first, again, stored()))
        Event.objects.all().delete()
        Visitor.objects.all().delete()
        RejectedEvent.objects.all().delete()

    assert results[0] == results[1]
    assert results[0][0] == (11, 9, 1, 1)


@pytest.mark.django_db
@pytest.mark.parametrize("use_copy", [None, False])
def test_import_export_file__rows_inserted_by_visitor_then_dedupe_key(tmp_path, use_copy):
    # The lock order every writer follows (see ga4_export._insert_sql), in byte order: "B" and
    # "_" before "a"; ids show the order of the inserts.
    users = ["a.1", "B.2", "_.3", "a-2", "B.10"]
    rows = [export_row(user=users[n % 5], micros=T0 + n, params={"n": n}) for n in range(20)]
    path = write_export(tmp_path / "export.json", rows)

    import_export_file(path, use_copy=use_copy)

    inserted = list(Event.objects.order_by("id").values_list("user_pseudo_id", "dedupe_key"))
    assert len(inserted) == 20
    assert inserted == sorted(inserted, key=lambda row: (row[0].encode(), row[1].bytes))
    assert [uid for uid, _ in inserted][::4] == ["B.10", "B.2", "_.3", "a-2", "a.1"]


def _synchronous_commit_at_event_inserts(path, **options):
    """Import `path`; the synchronous_commit in force at each INSERT into analytics_event."""
    from django.db import connection

    seen = []

    def record(execute, sql, params, many, context):
        if re.search(r'INSERT INTO "?analytics_event"?[\s(]', sql):
            with context["connection"].connection.cursor() as raw:
                raw.execute("SELECT current_setting('synchronous_commit')")
                seen.append(raw.fetchone()[0])
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        summary = import_export_file(path, batch_size=2, **options)
    return summary, seen


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("use_copy", [None, False])
def test_import_export_file__own_batch_transactions__commit_asynchronously(
    tmp_path, postgres, use_copy
):
    from django.db import connection

    path = write_export(tmp_path / "export.json", session(count=5))

    summary, seen = _synchronous_commit_at_event_inserts(path, use_copy=use_copy)

    assert summary.rows_imported == 5
    assert seen == ["off", "off", "off"]
    with connection.cursor() as cursor:  # SET LOCAL: gone with the batch's transaction
        cursor.execute("SELECT current_setting('synchronous_commit')")
        assert cursor.fetchone()[0] == "on"


@pytest.mark.django_db
def test_import_export_file__in_a_callers_transaction__its_durability_untouched(tmp_path, postgres):
    path = write_export(tmp_path / "export.json", session(count=3))

    summary, seen = _synchronous_commit_at_event_inserts(path)

    assert summary.rows_imported == 3
    assert seen == ["on", "on"]


@pytest.mark.django_db
def test_import_export_file__copy_path_without_postgresql__refused(tmp_path):
    from django.db import connection

    if connection.vendor == "postgresql":
        pytest.skip("the refusal is for the other databases")
    path = write_export(tmp_path / "export.json", session(count=1))

    with pytest.raises(ValueError, match="PostgreSQL"):
        import_export_file(path, use_copy=True)


# Keys computed by the import as it was before the COPY text was made by the reading process:
# stored events must keep deduplicating re-imports of the same rows. Until migration 0004 the
# keys were the whole sha256 hex digests, pinned here as 7b70032e043c0e48a381f6c0c8edffe4de76...
# and 56af778c25e550ddf5fa986b7ef8a14197ae...; the keys are now their first 16 bytes, which is
# what 0004 converted the stored ones to (test_migrations checks the conversion).
PINNED_ROWS = [
    (
        {
            "event_timestamp": "1732000000123456",
            "event_name": "page_view",
            "user_pseudo_id": "1234567.7654321",
            "event_params": [
                {"key": "ga_session_id", "value": typed(1732000000)},
                {"key": "page_location", "value": typed("https://jane.dev/projects/llm-eval")},
                {"key": "page_title", "value": typed('Caf\u00e9 "LLM"\tharness\\')},
                {"key": "score", "value": typed(0.25)},
                {"key": "engagement_time_msec", "value": typed(5120)},
            ],
        },
        uuid.UUID("7b70032e-043c-0e48-a381-f6c0c8edffe4"),
    ),
    (
        {
            "event_timestamp": "1732000001000000",
            "event_name": "scroll",
            "user_pseudo_id": "42.42",
            "event_params": [],
        },
        uuid.UUID("56af778c-25e5-50dd-f5fa-986b7ef8a141"),
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize("use_copy", [None, False])
def test_import_export_file__known_rows__dedupe_keys_unchanged(tmp_path, use_copy):
    path = write_export(tmp_path / "export.json", [row for row, _ in PINNED_ROWS])

    assert counts(import_export_file(path, use_copy=use_copy)) == (2, 2, 0, 0)

    assert set(Event.objects.values_list("dedupe_key", flat=True)) == {
        key for _, key in PINNED_ROWS
    }
    event = Event.objects.get(dedupe_key=PINNED_ROWS[0][1])
    assert event.event_params["page_title"] == 'Caf\u00e9 "LLM"\tharness\\'
    assert event.occurred_at == datetime(2024, 11, 19, 7, 6, 40, 123456, tzinfo=UTC)
    assert (event.session_id, event.page_location) == (
        "1732000000",
        "https://jane.dev/projects/llm-eval",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("read_in_process", [True, False])
def test_import_export_file__read_in_process_or_thread__same_result(tmp_path, read_in_process):
    rows = [
        export_row(user=f"{n % 4}.{n % 4}", micros=T0 + n * 1_000, params={"n": n % 9})
        for n in range(30)
    ]
    lines = [*rows[:10], "nope\n", *rows[10:], _with(event_name="bad name"), *rows[:3], "\n"]
    path = write_export(tmp_path / "export.json.gz", lines, compress=True)

    summary = import_export_file(path, batch_size=7, read_in_process=read_in_process)
    again = import_export_file(path, batch_size=4, read_in_process=read_in_process)

    assert counts(summary) == (35, 30, 3, 2)
    assert [error["line"] for error in summary.errors] == [11, 32]
    assert counts(again) == (35, 0, 33, 2)
    assert RejectedEvent.objects.count() == 2
    assert set(RejectedEvent.objects.values_list("line_number", flat=True)) == {11, 32}
    assert Event.objects.count() == 30
    assert sum(Visitor.objects.values_list("event_count", flat=True)) == 30


@pytest.mark.django_db
@pytest.mark.parametrize("read_in_process", [True, False])
def test_import_export_file__unreadable__os_error_raised(tmp_path, read_in_process):
    with pytest.raises(IsADirectoryError):
        import_export_file(tmp_path, read_in_process=read_in_process)


def _reference_lines(data: bytes, limit: int):
    """The line reader as it was (readline), the one _Lines must agree with."""
    stream = io.BytesIO(data)
    number = 0
    out: list[tuple[int, bytes | None]] = []
    while line := stream.readline(limit + 1):
        number += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while (rest := stream.readline(limit)) and not rest.endswith(b"\n"):
                pass
            out.append((number, None))
        elif not line.isspace():
            out.append((number, line.rstrip(b"\n")))
    return out, number


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b"a", b"bc", b" ", b"\r", b"\n", b"\n\n", b"xyz" * 3]), max_size=40),
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=1, max_value=9),
)
def test_lines__any_bytes_chunking_and_limit__same_as_readline(pieces, limit, chunk):
    data = b"".join(pieces)
    lines = ga4_export._Lines(
        io.BufferedReader(io.BytesIO(data)), max_line_bytes=limit, chunk_bytes=chunk
    )
    assert (list(lines), lines.line_number) == _reference_lines(data, limit)


# --- Management command ------------------------------------------------------------------------


@pytest.mark.django_db
def test_import_ga4_export_command__files_with_bad_lines__summaries_and_bad_lines_shown(
    tmp_path,
):
    good = write_export(tmp_path / "day1.json.gz", session(count=3), compress=True)
    bad = write_export(
        tmp_path / "day2.json",
        [export_row(user="42.42"), "nope\n", export_row(user="42.42", name="bad name")],
    )
    out = StringIO()

    call_command("import_ga4_export", str(good), str(bad), "--quiet", stdout=out)

    text = out.getvalue()
    assert f"{good}: 3 rows read, 3 imported, 0 duplicates, 0 rejected" in text
    assert f"{bad}: 3 rows read, 1 imported, 0 duplicates, 2 rejected" in text
    assert "line 2: line: Invalid JSON" in text
    assert "line 3: event_name:" in text
    assert "Total (2 files): 6 rows read, 4 imported, 0 duplicates, 2 rejected" in text
    assert "rows/s" in text


@pytest.mark.django_db
def test_import_ga4_export_command__run_twice__second_run_all_duplicates(tmp_path):
    path = write_export(tmp_path / "day1.json", session(count=2))
    call_command("import_ga4_export", str(path), "--quiet", stdout=StringIO())
    out = StringIO()

    call_command("import_ga4_export", str(path), "--quiet", "--batch-size", "1", stdout=out)

    assert "2 rows read, 0 imported, 2 duplicates, 0 rejected" in out.getvalue()


@pytest.mark.django_db
def test_import_ga4_export_command__truncated_file__says_where_it_stopped(tmp_path):
    data = gzip.compress(b"".join(json.dumps(row).encode() + b"\n" for row in session(count=50)))
    path = tmp_path / "cut.json.gz"
    path.write_bytes(data[: len(data) // 2])
    out = StringIO()

    call_command("import_ga4_export", str(path), "--quiet", stdout=out)

    assert "stopped at line" in out.getvalue()
    assert "truncated or corrupt" in out.getvalue()


@pytest.mark.django_db
def test_import_ga4_export_command__missing_file__command_error_nothing_imported(tmp_path):
    good = write_export(tmp_path / "day1.json", session(count=2))

    with pytest.raises(CommandError, match="no such file"):
        call_command("import_ga4_export", str(good), str(tmp_path / "nope.json"))

    assert Event.objects.count() == 0


def test_import_ga4_export_command__batch_size_zero__refused(tmp_path):
    with pytest.raises(CommandError, match="batch-size"):
        call_command("import_ga4_export", str(tmp_path / "x.json"), "--batch-size", "0")


# --- Uploads -------------------------------------------------------------------------------------


def _export_bytes(rows):
    return gzip.compress(b"".join(json.dumps(row).encode() + b"\n" for row in rows))


@pytest.mark.django_db
def test_import_upload__good_file__done_with_counts(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path
    data = _export_bytes([*session(count=3), "x"]) + gzip.compress(b"nope\n")
    upload = GA4ExportUpload.objects.create(file=ContentFile(data, name="export.json.gz"))

    import_upload(upload.id)

    upload.refresh_from_db()
    assert upload.status == ImportStatus.DONE
    assert (upload.rows_read, upload.rows_imported, upload.rows_duplicate) == (5, 3, 0)
    assert upload.rows_rejected == 2
    assert [error["line"] for error in upload.errors] == [4, 5]
    assert upload.finished_at is not None
    assert RejectedEvent.objects.filter(context=upload.file.name).count() == 2


@pytest.mark.django_db
def test_import_upload__file_gone__failed_with_error_and_raised(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path
    upload = GA4ExportUpload.objects.create(file="ga4-exports/2024/11/gone.json.gz")

    with pytest.raises(FileNotFoundError):
        import_upload(upload.id)

    upload.refresh_from_db()
    assert upload.status == ImportStatus.FAILED
    assert "FileNotFoundError" in upload.errors[0]["error"]
    assert upload.finished_at is not None


@pytest.mark.real_worker
@pytest.mark.django_db(transaction=True)
def test_import_ga4_upload_task__prefork_worker__imports_reading_in_a_thread():
    # A prefork pool's children are daemonic: the import cannot start its reading process
    # there and reads in a thread instead.
    data = _export_bytes([*session(count=3), *session(user="42.42", count=2)])
    upload = GA4ExportUpload.objects.create(
        file=ContentFile(data, name=f"test-{uuid.uuid4().hex}.json.gz")
    )
    try:
        with run_celery_worker("--pool=prefork", "--concurrency=1") as worker:
            result = import_ga4_upload.apply_async(args=[upload.id], queue=worker.queue)
            result.get(timeout=60)

        upload.refresh_from_db()
        assert upload.status == ImportStatus.DONE
        assert (upload.rows_read, upload.rows_imported, upload.rows_rejected) == (5, 5, 0)
        assert Visitor.objects.get(user_pseudo_id="42.42").event_count == 2
    finally:
        upload.file.delete(save=False)


@pytest.mark.django_db(transaction=True)
def test_import_ga4_upload_task__real_worker__imports_and_records_summary(celery_worker):
    # The worker is another process with the environment's MEDIA_ROOT: the file goes there.
    data = _export_bytes([*session(count=3), *session(user="42.42", count=2)])
    upload = GA4ExportUpload.objects.create(
        file=ContentFile(data, name=f"test-{uuid.uuid4().hex}.json.gz")
    )
    try:
        result = import_ga4_upload.apply_async(args=[upload.id], queue=celery_worker.queue)
        result.get(timeout=60)

        upload.refresh_from_db()
        assert result.successful()
        assert upload.status == ImportStatus.DONE
        assert (upload.rows_read, upload.rows_imported, upload.rows_rejected) == (5, 5, 0)
        assert Event.objects.filter(source=EventSource.GA4_EXPORT).count() == 5
        assert Visitor.objects.get(user_pseudo_id="42.42").event_count == 2
    finally:
        upload.file.delete(save=False)


_line_values = st.recursive(
    st.text()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
    | st.none(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(), _line_values, max_size=6), st.booleans())
def test_line_decoder_reads_what_the_stdlib_reads(row, ascii_only):
    # The import reads lines with orjson and falls back to the stdlib: for every line both
    # accept, they must agree, floats to the last bit.
    line = json.dumps(row, ensure_ascii=ascii_only).encode() + b"\n"
    decoded = ga4_export._decode_line(line)
    assert decoded == json.loads(line)
    assert json.dumps(decoded) == json.dumps(json.loads(line))
