"""The GA4 Data API sync against a loopback server that speaks runReport's REST wire format.

The real google-analytics-data client (REST transport) talks to pytest-httpserver; nothing of
ours is mocked. Bodies follow Google's runReport reference: int64 limit/offset go out as JSON
strings, every dimension and metric value comes back as a string, dates as YYYYMMDD.
"""

import base64
import json
import logging
import time
from datetime import date

import pytest
import requests
from google.api_core import exceptions as google_exceptions
from werkzeug import Response

from analytics.ga4_data_api import SyncResult, sync_daily_aggregates
from analytics.models import EventSource, GA4DailyAggregate, RejectedEvent
from analytics.tasks import GA4_RETRYABLE, sync_ga4_data_api
from conftest import run_celery_worker

PROPERTY_ID = "123456789"
URI = f"/v1beta/properties/{PROPERTY_ID}:runReport"
DIMENSIONS = ["date", "eventName", "pagePath", "sessionSource", "sessionMedium"]
METRICS = ["eventCount", "totalUsers"]


@pytest.fixture
def ga4(settings, httpserver):
    settings.GA4_PROPERTY_ID = PROPERTY_ID
    settings.GA4_CREDENTIALS_FILE = ""
    settings.GA4_DATA_API_ENDPOINT = httpserver.url_for("").rstrip("/")
    settings.GA4_SYNC_DAYS = 3
    settings.GA4_DATA_API_TIMEOUT = 5.0
    return httpserver


def row(day="20250301", event="page_view", path="/", source="google", medium="organic", n=1, u=1):
    return {
        "dimensionValues": [{"value": v} for v in (day, event, path, source, medium)],
        "metricValues": [{"value": str(n)}, {"value": str(u)}],
    }


def report(rows, row_count=None):
    """A runReport response body as the API sends it."""
    return {
        "dimensionHeaders": [{"name": name} for name in DIMENSIONS],
        "metricHeaders": [{"name": name, "type": "TYPE_INTEGER"} for name in METRICS],
        "rows": rows,
        "rowCount": len(rows) if row_count is None else row_count,
        "metadata": {"currencyCode": "USD", "timeZone": "Europe/Berlin"},
        "kind": "analyticsData#runReport",
    }


def google_error(code, status, message):
    return json.dumps({"error": {"code": code, "message": message, "status": status}})


def full_page(count=10_000):
    return [row(path=f"/projects/{i}", n=i + 1) for i in range(count)]


def sent_bodies(httpserver):
    return [request.get_json() for request, _ in httpserver.log]


def stored():
    return {
        (r.date, r.event_name, r.page_path, r.source, r.medium): (r.event_count, r.total_users)
        for r in GA4DailyAggregate.objects.all()
    }


@pytest.mark.django_db
def test_sync__one_page__sends_runreport_rest_json(ga4):
    ga4.expect_ordered_request(URI, method="POST").respond_with_json(report([row()]))

    sync_daily_aggregates(days=7)

    ga4.check_assertions()
    (request, _), *_ = ga4.log
    assert request.headers["Content-Type"].startswith("application/json")
    body = request.get_json()
    assert request.path == URI  # the property travels in the path, not the body
    assert "property" not in body
    assert body["dateRanges"] == [{"startDate": "7daysAgo", "endDate": "yesterday"}]
    assert body["dimensions"] == [{"name": name} for name in DIMENSIONS]
    assert body["metrics"] == [{"name": name} for name in METRICS]
    assert body["orderBys"] == [{"dimension": {"dimensionName": name}} for name in DIMENSIONS]
    assert body["limit"] == "10000"
    assert body.get("offset", "0") == "0"  # proto3 JSON leaves a zero out


