"""Settings for every environment, read from the environment through django-environ.

With nothing set, the embedded defaults apply (SQLite under var/, local-memory cache, Celery
eager) so `make run` needs no services. Set DATABASE_URL / REDIS_URL and the same code runs on
PostgreSQL and Redis. Production strictness lives in `production.py`.
"""

import contextlib
import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from ops.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

# FileAwareEnv also reads `NAME_FILE` (Docker/Kubernetes secrets) for every variable.
env = environ.FileAwareEnv()
# A local .env is read for convenience; real environment variables always win.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DJANGO_ENV = env.str("DJANGO_ENV", default="development")

DEBUG = env.bool("DJANGO_DEBUG", default=DJANGO_ENV == "development")
# Development-only key; production.py refuses to start without DJANGO_SECRET_KEY.
SECRET_KEY = env.str(
    "DJANGO_SECRET_KEY", default="dev-only-insecure-key-do-not-use-in-production-0123456789"
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "rest_framework_simplejwt",
    "corsheaders",
    "analytics",
    "personalization",
    "ops",
]

# django-prometheus's per-request `django_http_*` series repeat what api_requests_total and
# api_request_duration_seconds record (ops/middleware.py) and cost about a tenth of a cached
# request's CPU in multiprocess mode (a dozen locked updates), so they are opt-in.
DJANGO_HTTP_METRICS = env.bool("DJANGO_HTTP_METRICS", default=False)

MIDDLEWARE = [
    # First: times the whole stack, and gives every request its id.
    "ops.middleware.RequestObservabilityMiddleware",
    # Before anything calls request.get_host(): probes by pod IP must not get 400.
    "ops.middleware.ProbeHostMiddleware",
    *(["django_prometheus.middleware.PrometheusBeforeMiddleware"] if DJANGO_HTTP_METRICS else []),
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portfolio.csp.ContentSecurityPolicyMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    # Inside the CSP middleware (which then sees JSON), outside everything that may answer
    # an /api/ request with an HTML page or an empty body (resolver 404, CSRF, redirects).
    "ops.middleware.ApiJsonErrorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Django's CommonMiddleware, with no slash redirects for bodies under /api/.
    "ops.middleware.ApiCommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Django's MessageMiddleware, building the message store only when a view uses it.
    "ops.middleware.LazyMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    *(["django_prometheus.middleware.PrometheusAfterMiddleware"] if DJANGO_HTTP_METRICS else []),
]

# Overridable so `make bench` can add its baseline views beside the real routes.
ROOT_URLCONF = env.str("DJANGO_ROOT_URLCONF", default="portfolio.urls")
WSGI_APPLICATION = "portfolio.wsgi.application"
ASGI_APPLICATION = "portfolio.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Fail fast instead of hanging a request when PostgreSQL is unreachable.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=5)
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (also backs rate limits) -----------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="portfolio"),
            "TIMEOUT": env.int("CACHE_DEFAULT_TIMEOUT", default=300),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": env.float("REDIS_SOCKET_CONNECT_TIMEOUT", default=1.0),
                "SOCKET_TIMEOUT": env.float("REDIS_SOCKET_TIMEOUT", default=1.0),
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "portfolio-default",
            "TIMEOUT": env.int("CACHE_DEFAULT_TIMEOUT", default=300),
        }
    }

# --- Rate limits (django-ratelimit) ----------------------------------------------------------
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
RATELIMIT_USE_CACHE = "default"
# A cache outage must not stop ingestion: requests pass unlimited while the cache is down.
RATELIMIT_FAIL_OPEN = True
RATELIMIT_EVENTS = env.str("RATELIMIT_EVENTS", default="100/m")
# Password guessing: POST /api/admin/login attempts per client IP.
RATELIMIT_ADMIN_LOGIN = env.str("RATELIMIT_ADMIN_LOGIN", default="5/m")
# Proxies whose X-Forwarded-For we believe; empty means REMOTE_ADDR is the client.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
# The local-memory cache is per process: fine for `make run`, not for several workers.
SILENCED_SYSTEM_CHECKS = [] if REDIS_URL else ["django_ratelimit.E003", "django_ratelimit.W001"]

# --- Celery ------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL or None)
# No broker configured: run tasks in-process so the zero-setup run still does the work.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=2.0)

