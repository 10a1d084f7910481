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
    # sha256 of the client's event_id, or of (user, name, timestamp, params) when it sent none.
    dedupe_key = models.CharField(max_length=64, unique=True)

    class Meta:
        indexes = [
            models.Index(fields=["user_pseudo_id", "occurred_at"], name="event_user_time_idx"),
            models.Index(fields=["event_name", "occurred_at"], name="event_name_time_idx"),
            models.Index(fields=["occurred_at"], name="event_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_name} by {self.user_pseudo_id} at {self.occurred_at:%Y-%m-%d %H:%M}"


class Visitor(models.Model):
    """What we know of one `user_pseudo_id` across all its events."""

    user_pseudo_id = models.CharField(max_length=200, unique=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    event_count = models.PositiveIntegerField(default=0)
    # user properties, device, geo, traffic source, consent: as the sources report them
    traits = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["last_seen"], name="visitor_last_seen_idx")]

    def __str__(self) -> str:
        return self.user_pseudo_id