@pytest.mark.django_db
def test_sync__two_pages__paginated_by_offset_and_all_stored(ga4):
    second = [row(day="20250302", event="project_click", path="/projects/ml", n=5, u=2), row()]
    ga4.expect_ordered_request(URI, method="POST").respond_with_json(
        report(full_page(), row_count=10_002)
    )
    ga4.expect_ordered_request(URI, method="POST").respond_with_json(
        report(second, row_count=10_002)
    )

    result = sync_daily_aggregates()

    ga4.check_assertions()
    bodies = sent_bodies(ga4)
    assert [(b["limit"], b.get("offset", "0")) for b in bodies] == [
        ("10000", "0"),
        ("10000", "10000"),
    ]
    assert bodies[0]["dateRanges"] == [{"startDate": "3daysAgo", "endDate": "yesterday"}]
    assert result == SyncResult(days=3, rows=10_002, created=10_002, updated=0)
    assert GA4DailyAggregate.objects.count() == 10_002
    ml = GA4DailyAggregate.objects.get(page_path="/projects/ml")
    assert (ml.property_id, ml.date, ml.event_name, ml.source, ml.medium) == (
        PROPERTY_ID,
        date(2025, 3, 2),
        "project_click",
        "google",
        "organic",
    )
    assert (ml.event_count, ml.total_users) == (5, 2)


@pytest.mark.django_db
def test_sync__second_sync_with_revised_counts__updates_rows_not_duplicates(ga4):
    ga4.expect_ordered_request(URI, method="POST").respond_with_json(
        report([row(path="/a", n=10, u=4), row(path="/b", n=3, u=1)])
    )
    ga4.expect_ordered_request(URI, method="POST").respond_with_json(
        report([row(path="/a", n=12, u=5), row(path="/b", n=3, u=1), row(path="/c", n=1)])
    )

    first = sync_daily_aggregates()
    second = sync_daily_aggregates()

    assert first == SyncResult(days=3, rows=2, created=2, updated=0)
    assert second == SyncResult(days=3, rows=3, created=1, updated=2)
    day = date(2025, 3, 1)
    assert stored() == {
        (day, "page_view", "/a", "google", "organic"): (12, 5),
        (day, "page_view", "/b", "google", "organic"): (3, 1),
        (day, "page_view", "/c", "google", "organic"): (1, 1),
    }


@pytest.mark.django_db
def test_sync__other_property_same_row__kept_apart(ga4, settings):
    ga4.expect_ordered_request(URI, method="POST").respond_with_json(report([row(n=1)]))
    other = "/v1beta/properties/42:runReport"
    ga4.expect_ordered_request(other, method="POST").respond_with_json(report([row(n=2)]))

    sync_daily_aggregates()
    settings.GA4_PROPERTY_ID = "42"
    result = sync_daily_aggregates()

    assert result == SyncResult(days=3, rows=1, created=1, updated=0)
    assert sorted(GA4DailyAggregate.objects.values_list("property_id", "event_count")) == [
        ("123456789", 1),
        ("42", 2),
    ]


@pytest.mark.parametrize(
    ("status", "google_status", "expected"),
    [
        (429, "RESOURCE_EXHAUSTED", google_exceptions.TooManyRequests),
        (500, "INTERNAL", google_exceptions.InternalServerError),
        (503, "UNAVAILABLE", google_exceptions.ServiceUnavailable),
    ],
)
@pytest.mark.django_db
def test_sync__error_on_second_page__retryable_exception_and_nothing_written(
    ga4, status, google_status, expected
):
    GA4DailyAggregate.objects.create(
        property_id=PROPERTY_ID, date=date(2025, 3, 1), event_name="page_view", event_count=7
    )
    ga4.expect_ordered_request(URI, method="POST").respond_with_json(
        report(full_page(), row_count=10_001)
    )
    ga4.expect_ordered_request(URI, method="POST").respond_with_data(
        google_error(status, google_status, "Exhausted property tokens per hour."),
        status=status,
        content_type="application/json",
    )

    with pytest.raises(expected) as raised:
        sync_daily_aggregates()

    ga4.check_assertions()
    assert isinstance(raised.value, GA4_RETRYABLE)  # the Celery task retries these
    assert getattr(raised.value, "code", None) == status
    assert GA4DailyAggregate.objects.count() == 1
    assert GA4DailyAggregate.objects.get().event_count == 7


@pytest.mark.django_db
def test_sync__server_slower_than_timeout__times_out_and_nothing_written(ga4, settings):
    settings.GA4_DATA_API_TIMEOUT = 0.2

    def slow(request):
        time.sleep(0.6)
        return Response(json.dumps(report([row()])), content_type="application/json")

    ga4.expect_ordered_request(URI, method="POST").respond_with_handler(slow)

    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        sync_daily_aggregates()

    assert time.monotonic() - started < 0.6
    assert GA4DailyAggregate.objects.count() == 0