# --- Event collection -------------------------------------------------------------------------
EVENTS_MAX_BATCH = env.int("EVENTS_MAX_BATCH", default=500)
EVENTS_MAX_BODY_BYTES = env.int("EVENTS_MAX_BODY_BYTES", default=1024 * 1024)
EVENTS_MAX_FUTURE_HOURS = env.int("EVENTS_MAX_FUTURE_HOURS", default=72)
# GA4 rejects Measurement Protocol bodies of 130 kB or more; so do we.
MP_MAX_BODY_BYTES = env.int("MP_MAX_BODY_BYTES", default=130_000)
GTAG_MAX_BODY_BYTES = env.int("GTAG_MAX_BODY_BYTES", default=130_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(EVENTS_MAX_BODY_BYTES, 2_621_440)
# Containers a JSON body may open inside each other (every JSON endpoint); deeper bodies are
# refused before parsing (portfolio/api/json_depth.py), so no recursive walk meets them.
JSON_MAX_DEPTH = env.int("JSON_MAX_DEPTH", default=32)
if not 1 <= JSON_MAX_DEPTH <= 200:
    raise ImproperlyConfigured("JSON_MAX_DEPTH must be between 1 and 200.")

# Consent (analytics/consent.py): `honour` keeps visitors who denied analytics storage or ad
# personalization out of profiling; `ignore` when consent is enforced before any tag loads.
CONSENT_MODE = env.str("CONSENT_MODE", default="honour")
if CONSENT_MODE not in {"honour", "ignore"}:
    raise ImproperlyConfigured("CONSENT_MODE must be `honour` or `ignore`.")

# Retention: events (by when they happened) and dead letters (by when they arrived) older
# than this many days are deleted every night at 03:00 UTC; 0 keeps them forever.
EVENT_RETENTION_DAYS = env.int("EVENT_RETENTION_DAYS", default=395)
REJECTED_RETENTION_DAYS = env.int("REJECTED_RETENTION_DAYS", default=30)

# --- GA4 Data API sync (off unless GA4_PROPERTY_ID is set) --------------------------------------
GA4_PROPERTY_ID = env.str("GA4_PROPERTY_ID", default="")
# Service-account JSON key file; GOOGLE_APPLICATION_CREDENTIALS is used when this is empty.
GA4_CREDENTIALS_FILE = env.str("GA4_CREDENTIALS_FILE", default="")
# Override the API host (a proxy, or a local server in tests), e.g. http://127.0.0.1:8085.
GA4_DATA_API_ENDPOINT = env.str("GA4_DATA_API_ENDPOINT", default="")
# GA4 keeps revising recent days; each sync re-pulls this many days up to yesterday.
GA4_SYNC_DAYS = env.int("GA4_SYNC_DAYS", default=3)
GA4_DATA_API_TIMEOUT = env.float("GA4_DATA_API_TIMEOUT", default=30.0)
# A GA4 export import whose heartbeat is older than this is taken for dead (its worker was
# killed) and re-queued by a sweep that runs every GA4_IMPORT_SWEEP_SECONDS.
GA4_IMPORT_STALE_SECONDS = env.int("GA4_IMPORT_STALE_SECONDS", default=180)
GA4_IMPORT_SWEEP_SECONDS = env.int("GA4_IMPORT_SWEEP_SECONDS", default=60)

# --- Segmentation and personalization ----------------------------------------------------------
# Softmax temperature: higher spreads the scores, lower sharpens the winner.
SCORING_TEMPERATURE = env.float("SCORING_TEMPERATURE", default=1.0)
if not 0.01 <= SCORING_TEMPERATURE <= 100:  # NaN fails both comparisons
    raise ImproperlyConfigured("SCORING_TEMPERATURE must be a number from 0.01 to 100.")
# Visitors with fewer events stay CASUAL whatever they did.
SCORING_MIN_EVENTS = env.int("SCORING_MIN_EVENTS", default=3)
# A visitor's re-segmentation waits this long after its first new event, to batch a burst.
RESEGMENT_DEBOUNCE_SECONDS = env.int("RESEGMENT_DEBOUNCE_SECONDS", default=10)
# Visitors whose re-segmentation was missed (broker down) are swept up this often, this many
# at a time.
RESEGMENT_SWEEP_MINUTES = env.int("RESEGMENT_SWEEP_MINUTES", default=10)
RESEGMENT_SWEEP_LIMIT = env.int("RESEGMENT_SWEEP_LIMIT", default=5000)
# Share of visitors kept on the default experience to measure what personalization buys.
PERSONALIZATION_HOLDOUT_PERCENT = env.float("PERSONALIZATION_HOLDOUT_PERCENT", default=10.0)
PERSONALIZATION_HOLDOUT_SALT = env.str("PERSONALIZATION_HOLDOUT_SALT", default="holdout-v1")
PERSONALIZATION_CACHE_TIMEOUT = env.int("PERSONALIZATION_CACHE_TIMEOUT", default=3600)
# Answers each web process keeps in memory in front of Redis (0: none). About 1.5 KB each.
PERSONALIZATION_LOCAL_CACHE_SIZE = env.int("PERSONALIZATION_LOCAL_CACHE_SIZE", default=10_000)
# The admin events search's `count` may lag new events by this much (0: exact every time).
ADMIN_EVENTS_COUNT_CACHE_SECONDS = env.int("ADMIN_EVENTS_COUNT_CACHE_SECONDS", default=10)
# Web processes (portfolio.wsgi): how long a thread may hold the GIL while another waits for it.
GIL_SWITCH_INTERVAL_MS = env.float("GIL_SWITCH_INTERVAL_MS", default=1.0)
if not GIL_SWITCH_INTERVAL_MS > 0:
    raise ImproperlyConfigured("GIL_SWITCH_INTERVAL_MS must be a positive number of milliseconds.")
# How long a process reuses an admin API token's user and permission check (0: every request).
ADMIN_API_USER_CACHE_SECONDS = env.int("ADMIN_API_USER_CACHE_SECONDS", default=10)
PERSONALIZATION_FEATURED_PROJECTS = env.int("PERSONALIZATION_FEATURED_PROJECTS", default=4)
PERSONALIZATION_HIGHLIGHT_SKILLS = env.int("PERSONALIZATION_HIGHLIGHT_SKILLS", default=6)

# --- LLM insights ---------------------------------------------------------------------------------
# Providers tried in order; one without its key (or base URL) is skipped. "offline" writes the
# insight from the statistics alone, needs nothing, and is always the last resort.
LLM_PROVIDERS = env.list(
    "LLM_PROVIDERS", default=["gemini", "deepseek", "openai_compatible", "offline"]
)
GEMINI_API_KEY = env.str("GEMINI_API_KEY", default="")
GEMINI_MODEL = env.str("GEMINI_MODEL", default="gemini-2.5-flash")
# Empty: Google's endpoint. google-genai defaults to v1; responseSchema needs v1beta.
GEMINI_BASE_URL = env.str("GEMINI_BASE_URL", default="")
GEMINI_API_VERSION = env.str("GEMINI_API_VERSION", default="v1beta")
DEEPSEEK_API_KEY = env.str("DEEPSEEK_API_KEY", default="")
DEEPSEEK_MODEL = env.str("DEEPSEEK_MODEL", default="deepseek-v4-flash")
DEEPSEEK_BASE_URL = env.str("DEEPSEEK_BASE_URL", default="https://api.deepseek.com")
# Any OpenAI-compatible server (Ollama: http://127.0.0.1:11434/v1); skipped while empty.
OPENAI_COMPATIBLE_BASE_URL = env.str("OPENAI_COMPATIBLE_BASE_URL", default="")
OPENAI_COMPATIBLE_API_KEY = env.str("OPENAI_COMPATIBLE_API_KEY", default="")
OPENAI_COMPATIBLE_MODEL = env.str("OPENAI_COMPATIBLE_MODEL", default="llama3.1")
LLM_TIMEOUT_SECONDS = env.float("LLM_TIMEOUT_SECONDS", default=60.0)
LLM_TEMPERATURE = env.float("LLM_TEMPERATURE", default=0.2)
LLM_MAX_OUTPUT_TOKENS = env.int("LLM_MAX_OUTPUT_TOKENS", default=4096)
# Calls per provider on transport failures (429, 5xx, timeouts) before the next provider.
LLM_MAX_ATTEMPTS = env.int("LLM_MAX_ATTEMPTS", default=3)
LLM_BACKOFF_BASE_SECONDS = env.float("LLM_BACKOFF_BASE_SECONDS", default=2.0)
# A server asking for a longer wait than this moves us to the next provider instead.
LLM_BACKOFF_MAX_SECONDS = env.float("LLM_BACKOFF_MAX_SECONDS", default=60.0)
# All retry sleeps of one analysis together; keeps a run inside the task's time limit.
LLM_MAX_TOTAL_SLEEP_SECONDS = env.float("LLM_MAX_TOTAL_SLEEP_SECONDS", default=120.0)
# Consecutive failed analyses that open a provider's circuit, and how long it stays open.
LLM_BREAKER_FAILURES = env.int("LLM_BREAKER_FAILURES", default=3)
LLM_BREAKER_COOLDOWN_SECONDS = env.int("LLM_BREAKER_COOLDOWN_SECONDS", default=900)
# Tokens (prompt + completion) per UTC day across remote providers; 0: no limit.
LLM_DAILY_TOKEN_BUDGET = env.int("LLM_DAILY_TOKEN_BUDGET", default=200_000)
# Suggested rules stay drafts for an admin to approve unless this is on.
LLM_AUTO_ACTIVATE = env.bool("LLM_AUTO_ACTIVATE", default=False)
# Days of events each scheduled analysis reads, and when it runs ("HH:MM" UTC; "off": never).
LLM_INSIGHTS_DAYS = env.int("LLM_INSIGHTS_DAYS", default=7)
LLM_INSIGHTS_SCHEDULE = env.str("LLM_INSIGHTS_SCHEDULE", default="04:45")
# Top-N of every list in the analysis input, so its size does not grow with traffic.
LLM_INSIGHTS_TOP_N = env.int("LLM_INSIGHTS_TOP_N", default=10)
# Second opinion: visitors active in the period whose segmentation confidence is below this
# are shown to the LLM (no ids), its answer stored beside theirs; 0 turns it off.
LLM_SECOND_OPINION_BELOW = env.float("LLM_SECOND_OPINION_BELOW", default=0.0)
LLM_SECOND_OPINION_MAX_VISITORS = env.int("LLM_SECOND_OPINION_MAX_VISITORS", default=20)

# --- REST framework and OpenAPI ----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["portfolio.api.json_depth.DepthLimitedJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "portfolio.api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
# Admin API tokens: short-lived access tokens only (no refresh); log in again when one expires.
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_TOKEN_MINUTES", default=30)),
    "SIGNING_KEY": env.str("JWT_SIGNING_KEY", default=SECRET_KEY),
    "ALGORITHM": "HS256",
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": True,
    # Tokens carry a digest of the password hash they were issued under: a password change
    # (or deactivation) ends them at once (portfolio/api/admin_auth.py).
    "CHECK_REVOKE_TOKEN": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Portfolio personalization API",
    "DESCRIPTION": "Visitor events in, audience segment and what to feature out.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"RuleStatusEnum": "personalization.models.RuleStatus"},
    # Request bodies get their own components, so required text fields say minLength 1.
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portfolio.api.schema_hooks.allow_empty_optional_query_params",
        "portfolio.api.schema_hooks.forbid_nul_in_text",
        "portfolio.api.schema_hooks.require_bodies",
        "portfolio.api.schema_hooks.add_metrics_endpoint",
        "portfolio.api.schema_hooks.add_json_value_component",
        # Segment codes and catalog entries, read from the database per request.
        "personalization.schema.enumerate_from_database",
    ],
}

