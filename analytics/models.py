from django.db import models


class EventSource(models.TextChoices):
    API = "api", "JSON API"
    MP = "mp", "GA4 Measurement Protocol"
    GTAG = "gtag", "gtag.js hit"
    GA4_EXPORT = "ga4_export", "GA4 BigQuery export"
    GA4_API = "ga4_api", "GA4 Data API"
    SEED = "seed", "Demo data"


class Event(models.Model):
    """One visitor interaction, whatever channel it came through. Append-only."""

    event_name = models.CharField(max_length=100)
    user_pseudo_id = models.CharField(max_length=200)
    event_params = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    source = models.CharField(max_length=16, choices=EventSource.choices, default=EventSource.API)
    session_id = models.CharField(max_length=100, blank=True, default="")
    page_location = models.TextField(blank=True, default="")
    page_referrer = models.TextField(blank=True, default="")
    # The first 16 bytes of the sha256 of the client's event_id, or of (user, name, timestamp,
    # params) when it sent none (services.dedupe_key). A uuid on PostgreSQL: 16 bytes compared
    # by memcmp, where 64 hex digits of varchar went through the database collation's strcoll.
    dedupe_key = models.UUIDField()

    class Meta:
        # A constraint rather than unique=True: the latter also builds a varchar_pattern_ops
        # index that nothing uses and every insert pays for.
        constraints = [
            models.UniqueConstraint(fields=["dedupe_key"], name="event_dedupe_key_unique")
        ]
        indexes = [
            models.Index(fields=["user_pseudo_id", "occurred_at"], name="event_user_time_idx"),
            models.Index(fields=["event_name", "occurred_at"], name="event_name_time_idx"),
            models.Index(fields=["occurred_at"], name="event_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_name} by {self.user_pseudo_id} at {self.occurred_at:%Y-%m-%d %H:%M}"


class Visitor(models.Model):
    """What we know of one `user_pseudo_id` across all its events."""

    user_pseudo_id = models.CharField(max_length=200)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    event_count = models.PositiveIntegerField(default=0)
    # user properties, device, geo, traffic source, consent: as the sources report them
    traits = models.JSONField(default=dict, blank=True)

    class Meta:
        # A constraint rather than unique=True, as for Event.dedupe_key: the latter also builds
        # a varchar_pattern_ops index for LIKE 'prefix%' that no query makes (the admin's exact
        # search is iexact), and a GA4 import inserts into it once per new visitor.
        constraints = [
            models.UniqueConstraint(fields=["user_pseudo_id"], name="visitor_user_pseudo_id_unique")
        ]
        indexes = [models.Index(fields=["last_seen"], name="visitor_last_seen_idx")]

    def __str__(self) -> str:
        return self.user_pseudo_id


class RejectedEvent(models.Model):
    """Dead letter: what a client sent that we could not accept, with why. Nothing is lost
    silently, even where the protocol (GA4 MP, gtag) answers success regardless."""

    source = models.CharField(max_length=16, choices=EventSource.choices)
    received_at = models.DateTimeField(auto_now_add=True)
    # The offending event or line as received, minus what identifies a person (IPs, user_data,
    # precise geo: dead_letters.py); text that was not JSON is kept as {"raw": ...}.
    payload = models.JSONField(default=dict, blank=True)
    # Whose it is, as the channel names visitors (gtag cid, MP client_id, user_pseudo_id); blank
    # when unknown. Erasure deletes by it.
    user_pseudo_id = models.CharField(max_length=200, blank=True, default="")
    # [{"field": "events.0.name", "message": "...", "code": "NAME_INVALID"}, ...]
    reasons = models.JSONField(default=list)
    context = models.CharField(
        max_length=300, blank=True, default="", help_text="File, stream or line it came from."
    )
    line_number = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["source", "received_at"], name="rejected_source_time_idx"),
            models.Index(fields=["user_pseudo_id"], name="rejected_visitor_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.source} rejected at {self.received_at:%Y-%m-%d %H:%M}"


def generate_api_secret() -> str:
    import secrets

    return secrets.token_urlsafe(24)


class MeasurementStream(models.Model):
    """A GA4-style web data stream: /mp/collect accepts hits with its measurement id and secret."""

    name = models.CharField(max_length=100)
    measurement_id = models.CharField(
        max_length=40, unique=True, help_text="As in GA4, e.g. G-ABC123XYZ."
    )
    api_secret = models.CharField(max_length=64, default=generate_api_secret)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.measurement_id})"


class GA4DailyAggregate(models.Model):
    """One row of the GA4 Data API's daily report: counts by event, page and traffic source."""

    property_id = models.CharField(max_length=32)
    date = models.DateField()
    event_name = models.CharField(max_length=100)
    page_path = models.CharField(max_length=500, blank=True, default="")
    source = models.CharField(max_length=200, blank=True, default="")
    medium = models.CharField(max_length=200, blank=True, default="")
    event_count = models.BigIntegerField(default=0)
    total_users = models.BigIntegerField(default=0)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["property_id", "date", "event_name", "page_path", "source", "medium"],
                name="ga4_aggregate_unique_row",
            )
        ]
        indexes = [models.Index(fields=["date", "event_name"], name="ga4_agg_date_event_idx")]

    def __str__(self) -> str:
        return f"{self.date} {self.event_name} {self.page_path}: {self.event_count}"


class ImportStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class GA4ExportUpload(models.Model):
    """A GA4 BigQuery export file (NDJSON, plain or .gz) uploaded in admin, imported by a worker."""

    file = models.FileField(upload_to="ga4-exports/%Y/%m/")
    uploaded_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(
        max_length=16, choices=ImportStatus.choices, default=ImportStatus.PENDING
    )
    rows_read = models.PositiveIntegerField(default=0)
    rows_imported = models.PositiveIntegerField(default=0)
    rows_duplicate = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    # The first bad lines, [{"line": 12, "error": "..."}]; all of them are in RejectedEvent.
    errors = models.JSONField(default=list, blank=True)
    task_id = models.CharField(max_length=64, blank=True, default="")
    finished_at = models.DateTimeField(null=True, blank=True)
    # Moved by a running import every few seconds, and by the sweep that re-queues one whose
    # worker died (analytics.tasks.import_uploads_resume); null until first queued by a sweep
    # or started.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.file.name} ({self.status})"