@pytest.mark.django_db
def test_sync__not_configured__returns_none_logs_one_line_no_request(ga4, settings, caplog):
    settings.GA4_PROPERTY_ID = ""

    with caplog.at_level(logging.INFO, logger="analytics.ga4_data_api"):
        result = sync_daily_aggregates()

    assert result is None
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("analytics.ga4_data_api", "INFO", "ga4.sync.skipped: GA4_PROPERTY_ID is not set")
    ]
    assert ga4.log == []
    assert GA4DailyAggregate.objects.count() == 0


@pytest.mark.django_db
def test_sync__done__logs_counts_without_row_values(ga4, caplog):
    ga4.expect_ordered_request(URI, method="POST").respond_with_json(
        report([row(path="/secret-path?email=a@b.c")])
    )

    with caplog.at_level(logging.INFO, logger="analytics.ga4_data_api"):
        sync_daily_aggregates()

    (record,) = [r for r in caplog.records if r.name == "analytics.ga4_data_api"]
    assert record.getMessage().startswith("ga4.sync.done ")
    assert "rows=1 created=1 updated=0" in record.getMessage()
    assert "secret" not in record.getMessage()


@pytest.mark.django_db
def test_sync__unparsable_date_row__skipped_rest_stored(ga4):
    ga4.expect_ordered_request(URI, method="POST").respond_with_json(
        report([row(day="(other)", path="/x"), row(path="/y")])
    )

    result = sync_daily_aggregates()

    assert result == SyncResult(days=3, rows=2, created=1, updated=0)
    assert list(GA4DailyAggregate.objects.values_list("page_path", flat=True)) == ["/y"]


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["event", "path", "source", "medium"])
def test_sync__unstorable_text_in_row__dead_letter_with_reason_rest_stored(ga4, field):
    # A NUL from the API would be a DataError on PostgreSQL and fail the whole sync, forever.
    ga4.expect_ordered_request(URI, method="POST").respond_with_json(
        report([row(**{field: "bad\x00value"}), row(path="/y")])
    )

    result = sync_daily_aggregates()

    assert result == SyncResult(days=3, rows=2, created=1, updated=0)
    assert list(GA4DailyAggregate.objects.values_list("page_path", flat=True)) == ["/y"]
    letter = RejectedEvent.objects.get()
    assert letter.source == EventSource.GA4_API
    assert letter.reasons[0]["code"] == "TEXT_INVALID"
    assert "bad\ufffdvalue" in letter.payload.values()