# --- Browser security headers (every environment, so development shows what production does) --
# Content-Security-Policy (portfolio/csp.py): HTML pages load only this origin's files, with no
# inline script or style; other responses may not be rendered as pages or framed at all.
CSP_POLICY = env.str(
    "CSP_POLICY",
    default="default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'",
)
CSP_API_POLICY = env.str("CSP_API_POLICY", default="default-src 'none'; frame-ancestors 'none'")
# Send them as Content-Security-Policy-Report-Only instead (to trial a stricter policy).
CSP_REPORT_ONLY = env.bool("CSP_REPORT_ONLY", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- CORS: the portfolio's own origins ----------------------------------------------------------
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/(api|mp|g)/.*$"

# --- Auth, i18n, static -------------------------------------------------------------------------
# Argon2 for new and changed passwords; older hashes still verify and are upgraded on login.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=str(VAR_DIR / "static"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if DJANGO_ENV == "production"
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(VAR_DIR / "media"))
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
# The embedded SQLite file and static root live under var/; make sure it exists.
# On a read-only image the operator points STATIC_ROOT and DATABASE_URL elsewhere.
for _directory in (VAR_DIR, Path(STATIC_ROOT)):
    with contextlib.suppress(OSError):
        _directory.mkdir(parents=True, exist_ok=True)

