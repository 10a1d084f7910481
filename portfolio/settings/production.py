"""Production: no insecure defaults. Refuses to start without the secrets it needs.

Selected by DJANGO_ENV=production (see __init__.py) or directly as
DJANGO_SETTINGS_MODULE=portfolio.settings.production.
"""

import os

from django.core.exceptions import ImproperlyConfigured

from ops.logging import logging_config

from .base import *  # noqa: F403
from .base import LOG_LEVEL, LOG_REQUESTS, env

REQUIRED = ("DJANGO_SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL")
_missing = [
    name for name in REQUIRED if not (os.environ.get(name) or os.environ.get(f"{name}_FILE"))
]
if _missing:
    raise ImproperlyConfigured(
        "Production settings need these environment variables (or NAME_FILE paths): "
        + ", ".join(_missing)
        + ". See .env.example."
    )

DJANGO_ENV = "production"
DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be at least 50 characters with 5 distinct ones; generate one with "
        "`python -c 'import secrets; print(secrets.token_urlsafe(64))'`."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")

# TLS terminates at the proxy in front of gunicorn; it tells us the scheme.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Probes and Prometheus scrape over plain HTTP inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
# nosniff, Referrer-Policy, X-Frame-Options and the CSP are set in base.py for every environment.
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Log collectors parse JSON lines; text stays available for a terminal.
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING = logging_config(fmt=LOG_FORMAT, level=LOG_LEVEL, requests=LOG_REQUESTS)
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default="production")