@pytest.mark.django_db
def test_sync__credentials_file__service_account_jwt_with_readonly_scope(ga4, settings, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    key_file = tmp_path / "sa.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "portfolio-test",
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": "ga4-sync@portfolio-test.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    settings.GA4_CREDENTIALS_FILE = str(key_file)
    ga4.expect_ordered_request(URI, method="POST").respond_with_json(report([row()]))

    sync_daily_aggregates()

    # A self-signed JWT: no token endpoint is called, which the loopback run also proves.
    (request, _), *_ = ga4.log
    scheme, token = request.headers["Authorization"].split(" ", 1)
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert scheme == "Bearer"
    assert claims["iss"] == "ga4-sync@portfolio-test.iam.gserviceaccount.com"
    assert claims["scope"] == "https://www.googleapis.com/auth/analytics.readonly"


@pytest.mark.django_db
def test_sync__endpoint_without_credentials_file__anonymous(ga4):
    ga4.expect_ordered_request(URI, method="POST").respond_with_json(report([row()]))

    sync_daily_aggregates()

    (request, _), *_ = ga4.log
    assert "Authorization" not in request.headers


@pytest.mark.django_db
def test_sync__days_below_one__rejected(ga4):
    with pytest.raises(ValueError, match="days"):
        sync_daily_aggregates(days=0)

    assert ga4.log == []


# --- The Celery task's retry on 429 ------------------------------------------------------------
# In process: `.apply()` runs the task through Celery's tracer with an eager request, so the
# autoretry wrapper built from the task's own `autoretry_for` / `retry_backoff` / `max_retries`
# catches the 429 and `Task.retry` raises `Retry` carrying the next attempt's signature, which
# `apply` then runs at once (eager retries skip the countdown, so the 0-30 s jittered backoff
# costs nothing). It sees the settings fixture and the test database. One catch: with
# task_eager_propagates on (our settings) the tracer re-raises that `Retry` to the caller instead
# of running the next attempt, so these tests turn it off, which is how a worker behaves.


@pytest.fixture
def eager_retries():
    conf = sync_ga4_data_api.app.conf
    propagates = conf.task_eager_propagates
    conf.task_eager_propagates = False
    yield
    conf.task_eager_propagates = propagates


@pytest.mark.django_db
def test_sync_task__429_then_report__retried_and_rows_stored(ga4, eager_retries):
    ga4.expect_ordered_request(URI, method="POST").respond_with_data(
        google_error(429, "RESOURCE_EXHAUSTED", "Exhausted concurrent requests quota."),
        status=429,
        content_type="application/json",
    )
    ga4.expect_ordered_request(URI, method="POST").respond_with_json(
        report([row(path="/a", n=4, u=2)])
    )

    result = sync_ga4_data_api.apply(kwargs={"days": 2})

    ga4.check_assertions()
    assert [response.status_code for _, response in ga4.log] == [429, 200]
    assert result.successful()
    assert result.get() == {"days": 2, "rows": 1, "created": 1, "updated": 0}
    # The retry kept the task's arguments.
    assert [b["dateRanges"][0]["startDate"] for b in sent_bodies(ga4)] == ["2daysAgo", "2daysAgo"]
    assert stored() == {(date(2025, 3, 1), "page_view", "/a", "google", "organic"): (4, 2)}


@pytest.mark.django_db
def test_sync_task__429_every_time__gives_up_after_max_retries(ga4, eager_retries):
    ga4.expect_request(URI, method="POST").respond_with_data(
        google_error(429, "RESOURCE_EXHAUSTED", "Exhausted property tokens per day."),
        status=429,
        content_type="application/json",
    )

    result = sync_ga4_data_api.apply()

    assert result.failed()
    assert isinstance(result.result, google_exceptions.TooManyRequests)
    assert len(ga4.log) == 1 + sync_ga4_data_api.max_retries
    assert GA4DailyAggregate.objects.count() == 0


@pytest.mark.django_db
def test_sync_task__not_configured__returns_none(settings, httpserver):
    settings.GA4_PROPERTY_ID = ""

    result = sync_ga4_data_api.apply()

    assert result.successful()
    assert result.get() is None
    assert httpserver.log == []


# Through the broker: a real `celery worker` process takes the task, the 429 makes it publish
# the retry with its backoff countdown (0-30 s, full jitter) to the same queue, and it runs again
# when that comes due. conftest's `celery_worker` starts with the environment's settings, which
# do not point at our loopback server, so this starts its own with the GA4 variables set.


@pytest.fixture
def ga4_worker(postgres, make_httpserver, transactional_db):
    with run_celery_worker(
        GA4_PROPERTY_ID=PROPERTY_ID,
        GA4_CREDENTIALS_FILE="",
        GA4_DATA_API_ENDPOINT=make_httpserver.url_for("").rstrip("/"),
    ) as worker:
        yield worker.queue


@pytest.mark.services
@pytest.mark.real_worker
def test_sync_task__real_worker_429_then_report__retried_through_broker(httpserver, ga4_worker):
    httpserver.expect_ordered_request(URI, method="POST").respond_with_data(
        google_error(429, "RESOURCE_EXHAUSTED", "Exhausted concurrent requests quota."),
        status=429,
        content_type="application/json",
    )
    httpserver.expect_ordered_request(URI, method="POST").respond_with_json(
        report([row(path="/a", n=4, u=2)])
    )

    result = sync_ga4_data_api.apply_async(kwargs={"days": 2}, queue=ga4_worker)

    # The backoff countdown is at most retry_backoff (30 s) for the first retry.
    assert result.get(timeout=90) == {"days": 2, "rows": 1, "created": 1, "updated": 0}
    httpserver.check_assertions()
    assert [response.status_code for _, response in httpserver.log] == [429, 200]
    assert stored() == {(date(2025, 3, 1), "page_view", "/a", "google", "organic"): (4, 2)}
