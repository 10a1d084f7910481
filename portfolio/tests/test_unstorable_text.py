"""Text PostgreSQL cannot store (NUL, lone surrogates), fed into every text field of every
channel that reaches the database (portfolio/storable.py).

The JSON API answers 422 in the contract's shape; the GA4 channels answer as GA4 does (204,
or 403 for a stream that cannot be ours) and keep what was sent as a dead letter with a reason;
nothing is ever a 500 (on PostgreSQL a DataError, on both backends an encoding error).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.ga4_export import import_export_file
from analytics.models import Event, EventSource, MeasurementStream, RejectedEvent
from analytics.tests.test_ga4_export import export_row, write_export
from personalization.models import PersonalizationRule

pytestmark = pytest.mark.django_db

MEASUREMENT_ID = "G-UNSTORABLE"
SECRET = "unstorable-secret"
VISITOR = "visitor.1"

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Some text with at least one character PostgreSQL refuses somewhere in it.
BAD_CHARS = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"])
unstorable = st.builds(
    lambda head, bad, tail: head + bad + tail,
    st.text(max_size=6),
    BAD_CHARS,
    st.text(max_size=6),
)


def set_path(document: Any, path: tuple[Any, ...], value: Any, *, as_key: bool = False) -> Any:
    """A deep copy of `document` with `value` at `path`, or as the key found there."""
    document = copy.deepcopy(document)
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if as_key:
        parent[value] = parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    return document


def ascii_json(document: Any) -> bytes:
    # A lone surrogate can only travel as a JSON escape: this is how a client would send it.
    return json.dumps(document, ensure_ascii=True).encode()


@pytest.fixture
def stream() -> MeasurementStream:
    return MeasurementStream.objects.create(
        name="unstorable", measurement_id=MEASUREMENT_ID, api_secret=SECRET
    )


@pytest.fixture(autouse=True)
def _no_rate_limit(settings: Any) -> None:
    settings.RATELIMIT_ENABLE = False


# --- POST /api/events ----------------------------------------------------------------------

EVENT = {
    "event_name": "project_click",
    "user_pseudo_id": VISITOR,
    "event_params": {"project_id": "llm-router", "nested": {"list": ["a", {"b": "c"}]}},
    "event_id": "client-1",
}
EVENT_TEXT = [
    (("event_name",), False),
    (("user_pseudo_id",), False),
    (("event_id",), False),
    (("event_params", "project_id"), False),
    (("event_params", "project_id"), True),
    (("event_params", "nested", "list", 0), False),
    (("event_params", "nested", "list", 1, "b"), False),
    (("event_params", "nested", "list", 1, "b"), True),
]


@FUZZ
@given(target=st.sampled_from(EVENT_TEXT), text=unstorable, batch=st.booleans())
def test_events_api__unstorable_text_in_any_field__422_naming_it_nothing_stored(
    client: Any, target: tuple[tuple[Any, ...], bool], text: str, batch: bool
) -> None:
    path, as_key = target
    event = set_path(EVENT, path, text, as_key=as_key)
    body = {"events": [EVENT, event]} if batch else event

    response = client.post("/api/events", ascii_json(body), content_type="application/json")

    assert response.status_code == 422, response.content
    errors = response.json()["errors"]
    field = f"events.1.{path[0]}" if batch else path[0]
    assert field in errors, errors
    assert not Event.objects.exists()


# --- POST /mp/collect, /debug/mp/collect -----------------------------------------------------

MP_BODY = {
    "client_id": "123.456",
    "user_id": "user-1",
    "user_properties": {"plan": {"value": "pro"}},
    "consent": {"ad_user_data": "GRANTED"},
    "device": {"category": "desktop", "language": "en"},
    "user_location": {"city": "Berlin"},
    "user_agent": "Mozilla/5.0",
    "validation_behavior": "RELAXED",
    "events": [
        {"name": "project_click", "params": {"project_id": "llm-router", "items": [{"a": "b"}]}}
    ],
}
MP_TEXT = [
    (("client_id",), False),
    (("user_id",), False),
    (("user_properties", "plan"), True),
    (("user_properties", "plan", "value"), False),
    (("consent", "ad_user_data"), False),
    (("device", "category"), False),
    (("device", "language"), False),
    (("user_location", "city"), False),
    (("user_agent",), False),
    (("validation_behavior",), False),
    (("events", 0, "name"), False),
    (("events", 0, "params", "project_id"), False),
    (("events", 0, "params", "project_id"), True),
    (("events", 0, "params", "items", 0, "a"), False),
    (("events", 0, "params", "items", 0, "a"), True),
]


def mp_url(*, debug: bool = False, measurement_id: str = MEASUREMENT_ID, secret: str = SECRET):
    query = "&".join(
        f"{name}={quote_from_bytes(value.encode('utf-8', 'surrogatepass'))}"
        for name, value in (("measurement_id", measurement_id), ("api_secret", secret))
    )
    return f"{'/debug' if debug else ''}/mp/collect?{query}"


@FUZZ
@given(target=st.sampled_from(MP_TEXT), text=unstorable)
def test_mp_collect__unstorable_text_in_any_field__204_dead_letter_with_reason(
    client: Any, stream: MeasurementStream, target: tuple[tuple[Any, ...], bool], text: str
) -> None:
    path, as_key = target
    body = ascii_json(set_path(MP_BODY, path, text, as_key=as_key))
    letters = RejectedEvent.objects.count()

    response = client.post(mp_url(), body, content_type="application/json")
    debug = client.post(mp_url(debug=True), body, content_type="application/json")

    assert response.status_code == 204
    assert not Event.objects.exists()
    assert RejectedEvent.objects.count() == letters + 1
    letter = RejectedEvent.objects.order_by("-pk").first()
    assert letter is not None
    assert letter.source == EventSource.MP
    assert letter.reasons
    assert debug.status_code == 200
    assert debug.json()["validationMessages"]


@FUZZ
@given(name=st.sampled_from(["measurement_id", "api_secret"]), text=unstorable)
def test_mp_collect__unstorable_stream_lookup__403_nothing_stored(
    client: Any, stream: MeasurementStream, name: str, text: str
) -> None:
    url = mp_url(measurement_id=text) if name == "measurement_id" else mp_url(secret=text)

    response = client.post(url, ascii_json(MP_BODY), content_type="application/json")

    assert response.status_code == 403
    assert not Event.objects.exists()
    assert not RejectedEvent.objects.exists()


# --- GET and POST /g/collect -----------------------------------------------------------------

GTAG_QUERY = {
    "v": "2",
    "tid": MEASUREMENT_ID,
    "cid": "123.456",
    "sid": "1764400000",
    "dl": "https://portfolio.example/",
    "dt": "Portfolio",
    "dr": "https://www.linkedin.com/",
    "uid": "user-1",
    "ul": "en-us",
    "sr": "1920x1080",
    "gcs": "G111",
    "up.plan": "pro",
}
GTAG_LINE = {"en": "project_click", "ep.project_id": "llm-router", "epn.depth": "3"}


def url_encode(fields: dict[str, str]) -> str:
    # Percent-encoded UTF-8, surrogates as the bytes a broken client would send.
    return "&".join(
        f"{quote_from_bytes(k.encode('utf-8', 'surrogatepass'))}="
        f"{quote_from_bytes(v.encode('utf-8', 'surrogatepass'))}"
        for k, v in fields.items()
    )


@FUZZ
@given(
    where=st.sampled_from(["query", "line"]),
    name=st.sampled_from(sorted({*GTAG_QUERY, *GTAG_LINE} - {"tid"})),
    as_key=st.booleans(),
    text=unstorable,
    method=st.sampled_from(["get", "post"]),
    configured=st.booleans(),
)
def test_gtag_collect__unstorable_text_in_any_field__204_dead_letter_with_reason(
    client: Any,
    where: str,
    name: str,
    as_key: bool,
    text: str,
    method: str,
    configured: bool,
) -> None:
    if configured and not MeasurementStream.objects.exists():
        MeasurementStream.objects.create(name="g", measurement_id=MEASUREMENT_ID, api_secret="s")
    if not configured:
        MeasurementStream.objects.all().delete()
    query, line = dict(GTAG_QUERY), dict(GTAG_LINE)
    if method == "get":  # a GET hit is its query string alone
        query, line = {**query, **line}, {}
    target = query if where == "query" or method == "get" else line
    if as_key:
        target[text] = target.pop(name, "x")
    else:
        target[name] = text
    letters = RejectedEvent.objects.count()

    if method == "get":
        response = client.get(f"/g/collect?{url_encode(query)}")
    else:
        response = client.post(
            f"/g/collect?{url_encode(query)}",
            url_encode(line).encode(),
            content_type="text/plain;charset=UTF-8",
        )

    assert response.status_code == 204
    assert not Event.objects.exists()
    assert RejectedEvent.objects.count() == letters + 1
    letter = RejectedEvent.objects.order_by("-pk").first()
    assert letter is not None
    assert letter.source == EventSource.GTAG
    assert letter.reasons


@FUZZ
@given(text=unstorable, method=st.sampled_from(["get", "post"]), configured=st.booleans())
def test_gtag_collect__unstorable_tid__never_500_never_stored_as_event(
    client: Any, text: str, method: str, configured: bool
) -> None:
    if configured and not MeasurementStream.objects.exists():
        MeasurementStream.objects.create(name="g", measurement_id=MEASUREMENT_ID, api_secret="s")
    if not configured:
        MeasurementStream.objects.all().delete()
    query = url_encode({**GTAG_QUERY, "tid": text})
    letters = RejectedEvent.objects.count()

    if method == "get":
        response = client.get(f"/g/collect?{query}&{url_encode(GTAG_LINE)}")
    else:
        response = client.post(
            f"/g/collect?{query}",
            url_encode(GTAG_LINE).encode(),
            content_type="text/plain;charset=UTF-8",
        )

    # Configured: no stream is named that (403). Not configured: GA4's 204, a dead letter.
    assert response.status_code == (403 if configured else 204)
    assert not Event.objects.exists()
    assert RejectedEvent.objects.count() == letters + (0 if configured else 1)


# --- GA4 export file import ------------------------------------------------------------------

EXPORT_TEXT = [
    (("event_name",), False),
    (("user_pseudo_id",), False),
    (("user_id",), False),
    (("event_params", 0, "key"), False),
    (("event_params", 0, "value", "string_value"), False),
    (("user_properties", 0, "key"), False),
    (("user_properties", 0, "value", "string_value"), False),
    (("device", "category"), False),
    (("geo", "city"), False),
    (("traffic_source", "source"), False),
    (("device", "web_info", "browser"), True),
]


@FUZZ
@given(target=st.sampled_from(EXPORT_TEXT), text=unstorable)
def test_ga4_export_import__unstorable_text_in_any_field__line_dead_lettered_with_reason(
    tmp_path_factory: Any, target: tuple[tuple[Any, ...], bool], text: str
) -> None:
    path, as_key = target
    good = export_row(params={"page_number": 1}, user_properties={"plan": "pro"})
    bad = set_path(
        export_row(micros=1732000001000000, user_properties={"plan": "pro"}),
        path,
        text,
        as_key=as_key,
    )
    directory = Path(tmp_path_factory.mktemp("export"))
    file = write_export(directory / "export.json", [json.dumps(good, ensure_ascii=True) + "\n"])
    file.write_bytes(file.read_bytes() + ascii_json(bad) + b"\n")
    events, letters = Event.objects.count(), RejectedEvent.objects.count()

    summary = import_export_file(file, context=f"export{text}.json")

    assert summary.rows_rejected == 1
    assert RejectedEvent.objects.count() == letters + 1
    letter = RejectedEvent.objects.order_by("-pk").first()
    assert letter is not None
    assert letter.line_number == 2
    assert letter.reasons
    assert Event.objects.count() <= events + 1


# --- admin API -------------------------------------------------------------------------------


@FUZZ
@given(
    name=st.sampled_from(["segment", "reasoning", "priority_sections", "highlight_skills"]),
    text=unstorable,
    method=st.sampled_from(["post", "put", "patch"]),
)
def test_admin_rules__unstorable_text_in_any_field__422_nothing_changed(
    admin_client: Any, name: str, text: str, method: str
) -> None:
    rule = PersonalizationRule.objects.get(segment__code="CASUAL", status="active")
    body: dict[str, Any] = {"segment": "CASUAL", "reasoning": "why"}
    body[name] = [text] if name.endswith(("sections", "skills")) else text
    url = "/api/admin/rules" if method == "post" else f"/api/admin/rules/{rule.pk}"
    before = PersonalizationRule.objects.count()

    response = getattr(admin_client, method)(url, ascii_json(body), content_type="application/json")

    assert response.status_code == 422, response.content
    assert any(key.split(".")[0] == name for key in response.json()["errors"])
    assert PersonalizationRule.objects.count() == before


@FUZZ
@given(
    url=st.sampled_from(
        [
            "/api/admin/events/search?q={}",
            "/api/admin/events/search?event_name={}",
            "/api/admin/events/search?user_pseudo_id={}",
            "/api/admin/rules?segment={}",
            "/api/admin/visitors/{}",
            "/api/personalization?user_id={}",
        ]
    ),
    text=unstorable,
)
def test_query_and_path_lookups__unstorable_text__4xx_json_never_500(
    admin_client: Any, url: str, text: str
) -> None:
    response = admin_client.get(url.format(quote_from_bytes(text.encode("utf-8", "surrogatepass"))))

    # Percent-encoded NUL arrives as NUL (422); bad UTF-8 arrives as U+FFFD, which some of
    # these take as text and answer for (200 with nothing found, or 404).
    assert response.status_code in (200, 404, 422), response.content
    assert response["Content-Type"].startswith("application/json")
    if "\x00" in text:
        assert response.status_code in (404, 422)
