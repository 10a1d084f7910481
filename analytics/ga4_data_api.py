"""Pull the GA4 Data API's daily report into `GA4DailyAggregate`.

One `runReport` over the last N days up to yesterday, by date, event, page and traffic source,
paged with limit/offset. GA4 keeps revising recent days, so each sync re-pulls them and replaces
the stored counts. Quota (429) and server (5xx) errors propagate as `google.api_core`
exceptions: the Celery task owns the retries.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import google.auth
from django.conf import settings
from django.db import transaction
from google.analytics.data_v1beta import BetaAnalyticsDataClient
from google.analytics.data_v1beta.types import (
    DateRange,
    Dimension,
    Metric,
    OrderBy,
    RunReportRequest,
    RunReportResponse,
)
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.oauth2 import service_account

from portfolio.storable import UNSTORABLE_MESSAGE, is_storable, storable_json

from .models import EventSource, GA4DailyAggregate
from .services import RejectedIn, rejected_events_store

logger = logging.getLogger(__name__)

SCOPES = ["https://www.googleapis.com/auth/analytics.readonly"]
PAGE_SIZE = 10_000
# Our column for each requested dimension, in request order.
DIMENSIONS = {
    "date": "date",
    "eventName": "event_name",
    "pagePath": "page_path",
    "sessionSource": "source",
    "sessionMedium": "medium",
}
METRICS = {"eventCount": "event_count", "totalUsers": "total_users"}
KEY_FIELDS = ["property_id", "date", "event_name", "page_path", "source", "medium"]
_BATCH_SIZE = 1_000

Key = tuple[str, date, str, str, str, str]


@dataclass
class SyncResult:
    days: int
    rows: int
    created: int
    updated: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def build_client() -> BetaAnalyticsDataClient:
    """A client with the service-account key in GA4_CREDENTIALS_FILE, else the application
    default credentials. GA4_DATA_API_ENDPOINT (a proxy or a local test server, `http://` is
    honoured by the REST transport) switches to REST, and to anonymous credentials when no key
    file is set."""
    endpoint = settings.GA4_DATA_API_ENDPOINT
    credentials: Credentials | None = None
    if settings.GA4_CREDENTIALS_FILE:
        credentials = service_account.Credentials.from_service_account_file(
            settings.GA4_CREDENTIALS_FILE, scopes=SCOPES
        )
    elif endpoint:
        credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
    else:
        credentials, _ = google.auth.default(scopes=SCOPES)  # type: ignore[no-untyped-call]
    if endpoint:
        return BetaAnalyticsDataClient(
            credentials=credentials,
            transport="rest",
            client_options=ClientOptions(api_endpoint=endpoint),
        )
    return BetaAnalyticsDataClient(credentials=credentials)


def sync_daily_aggregates(
    *, days: int | None = None, client: BetaAnalyticsDataClient | None = None
) -> SyncResult | None:
    """Re-pull the last `days` days (GA4_SYNC_DAYS by default) up to yesterday and upsert
    them. Nothing is written unless every page was fetched. None when GA4 is not configured."""
    property_id = str(settings.GA4_PROPERTY_ID).strip()
    if not property_id:
        logger.info("ga4.sync.skipped: GA4_PROPERTY_ID is not set")
        return None
    days = settings.GA4_SYNC_DAYS if days is None else days
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    client = client or build_client()

    responses = _fetch_report(client=client, property_id=property_id, days=days)
    values, received, skipped, rejected = _rows_to_values(
        property_id=property_id, responses=responses
    )
    with transaction.atomic():
        created, updated = _upsert(property_id=property_id, values=values)
        rejected_events_store(source=EventSource.GA4_API, items=rejected)

    result = SyncResult(days=days, rows=received, created=created, updated=updated)
    logger.info(
        "ga4.sync.done property_id=%s days=%d pages=%d rows=%d created=%d updated=%d skipped=%d",
        property_id,
        days,
        len(responses),
        received,
        created,
        updated,
        skipped,
        # One key: LogRecord already has a `created` attribute that extra may not overwrite.
        extra={
            "ga4_sync": {"property_id": property_id, "pages": len(responses), **result.as_dict()}
        },
    )
    return result


def _report_request(*, property_id: str, days: int, offset: int) -> RunReportRequest:
    # Relative dates are resolved by GA4 in the property's own time zone, which is the day
    # boundary its report uses; our server's "yesterday" may be a different day.
    return RunReportRequest(
        property=f"properties/{property_id}",
        date_ranges=[DateRange(start_date=f"{days}daysAgo", end_date="yesterday")],
        dimensions=[Dimension(name=name) for name in DIMENSIONS],
        metrics=[Metric(name=name) for name in METRICS],
        # A total order over the row key, so limit/offset pages neither skip nor repeat rows.
        order_bys=[
            OrderBy(dimension=OrderBy.DimensionOrderBy(dimension_name=n)) for n in DIMENSIONS
        ],
        limit=PAGE_SIZE,
        offset=offset,
    )


def _fetch_report(
    *, client: BetaAnalyticsDataClient, property_id: str, days: int
) -> list[RunReportResponse]:
    responses: list[RunReportResponse] = []
    offset = 0
    while True:
        request = _report_request(property_id=property_id, days=days, offset=offset)
        # retry=None: the Celery task retries the whole sync with backoff instead.
        response = client.run_report(
            request=request, retry=None, timeout=settings.GA4_DATA_API_TIMEOUT
        )
        responses.append(response)
        offset += len(response.rows)
        if not response.rows or offset >= response.row_count:
            return responses


def _rows_to_values(
    *, property_id: str, responses: list[RunReportResponse]
) -> tuple[dict[Key, dict[str, Any]], int, int, list[RejectedIn]]:
    """Report rows → model field values by unique key; with the rows received and skipped, and
    a dead letter for each row whose text PostgreSQL could not store (portfolio/storable.py):
    one such row must not fail the whole sync, retry after retry."""
    values: dict[Key, dict[str, Any]] = {}
    rejected: list[RejectedIn] = []
    received = skipped = 0
    for response in responses:
        dimension_names = [header.name for header in response.dimension_headers]
        metric_names = [header.name for header in response.metric_headers]
        for row in response.rows:
            received += 1
            fields = {
                DIMENSIONS[name]: cell.value
                for name, cell in zip(dimension_names, row.dimension_values, strict=True)
            }
            metrics = {
                METRICS[name]: cell.value
                for name, cell in zip(metric_names, row.metric_values, strict=True)
            }
            unstorable = [name for name, text in fields.items() if not is_storable(text)]
            if unstorable:
                skipped += 1
                rejected.append(_rejected_row(property_id, fields, metrics, unstorable))
                continue
            try:
                row_values = _row_values(property_id=property_id, fields=fields, metrics=metrics)
            except (ValueError, InvalidOperation):
                # e.g. an "(other)" date; one odd row must not block the whole sync.
                skipped += 1
                continue
            key: Key = tuple(row_values[name] for name in KEY_FIELDS)  # type: ignore[assignment]
            previous = values.get(key)
            if previous is not None:  # two values that differ only beyond our column widths
                for name in METRICS.values():
                    row_values[name] += previous[name]
            values[key] = row_values
    if skipped:
        logger.warning("ga4.sync.rows_skipped property_id=%s skipped=%d", property_id, skipped)
    return values, received, skipped, rejected


def _rejected_row(
    property_id: str, fields: dict[str, str], metrics: dict[str, str], unstorable: list[str]
) -> RejectedIn:
    return RejectedIn(
        payload=storable_json({**fields, **metrics}),
        reasons=[
            {"field": name, "message": UNSTORABLE_MESSAGE, "code": "TEXT_INVALID"}
            for name in unstorable
        ],
        context=f"ga4 data api property {property_id}",
    )


def _row_values(
    *, property_id: str, fields: dict[str, str], metrics: dict[str, str]
) -> dict[str, Any]:
    return {
        "property_id": property_id,
        "date": datetime.strptime(fields["date"], "%Y%m%d").date(),
        "event_name": _fit("event_name", fields["event_name"]),
        "page_path": _fit("page_path", fields["page_path"]),
        "source": _fit("source", fields["source"]),
        "medium": _fit("medium", fields["medium"]),
        **{name: int(Decimal(metrics[name])) for name in METRICS.values()},
    }


def _fit(field_name: str, value: str) -> str:
    max_length = getattr(GA4DailyAggregate._meta.get_field(field_name), "max_length", None)
    return value[:max_length] if max_length else value


def _upsert(*, property_id: str, values: dict[Key, dict[str, Any]]) -> tuple[int, int]:
    """Insert new rows and replace the counts of existing ones, in one short transaction."""
    if not values:
        return 0, 0
    dates = {key[1] for key in values}
    objects = [GA4DailyAggregate(**row) for row in values.values()]
    with transaction.atomic():
        existing = set(
            GA4DailyAggregate.objects.filter(
                property_id=property_id, date__gte=min(dates), date__lte=max(dates)
            ).values_list(*KEY_FIELDS)
        )
        # ON CONFLICT DO UPDATE rather than a create/update split: a concurrent sync that
        # inserts the same row first cannot make this one fail.
        GA4DailyAggregate.objects.bulk_create(
            objects,
            batch_size=_BATCH_SIZE,
            update_conflicts=True,
            unique_fields=KEY_FIELDS,
            update_fields=[*METRICS.values(), "synced_at"],
        )
    updated = sum(1 for key in values if key in existing)
    return len(values) - updated, updated
