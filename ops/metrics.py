"""Application metrics exported at /metrics next to django-prometheus's own."""

from prometheus_client import Counter, Histogram

CACHE_HITS = Counter("cache_hits_total", "Cache reads that found their entry.", ["cache"])
CACHE_MISSES = Counter("cache_misses_total", "Cache reads that did not.", ["cache"])
CACHE_ERRORS = Counter(
    "cache_errors_total", "Cache operations that failed (the caller fell back).", ["cache"]
)
EVENTS_INGESTED = Counter("events_ingested_total", "Events stored, by source.", ["source"])
EVENTS_DUPLICATE = Counter("events_duplicate_total", "Events dropped as duplicates.", ["source"])
VISITORS_SEGMENTED = Counter(
    "visitors_segmented_total", "Visitor segmentations written, by segment.", ["segment"]
)
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
