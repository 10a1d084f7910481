"""GET /api/admin/events/search against docs/API.md."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from analytics.models import Event
from analytics.services import EventIn, events_store

pytestmark = pytest.mark.django_db
URL = "/api/admin/events/search"


@pytest.fixture
def events():
    now = timezone.now()
    rows = [
        EventIn(
            "project_click", "alice.1", now - timedelta(minutes=5), {"project_id": "llm-router"}
        ),
        EventIn("skill_hover", "alice.1", now - timedelta(minutes=4), {"skill_name": "PyTorch"}),
        EventIn("download_resume", "bob.2", now - timedelta(minutes=3), {"file": "cv.pdf"}),
        EventIn("page_view", "bob.2", now - timedelta(hours=30), {"page": "/"}),
        EventIn("page_view", "carol.3", now - timedelta(days=100), {"page": "/old"}),
    ]
    for i, row in enumerate(rows):
        row.event_id = f"e{i}"
    events_store(events=rows)
    return rows


def _names(response):
    return [row["event_name"] for row in response.json()["results"]]


def test_events_search__defaults__last_24h_newest_first(admin_client, events):
    response = admin_client.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert _names(response) == ["download_resume", "skill_hover", "project_click"]
    first = body["results"][0]
    assert first["user_pseudo_id"] == "bob.2"
    assert first["event_params"] == {"file": "cv.pdf"}
    assert first["occurred_at"].endswith("Z")
    stored = Event.objects.get(pk=first["id"]).occurred_at
    assert first["event_timestamp"] == int(stored.timestamp() * 1_000_000)


def test_events_search__count__kept_briefly_per_filter_set(admin_client, events, settings):
    new = EventIn("project_click", "dave.4", timezone.now(), {"project_id": "llm-router"})
    new.event_id = "later"

    before = admin_client.get(URL).json()
    events_store(events=[new])
    cached = admin_client.get(URL).json()
    other_filters = admin_client.get(URL, {"event_name": "project_click"}).json()
    settings.ADMIN_EVENTS_COUNT_CACHE_SECONDS = 0
    exact = admin_client.get(URL).json()

    assert before["count"] == cached["count"] == 3  # counted once for these filters
    assert len(cached["results"]) == 4  # the rows themselves are always current
    assert other_filters["count"] == 2  # another filter set has its own count
    assert exact["count"] == 4


@pytest.mark.parametrize("microsecond", [0, 1, 123456, 999999])
def test_events_search__rows__same_json_on_every_database(admin_client, microsecond):
    # PostgreSQL writes the rows' JSON itself; it must match the Python encoding exactly.
    from analytics.selectors import _EVENT_FIELDS, _event_out

    at = timezone.now().replace(microsecond=microsecond) - timedelta(minutes=1)
    params = {"ü": 'quote " and \\', "n": [1, {"a": None}], "f": 1.5, "big": 2**70, "e": ""}
    event = EventIn("project_click", "uni.1", at, params, event_id="tricky")
    events_store(events=[event])

    (row,) = admin_client.get(URL).json()["results"]

    (expected,) = [_event_out(r) for r in Event.objects.values(*_EVENT_FIELDS)]
    assert row == expected
    assert row["event_params"]["big"] == 2**70


def test_events_search__hours_widens_the_window(admin_client, events):
    assert admin_client.get(URL, {"hours": 48}).json()["count"] == 4
    assert admin_client.get(URL, {"hours": 2160}).json()["count"] == 4


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"event_name": "skill_hover"}, ["skill_hover"]),
        ({"user_pseudo_id": "alice.1"}, ["skill_hover", "project_click"]),
        ({"q": "pytorch"}, ["skill_hover"]),  # in the params text, any case
        ({"q": "DOWNLOAD"}, ["download_resume"]),  # in the name
        ({"q": "nothing-like-this"}, []),
        ({"ordering": "event_timestamp"}, ["project_click", "skill_hover", "download_resume"]),
        ({"ordering": "event_name"}, ["download_resume", "project_click", "skill_hover"]),
        ({"ordering": "-event_name"}, ["skill_hover", "project_click", "download_resume"]),
        # empty values, as in API.md's example query, mean "no filter"
        ({"event_name": "", "user_pseudo_id": "", "q": "", "offset": ""}, None),
    ],
)
def test_events_search__filters_and_ordering(admin_client, events, params, expected):
    response = admin_client.get(URL, params)

    assert response.status_code == 200
    if expected is None:
        expected = ["download_resume", "skill_hover", "project_click"]
    assert _names(response) == expected
    assert response.json()["count"] == len(expected)


def test_events_search__limit_and_offset__pages_without_overlap(admin_client, events):
    first = admin_client.get(URL, {"limit": 2}).json()
    second = admin_client.get(URL, {"limit": 2, "offset": 2}).json()
    past_the_end = admin_client.get(URL, {"limit": 2, "offset": 10_000_000}).json()

    assert first["count"] == second["count"] == past_the_end["count"] == 3
    assert len(first["results"]) == 2
    assert len(second["results"]) == 1
    assert {r["id"] for r in first["results"]}.isdisjoint(r["id"] for r in second["results"])
    assert past_the_end["results"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"hours": 0}, "hours"),
        ({"hours": 2161}, "hours"),
        ({"hours": "abc"}, "hours"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": "1e3"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "9" * 40}, "offset"),
        ({"offset": "0.0"}, "offset"),
        ({"limit": "5.0"}, "limit"),
        ({"event_name": "bad name!"}, "event_name"),
        ({"event_name": "x" * 101}, "event_name"),
        ({"user_pseudo_id": "a/b"}, "user_pseudo_id"),
        ({"q": "x" * 201}, "q"),
        ({"q": "nul\x00byte"}, "q"),
        ({"ordering": "event_params"}, "ordering"),
        ({"ordering": "-id; DROP TABLE"}, "ordering"),
    ],
)
def test_events_search__bad_filter__422_naming_the_field(admin_client, params, field):
    response = admin_client.get(URL, params)

    assert response.status_code == 422
    body = response.json()
    assert field in body["errors"]
    assert body["detail"].startswith(field)


def test_events_search__unknown_params__ignored(admin_client, events):
    response = admin_client.get(URL, {"page": "2", "hours[]": "x", "limit[]": "9"})

    assert response.status_code == 200
    assert response.json()["count"] == 3


@pytest.mark.parametrize(
    "query",
    [
        "format=xml",
        "hours=1&hours=99999",
        "limit=%00",
        "q=%ff%fe",
        "offset=1.5",
        "hours=%F0%9F%98%80",
    ],
)
def test_events_search__garbage_query__json_4xx_or_200_never_500(admin_client, query):
    response = admin_client.get(f"{URL}?{query}")

    assert response.status_code in (200, 404, 422)
    assert response["Content-Type"].startswith("application/json")


def test_events_search__no_token__401_bearer(client):
    response = client.get(URL)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "detail" in response.json()


@pytest.mark.parametrize(
    "header", ["Bearer not-a-jwt", "Bearer ", "Basic YWRtaW46YWRtaW4=", "Token x"]
)
def test_events_search__bad_token__401_bearer(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get(URL)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_events_search__expired_token__401_bearer(admin_api_user):
    token = AccessToken.for_user(admin_api_user)
    token.set_exp(lifetime=-timedelta(seconds=1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = client.get(URL)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_events_search__non_staff_token__403(db):
    user = User.objects.create_user("visitor", password="pw-1234567890-x")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")

    response = client.get(URL)

    assert response.status_code == 403
    assert response.json()["detail"]


def test_events_search__staff_without_permission__403(db):
    user = User.objects.create_user("staff", password="pw-1234567890-x", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")

    assert client.get(URL).status_code == 403


PARAMS = ["hours", "limit", "offset", "event_name", "user_pseudo_id", "q", "ordering"]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.dictionaries(
        st.sampled_from(PARAMS),
        st.one_of(
            st.text(max_size=300),
            st.integers(min_value=-(10**30), max_value=10**30).map(str),
            st.sampled_from(["", " ", "-event_timestamp", "1e3", "NaN", "0x10", "\uff11\uff12"]),
        ),
        max_size=7,
    )
)
def test_events_search__any_query__200_or_422(admin_client, params):
    response = admin_client.get(URL, params)

    assert response.status_code in (200, 422), (params, response.content)
    body = response.json()
    assert ("results" in body) if response.status_code == 200 else ("errors" in body)