# --- Backups (`manage.py backup` / `restore`, nightly at 02:15 UTC) ---------------------------
BACKUP_DIR = env.path("BACKUP_DIR", default=str(VAR_DIR / "backups"))
# Keys the visitor hashes of the erasure ledger (ErasureLedgerEntry + files, ops/erasure.py);
# SECRET_KEY when empty. Changing it stops older entries from matching: keep it stable.
ERASURE_LEDGER_KEY = env.str("ERASURE_LEDGER_KEY", default="")
BACKUP_RETENTION = env.int("BACKUP_RETENTION", default=7)
BACKUP_PREFIX = env.str("BACKUP_PREFIX", default="portfolio")
# Where pg_dump/pg_restore live when not on PATH (match the server's major version).
BACKUP_PG_BIN_DIR = env.str("BACKUP_PG_BIN_DIR", default="")
BACKUP_TIMEOUT = env.int("BACKUP_TIMEOUT", default=2400)
# S3-compatible upload is left to configuration: set these only with an uploader installed.
BACKUP_S3_BUCKET = env.str("BACKUP_S3_BUCKET", default="")
BACKUP_S3_ENDPOINT_URL = env.str("BACKUP_S3_ENDPOINT_URL", default="")
BACKUP_S3_PREFIX = env.str("BACKUP_S3_PREFIX", default="")

