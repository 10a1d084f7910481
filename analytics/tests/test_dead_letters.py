"""Dead letters keep what diagnoses a refusal and nothing that identifies a person beyond the
pseudonymous visitor id (issue 19 items 3-4): IPs, user_data and precise geo are dropped before
anything is written, whatever channel, nesting or spelling; every dead letter carries its
visitor id in an indexed column, so erasure and the admin reach it."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.contrib.auth import get_user_model
from django.core import serializers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.models import MeasurementStream, RejectedEvent
from analytics.services import RejectedIn, rejected_events_store, visitor_erase

pytestmark = pytest.mark.django_db

MEASUREMENT_ID = "G-PRIV19"
SECRET = "s3cret-value-19"
CLIENT_ID = "555.777"
OTHER_ID = "999.111"
IP = "203.0.113.77"
IP6 = "2001:db8::7:7"
HASHED_EMAIL = "a" * 16 + "5f4dcc3b5aa765d61d8327deb882cf99" + "b" * 16
CITY = "Springfieldia"
REGION = "US-ILX"
SECRETS = (IP, IP6, HASHED_EMAIL, CITY, REGION)
hypothesis_settings = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def stream() -> MeasurementStream:
    return MeasurementStream.objects.create(
        name="portfolio", measurement_id=MEASUREMENT_ID, api_secret=SECRET
    )


@pytest.fixture
def no_rate_limit(settings):
    settings.RATELIMIT_ENABLE = False


def stored_text() -> str:
    """Every dead letter row, every column, as the database holds it."""
    return serializers.serialize("json", RejectedEvent.objects.all())


def assert_nothing_personal() -> None:
    text = stored_text()
    # Serialized JSON escapes nothing in these strings; check the percent-encoded spelling too.
    for secret in SECRETS:
        assert secret not in text
        assert quote(secret, safe="") not in text


def post_mp(client, body: dict[str, Any]):
    query = urlencode({"measurement_id": MEASUREMENT_ID, "api_secret": SECRET})
    return client.post(
        f"/mp/collect?{query}", data=json.dumps(body).encode(), content_type="application/json"
    )


def post_gtag(client, query: str, body: bytes):
    return client.post(f"/g/collect?{query}", data=body, content_type="text/plain;charset=UTF-8")


GOOD_EVENT: dict[str, Any] = {"name": "project_click", "params": {"project_id": "llm-router"}}
BAD_EVENT: dict[str, Any] = {"name": "bad name!", "params": {"project_id": "x"}}


def test_mp_collect__ip_user_data_location_one_invalid_event__dead_letter_keeps_none(
    client, stream
):
    body = {
        "client_id": CLIENT_ID,
        "ip_override": IP,
        "user_data": {"sha256_email_address": [HASHED_EMAIL]},
        "user_location": {"city": CITY, "region_id": REGION, "country_id": "US"},
        "events": [GOOD_EVENT, BAD_EVENT],
    }

    response = post_mp(client, body)

    assert response.status_code == 204
    rejected = RejectedEvent.objects.get()
    assert_nothing_personal()
    # What diagnoses the refusal is kept.
    assert rejected.payload["events"] == [BAD_EVENT]
    assert rejected.payload["client_id"] == CLIENT_ID
    assert rejected.reasons[0]["code"] == "NAME_INVALID"
    assert rejected.user_pseudo_id == CLIENT_ID


def test_gtag_collect__uip_and_bad_line__dead_letter_keeps_no_ip(client, stream):
    query = urlencode({"v": "2", "tid": MEASUREMENT_ID, "cid": CLIENT_ID, "_uip": IP})
    body = b"en=page_view\nen=deep_read&epn.duration=long&uip=" + quote(IP6).encode()

    response = post_gtag(client, query, body)

    assert response.status_code == 204
    rejected = RejectedEvent.objects.get()
    assert_nothing_personal()
    assert "uip" not in stored_text()
    assert rejected.line_number == 2
    assert f"cid={CLIENT_ID}" in rejected.payload["query"]
    assert "epn.duration=long" in rejected.payload["line"]
    assert rejected.user_pseudo_id == CLIENT_ID


# Where GA4 accepts the personal fields: both spellings of every MP field (protobuf JSON).
MP_KEYS = {
    "ip": ["ip_override", "ipOverride"],
    "user_data": ["user_data", "userData"],
    "location": ["user_location", "userLocation"],
}
MP_VALUES = {
    "ip": IP,
    "user_data": {"sha256_email_address": [HASHED_EMAIL], "address": [{"city": CITY}]},
    "location": {"city": CITY, "region_id": REGION},
}


def _place(body: dict[str, Any], where: str, key: str, value: Any) -> None:
    event = body["events"][1]
    if where == "body":
        body[key] = value
    elif where == "event":
        event[key] = value
    elif where == "params":
        event["params"][key] = value
    elif where == "nested_param":
        event["params"]["items"] = [{"item_id": "x", "meta": {"deep": [{key: value}]}}]
    elif where == "user_properties":
        body["user_properties"] = {"stack": {"value": "django", key: value}}


@hypothesis_settings
@given(
    fields=st.lists(
        st.tuples(
            st.sampled_from(sorted(MP_KEYS)),
            st.integers(0, 1),
            st.sampled_from(["body", "event", "params", "nested_param", "user_properties"]),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_mp_collect__personal_fields_anywhere_any_spelling__never_in_dead_letters(
    client, stream, no_rate_limit, fields
):
    RejectedEvent.objects.all().delete()
    body: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "events": [dict(GOOD_EVENT), {**BAD_EVENT, "params": dict(BAD_EVENT["params"])}],
    }
    for kind, spelling, where in fields:
        _place(body, where, MP_KEYS[kind][spelling], MP_VALUES[kind])

    response = post_mp(client, body)

    assert response.status_code == 204
    assert RejectedEvent.objects.exists()
    assert_nothing_personal()
    assert set(RejectedEvent.objects.values_list("user_pseudo_id", flat=True)) == {CLIENT_ID}


def _casings(name: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(name, upper, strict=True))
    )


def _encoded_key(key: str, percent: bool) -> str:
    return "".join(f"%{ord(c):02X}" for c in key) if percent else quote(key, safe="")


@hypothesis_settings
@given(
    key=st.sampled_from(["_uip", "uip"]).flatmap(_casings),
    percent_key=st.booleans(),
    address=st.sampled_from([IP, IP6]),
    in_query=st.booleans(),
    in_line=st.booleans(),
    crlf=st.booleans(),
)
def test_gtag_collect__ip_anywhere_any_encoding__never_in_dead_letters(
    client, stream, no_rate_limit, key, percent_key, address, in_query, in_line, crlf
):
    RejectedEvent.objects.all().delete()
    pair = f"{_encoded_key(key, percent_key)}={quote(address, safe='')}"
    query = urlencode({"v": "2", "tid": MEASUREMENT_ID, "cid": CLIENT_ID})
    if in_query or not in_line:
        query = f"{pair}&{query}"
    line = "en=deep_read&epn.duration=long" + (f"&{pair}" if in_line else "")
    body = ("\r\n" if crlf else "\n").join(["en=page_view", line]).encode()

    response = post_gtag(client, query, body)

    assert response.status_code == 204
    assert RejectedEvent.objects.count() == 1
    text = stored_text()
    assert address not in text
    assert quote(address, safe="") not in text
    assert RejectedEvent.objects.get().user_pseudo_id == CLIENT_ID


def test_rejected_events_store__export_row_geo__dropped_visitor_id_kept():
    row = {
        "event_name": "bad name!",
        "user_pseudo_id": CLIENT_ID,
        "geo": {"city": CITY, "region": REGION, "country": "United States"},
        "device": {"category": "desktop"},
    }
    reasons = [{"field": "event_name", "message": "x", "code": "NAME_INVALID"}]

    rejected_events_store(source="ga4_export", items=[RejectedIn(payload=row, reasons=reasons)])

    rejected = RejectedEvent.objects.get()
    assert_nothing_personal()
    assert rejected.payload["device"] == {"category": "desktop"}
    assert rejected.user_pseudo_id == CLIENT_ID


# --- erasure and the admin --------------------------------------------------------------------


def _dead_letters_of_every_channel(client, visitor: str) -> None:
    query = urlencode({"v": "2", "tid": MEASUREMENT_ID, "cid": visitor})
    assert post_gtag(client, query, b"en=deep_read&epn.duration=long").status_code == 204
    body = {"client_id": visitor, "events": [GOOD_EVENT, BAD_EVENT]}
    assert post_mp(client, body).status_code == 204
    reasons = [{"field": "event_name", "message": "x", "code": "NAME_INVALID"}]
    row = {"event_name": "bad name!", "user_pseudo_id": visitor}
    rejected_events_store(source="ga4_export", items=[RejectedIn(payload=row, reasons=reasons)])


def test_visitor_erase__dead_letters_of_every_channel__all_theirs_gone_others_kept(client, stream):
    _dead_letters_of_every_channel(client, CLIENT_ID)
    _dead_letters_of_every_channel(client, OTHER_ID)
    assert RejectedEvent.objects.count() == 6

    counts = visitor_erase(user_pseudo_id=CLIENT_ID)

    assert counts.rejected_events == 3
    left = RejectedEvent.objects.all()
    assert sorted(r.source for r in left) == ["ga4_export", "gtag", "mp"]
    assert CLIENT_ID not in serializers.serialize("json", left)


def test_rejected_event_admin__search_by_visitor_id__only_theirs(client, stream):
    _dead_letters_of_every_channel(client, CLIENT_ID)
    _dead_letters_of_every_channel(client, OTHER_ID)
    user = get_user_model().objects.create_superuser("root", "r@example.com", "pw-123456789")
    client.force_login(user)

    response = client.get("/admin/analytics/rejectedevent/", {"q": CLIENT_ID})

    assert response.status_code == 200
    shown = response.context["cl"].result_list
    assert len(shown) == 3
    assert {r.user_pseudo_id for r in shown} == {CLIENT_ID}


def test_erasures_reapply__only_dead_letters_came_back__erased_again(settings, tmp_path):
    from analytics.services import erasures_reapply

    settings.BACKUP_DIR = tmp_path
    reasons = [{"field": "event_name", "message": "x", "code": "NAME_INVALID"}]

    def dead_letter(visitor: str) -> None:
        row = {"event_name": "bad name!", "user_pseudo_id": visitor}
        rejected_events_store(source="ga4_export", items=[RejectedIn(payload=row, reasons=reasons)])

    visitor_erase(user_pseudo_id=CLIENT_ID)
    dead_letter(CLIENT_ID)  # as a restore of an older backup would bring it back
    dead_letter(OTHER_ID)

    assert erasures_reapply() == 1

    assert list(RejectedEvent.objects.values_list("user_pseudo_id", flat=True)) == [OTHER_ID]
