import hashlib
import re
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.models import Event, Visitor
from analytics.services import (
    _CANONICAL_JSON,
    EventIn,
    canonical_json,
    dedupe_key,
    events_store,
    timestamp_to_datetime,
)

MOMENT = datetime(2025, 11, 29, 7, 6, 40, tzinfo=UTC)  # 1764400000


@pytest.mark.parametrize("value", [1_764_400_000, 1_764_400_000_000, 1_764_400_000_000_000])
def test_timestamp_to_datetime__seconds_millis_micros__same_moment(value):
    assert timestamp_to_datetime(value) == MOMENT


def test_timestamp_to_datetime__fractional_millis__kept():
    assert timestamp_to_datetime(1_764_400_000_123).microsecond == 123_000


def test_dedupe_key__event_id__ignores_content():
    a = dedupe_key(
        user_pseudo_id="u", event_name="a", occurred_at=MOMENT, event_params={}, event_id="e1"
    )
    b = dedupe_key(
        user_pseudo_id="u", event_name="b", occurred_at=MOMENT, event_params={"x": 1}, event_id="e1"
    )

    assert a == b


def test_dedupe_key__first_16_bytes_of_the_sha256_of_its_material():
    # The material, written out by hand: fields joined by the unit separator, params as
    # sorted compact ASCII JSON.
    content = "content\x1fu\x1fpage_view\x1f2025-11-29T07:06:40+00:00\x1f" + '{"a":1,"b":"\\u00e9"}'
    by_id = "id\x1fu\x1fe1"

    assert dedupe_key(
        user_pseudo_id="u",
        event_name="page_view",
        occurred_at=MOMENT,
        event_params={"b": "é", "a": 1},
    ) == uuid.UUID(bytes=hashlib.sha256(content.encode()).digest()[:16])
    assert dedupe_key(
        user_pseudo_id="u", event_name="x", occurred_at=MOMENT, event_params={}, event_id="e1"
    ) == uuid.UUID(hashlib.sha256(by_id.encode()).hexdigest()[:32])


def test_dedupe_key__no_event_id__param_order_irrelevant_values_matter():
    def key(params):
        return dedupe_key(
            user_pseudo_id="u", event_name="a", occurred_at=MOMENT, event_params=params
        )

    assert key({"a": 1, "b": 2}) == key({"b": 2, "a": 1})
    assert key({"a": 1}) != key({"a": 2})


def event(user="u1", name="project_click", params=None, event_id=None, at=MOMENT):
    return EventIn(
        event_name=name,
        user_pseudo_id=user,
        occurred_at=at,
        event_params=params or {},
        event_id=event_id,
    )


@pytest.mark.django_db
def test_events_store__duplicates_in_batch_and_across_batches__dropped_and_counted():
    first = events_store(events=[event(event_id="a"), event(event_id="a"), event(event_id="b")])
    second = events_store(events=[event(event_id="b"), event(event_id="c")])

    assert (first.accepted, first.duplicates) == (2, 1)
    assert (second.accepted, second.duplicates) == (1, 1)
    assert Event.objects.count() == 3


@pytest.mark.django_db
def test_events_store__inserts_by_visitor_then_dedupe_key():
    # The lock order every writer follows, the GA4 import's too; ids show the order of inserts.
    events = [event(user=user, event_id=f"e{n}") for n in range(3) for user in ("a", "B", "_")]

    events_store(events=events)

    inserted = list(Event.objects.order_by("id").values_list("user_pseudo_id", "dedupe_key"))
    assert [uid for uid, _ in inserted] == ["B"] * 3 + ["_"] * 3 + ["a"] * 3
    assert inserted == sorted(inserted, key=lambda row: (row[0], row[1].bytes))


@pytest.mark.django_db
def test_events_store__new_events__visitor_first_last_and_count():
    later = datetime(2025, 11, 30, tzinfo=UTC)
    events_store(events=[event(event_id="a", at=later), event(event_id="b")])
    events_store(events=[event(event_id="c", at=datetime(2025, 11, 1, tzinfo=UTC))])

    visitor = Visitor.objects.get(user_pseudo_id="u1")
    assert visitor.event_count == 3
    assert visitor.first_seen == datetime(2025, 11, 1, tzinfo=UTC)
    assert visitor.last_seen == later