# --- Admin bootstrap (`manage.py ensure_admin`) -------------------------------------------------
ADMIN_USERNAME = env.str("ADMIN_USERNAME", default="admin")
ADMIN_PASSWORD = env.str("ADMIN_PASSWORD", default="")
ADMIN_EMAIL = env.str("ADMIN_EMAIL", default="admin@localhost")

# --- Observability: logs, metrics, Sentry (docs/MONITORING.md) ---------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# json: one object per line (production's default); text: readable (development's).
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
# One `http.request` line per request (about 30 µs each); false keeps only the 5xx ones.
LOG_REQUESTS = env.bool("LOG_REQUESTS", default=True)
LOGGING = logging_config(fmt=LOG_FORMAT, level=LOG_LEVEL, requests=LOG_REQUESTS)
# /metrics (and the Celery worker's port) only for these networks and/or this bearer token.
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])
for _cidr in METRICS_ALLOWED_IPS:
    ipaddress.ip_network(_cidr.strip(), strict=False)  # a typo fails at start, not per scrape
METRICS_BEARER_TOKEN = env.str("METRICS_BEARER_TOKEN", default="")
# Each Celery worker node serves its metrics here (0: off). Not read by Celery itself.
CELERY_METRICS_PORT = env.int("CELERY_METRICS_PORT", default=0)
CELERY_METRICS_ADDR = env.str("CELERY_METRICS_ADDR", default="0.0.0.0")  # noqa: S104  # nosec B104
SENTRY_DSN = env.str("SENTRY_DSN", default="")
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default=DJANGO_ENV)
SENTRY_RELEASE = env.str("SENTRY_RELEASE", default="")
SENTRY_TRACES_SAMPLE_RATE = env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.05)
# GET /api/personalization: the busiest and cheapest request; its traces are sampled apart.
SENTRY_TRACES_SAMPLE_RATE_HOT = env.float("SENTRY_TRACES_SAMPLE_RATE_HOT", default=0.001)
# Frame locals help debugging but hold requests (with their query strings) and visitor ids.
SENTRY_INCLUDE_LOCALS = env.bool("SENTRY_INCLUDE_LOCALS", default=False)
