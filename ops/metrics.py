"""Application metrics exported at /metrics next to django-prometheus's own.

Every label takes values from a bounded set (route patterns, task names, known codes), so the
number of series stays fixed whatever clients send. docs/MONITORING.md lists them all.

Under gunicorn and prefork Celery, prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR)
keeps one file per process; a scrape adds them up. Gauges say how in `multiprocess_mode`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# --- HTTP -----------------------------------------------------------------------------------------
# Around the 200 ms p95 objective, finer below it, where the hot path lives.
LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
)
API_REQUESTS = Counter(
    "api_requests_total",
    "HTTP requests answered, by method, route pattern and status code.",
    ["method", "endpoint", "status"],
)
API_REQUEST_DURATION = Histogram(
    "api_request_duration_seconds",
    "Time from the first middleware to the response, by method and route pattern.",
    ["method", "endpoint"],
    buckets=LATENCY_BUCKETS,
)

# --- Database -------------------------------------------------------------------------------------
DB_QUERIES = Counter(
    "db_queries_total", "SQL statements executed through Django (web and workers)."
)
ACTIVE_DB_CONNECTIONS = Gauge(
    "active_db_connections",
    "Database connections this process holds open (summed over live processes).",
    multiprocess_mode="livesum",
)

# --- Cache ----------------------------------------------------------------------------------------
CACHE_HITS = Counter("cache_hits_total", "Cache reads that found their entry.", ["cache"])
CACHE_MISSES = Counter("cache_misses_total", "Cache reads that did not.", ["cache"])
CACHE_ERRORS = Counter(
    "cache_errors_total", "Cache operations that failed (the caller fell back).", ["cache"]
)

# --- Ingestion and segmentation -------------------------------------------------------------------
EVENTS_INGESTED = Counter("events_ingested_total", "Events stored, by source.", ["source"])
EVENTS_DUPLICATE = Counter("events_duplicate_total", "Events dropped as duplicates.", ["source"])
EVENTS_REJECTED = Counter(
    "events_rejected_total", "Events refused, by source and reason.", ["source", "reason"]
)
VISITORS_SEGMENTED = Counter(
    "visitors_segmented_total", "Visitor segmentations written, by segment.", ["segment"]
)
# Labelled by signal id: signals are admin rows, a few dozen, not visitor input.
SIGNAL_CONDITION_ERRORS = Counter(
    "p13n_signal_condition_errors_total",
    "Signal conditions skipped as broken, by signal id: once per scoring model a process builds "
    "while the signal's stored conditions break the schema, and once per event a condition "
    "raised on.",
    ["signal"],
)

# --- Celery (incremented in the worker process that ran the task) ---------------------------------
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
CELERY_TASKS = Counter(
    "celery_tasks_total",
    "Celery task executions that ended, by task name and state (succeeded, failed, retried).",
    ["task", "state"],
)
CELERY_TASK_DURATION = Histogram(
    "celery_task_duration_seconds",
    "Celery task run time in the worker, by task name.",
    ["task"],
    buckets=TASK_BUCKETS,
)

# --- LLM providers (incremented by the insights code) ---------------------------------------------
LLM_REQUESTS = Counter(
    "llm_requests_total", "LLM provider calls, by provider and outcome.", ["provider", "status"]
)
LLM_REQUEST_DURATION = Histogram(
    "llm_request_duration_seconds", "LLM provider call latency.", ["provider"]
)
LLM_TOKENS = Counter(
    "llm_tokens_total",
    "LLM tokens used, by provider and kind (prompt/completion).",
    ["provider", "kind"],
)

# --- events_rejected_total reasons ----------------------------------------------------------------
# The codes the collectors write into RejectedEvent.reasons (GA4's validation codes, the export
# importer's), lower-cased, plus the JSON API's refusals. Anything else counts as "other", so a
# new code can never add series unnoticed.
REJECTION_REASONS = frozenset(
    {
        # GA4 Measurement Protocol validation codes (analytics.measurement_protocol.Code)
        "value_invalid",
        "value_required",
        "name_invalid",
        "name_reserved",
        "value_out_of_bounds",
        "exceeded_max_entities",
        "name_duplicated",
        # GA4 export importer (analytics.ga4_export)
        "line_too_long",
        "not_utf8",
        "invalid_json",
        "not_object",
        "text_invalid",
        "user_pseudo_id_missing",
        "user_pseudo_id_invalid",
        "timestamp_invalid",
        "params_invalid",
        "params_too_large",
        # POST /api/events (nothing stored: the request is refused whole)
        "malformed_json",
        "too_large",
        "invalid",
    }
)


def rejection_reason(code: object) -> str:
    reason = str(code).lower()
    return reason if reason in REJECTION_REASONS else "other"


def events_rejected(*, source: str, reason: str, count: int = 1) -> None:
    if count > 0:
        EVENTS_REJECTED.labels(source, rejection_reason(reason)).inc(count)