@pytest.mark.django_db
def test_events_store__page_fields__taken_from_params():
    events_store(
        events=[
            event(
                params={
                    "page_location": "https://x/",
                    "page_referrer": "https://l/",
                    "ga_session_id": "123",
                }
            )
        ]
    )

    row = Event.objects.get()
    assert (row.page_location, row.page_referrer, row.session_id) == (
        "https://x/",
        "https://l/",
        "123",
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_events_store__concurrent_overlapping_batches__exact_counts(postgres):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    batches = [
        [event(user=f"u{i % 7}", event_id=f"e{(start + i) % 60}") for i in range(40)]
        for start in range(0, 60, 10)
    ]

    def store(batch):
        try:
            return events_store(events=batch)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(store, batches))

    stored = Event.objects.count()
    assert sum(r.accepted for r in results) == stored
    assert sum(r.accepted + r.duplicates for r in results) == 40 * len(batches)
    assert sum(Visitor.objects.values_list("event_count", flat=True)) == stored


@pytest.mark.django_db
def test_events_store__null_page_params__empty_columns_not_none_text():
    events_store(events=[event(params={"page_location": None, "ga_session_id": None})])

    row = Event.objects.get()
    assert (row.session_id, row.page_location, row.page_referrer) == ("", "", "")


# --- canonical JSON: the dedupe key's input must never change with the encoder ----------------
_json_scalars = (
    st.text()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.booleans()
    | st.none()
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(), _json_values, max_size=8))
def test_canonical_json_is_the_stdlib_output_byte_for_byte(params):
    assert canonical_json(params) == _CANONICAL_JSON.encode(params)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x80)),
        st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x80))
        | st.integers(min_value=-(2**63), max_value=2**64),
        max_size=8,
    )
)
def test_canonical_json_fast_path_agrees_on_ascii_edges(params):
    # Control characters, DEL and the 64-bit boundary are where orjson and the stdlib could part.
    assert canonical_json(params) == _CANONICAL_JSON.encode(params)


@pytest.mark.django_db(transaction=True)
def test_events_store__postgres__one_statement_no_transaction_block__announced(postgres):
    from django.db import connection

    from analytics.signals import events_stored

    writes: list[tuple[list[str], bool]] = []
    heard: list[tuple[str, ...]] = []

    def record(execute, sql, params, many, context):
        if tables := re.findall(r"(?:INSERT INTO|UPDATE) \"?(analytics_\w+)", sql):
            writes.append((tables, connection.in_atomic_block))
        return execute(sql, params, many, context)

    def listener(**kwargs):
        heard.append(kwargs["user_pseudo_ids"])

    events_stored.connect(listener)
    try:
        with connection.execute_wrapper(record):
            result = events_store(events=[event(user="u2", event_id="a"), event(event_id="b")])
    finally:
        events_stored.disconnect(listener)

    # Round trips are what a request waits for under load: the insert and the visitor fold are
    # one statement, atomic on its own, so no BEGIN and COMMIT either.
    assert writes == [(["analytics_event", "analytics_visitor"], False)]
    assert result.accepted == 2
    assert heard == [("u1", "u2")]
    assert dict(Visitor.objects.values_list("user_pseudo_id", "event_count")) == {"u1": 1, "u2": 1}


@pytest.mark.django_db(transaction=True)
def test_events_store__inside_a_rolled_back_transaction__nothing_stored_nothing_announced():
    from django.db import transaction

    from analytics.signals import events_stored

    heard: list[tuple[str, ...]] = []

    def listener(**kwargs):
        heard.append(kwargs["user_pseudo_ids"])

    def store_then_fail():
        with transaction.atomic():
            events_store(events=[event(event_id="a")])
            raise RuntimeError("the caller's transaction fails")

    events_stored.connect(listener)
    try:
        with pytest.raises(RuntimeError):
            store_then_fail()
    finally:
        events_stored.disconnect(listener)

    assert heard == []
    assert not Event.objects.exists()
    assert not Visitor.objects.exists()
