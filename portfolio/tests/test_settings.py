"""Settings are read in fresh processes: each environment must produce its own configuration."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
SERVICE_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "DJANGO_ENV",
    "DJANGO_SECRET_KEY",
    "ALLOWED_HOSTS",
    "DJANGO_SETTINGS_MODULE",
)
GOOD_SECRET = "k" * 30 + "-Zq9x_7YpL2mN4vB8cR1tW6eH3jA5sD0fG"


def run_python(code: str, **env_overrides: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    env["DJANGO_SETTINGS_MODULE"] = "portfolio.settings"
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def run_manage(*args: str, **env_overrides: str) -> subprocess.CompletedProcess[str]:
    return run_python(
        "import sys; from django.core.management import execute_from_command_line; "
        f"execute_from_command_line(['manage.py', *{list(args)!r}])",
        DJANGO_SETTINGS_MODULE="portfolio.settings",
        **env_overrides,
    )


DESCRIBE = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "cache": settings.CACHES["default"]["BACKEND"],
    "eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "debug": settings.DEBUG,
}))
"""


def test_settings__no_environment__embedded_defaults():
    result = run_python(DESCRIBE, DJANGO_SETTINGS_MODULE="portfolio.settings")

    assert result.returncode == 0, result.stderr
    described = json.loads(result.stdout)
    assert described["engine"] == "django.db.backends.sqlite3"
    assert described["db_name"].endswith("var/db.sqlite3")
    assert described["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert described["eager"] is True


def test_settings__service_urls__postgres_redis_and_a_real_broker():
    result = run_python(
        DESCRIBE,
        DJANGO_SETTINGS_MODULE="portfolio.settings",
        DATABASE_URL="postgres://app:secret@db.internal:5432/portfolio",
        REDIS_URL="redis://cache.internal:6379/0",
    )

    assert result.returncode == 0, result.stderr
    described = json.loads(result.stdout)
    assert described["engine"] == "django.db.backends.postgresql"
    assert described["db_name"] == "portfolio"
    assert described["cache"] == "django_redis.cache.RedisCache"
    assert described["eager"] is False


def test_settings__production_without_secret_key__refuses_to_start_naming_it():
    result = run_python(
        DESCRIBE,
        DJANGO_SETTINGS_MODULE="portfolio.settings",
        DJANGO_ENV="production",
        ALLOWED_HOSTS="example.com",
        DATABASE_URL="postgres://app@db/portfolio",
    )

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr
    assert "ALLOWED_HOSTS" not in result.stderr.split("ImproperlyConfigured")[-1]


def test_settings__production_nothing_set__names_every_missing_variable():
    result = run_python(DESCRIBE, DJANGO_SETTINGS_MODULE="portfolio.settings.production")

    assert result.returncode != 0
    message = result.stderr.split("ImproperlyConfigured")[-1]
    for name in ("DJANGO_SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL"):
        assert name in message


def test_settings__production_short_secret_key__refused():
    result = run_python(
        DESCRIBE,
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY="short",
        ALLOWED_HOSTS="example.com",
        DATABASE_URL="postgres://app@db/portfolio",
    )

    assert result.returncode != 0
    assert "at least 50 characters" in result.stderr


@pytest.mark.parametrize("value", ["0", "-1", "0.001", "1000"])
def test_settings__scoring_temperature_out_of_range__refused_at_start(value):
    result = run_python(DESCRIBE, SCORING_TEMPERATURE=value)

    assert result.returncode != 0
    assert "SCORING_TEMPERATURE must be a number from 0.01 to 100" in result.stderr


def test_settings__production_secret_from_file__accepted(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(GOOD_SECRET)

    result = run_python(
        DESCRIBE,
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY_FILE=str(secret_file),
        ALLOWED_HOSTS="example.com",
        DATABASE_URL="postgres://app@db/portfolio",
        REDIS_URL="redis://cache:6379/0",
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["debug"] is False


def test_check_deploy__production_configured__no_warnings():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY=GOOD_SECRET,
        ALLOWED_HOSTS="portfolio.example.com",
        DATABASE_URL="postgres://app@db/portfolio",
        REDIS_URL="redis://cache:6379/0",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


HEADERS = """
import json, django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="portfolio.example.com")
out = {}
for path in ("/no-such-page/", "/health"):
    response = client.get(path, secure=True)
    out[path] = {"status": response.status_code, **dict(response.headers)}
out["plain"] = {"status": client.get("/health/").status_code}
print(json.dumps(out))
"""


def test_production__real_responses__hsts_csp_and_browser_headers(tmp_path):
    result = run_python(
        HEADERS,
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY=GOOD_SECRET,
        ALLOWED_HOSTS="portfolio.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )

    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    # An HTML page that needs no collected static files: the 404 page.
    page, health = out["/no-such-page/"], out["/health"]
    assert (page["status"], health["status"]) == (404, 200)
    assert page["Content-Type"].startswith("text/html")
    assert page["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert "default-src 'self'" in page["Content-Security-Policy"]
    assert "'unsafe-inline'" not in page["Content-Security-Policy"]
    assert health["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    for headers in (page, health):
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert headers["X-Frame-Options"] == "DENY"
    assert out["plain"]["status"] == 301  # plain HTTP is redirected to HTTPS


def test_wsgi__gil_switch_interval__applied_in_web_processes_and_checked():
    show = "import sys, portfolio.wsgi; print(sys.getswitchinterval())"

    assert float(run_python(show).stdout) == 0.001
    assert float(run_python(show, GIL_SWITCH_INTERVAL_MS="5").stdout) == 0.005
    refused = run_python(show, GIL_SWITCH_INTERVAL_MS="0")
    assert refused.returncode != 0
    assert "GIL_SWITCH_INTERVAL_MS must be a positive number" in refused.stderr


def test_django_http_metrics__off_by_default__opt_in_adds_django_prometheus_middleware():
    show = (
        "import json, django; from django.conf import settings; django.setup(); "
        "print(json.dumps([m for m in settings.MIDDLEWARE if 'prometheus' in m]))"
    )

    assert json.loads(run_python(show).stdout) == []
    assert json.loads(run_python(show, DJANGO_HTTP_METRICS="true").stdout) == [
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    ]


def test_wsgi__loaded_objects_frozen__kept_out_of_full_collections():
    show = "import gc, portfolio.wsgi; print(gc.get_freeze_count(), len(gc.get_objects()))"

    frozen, tracked = map(int, run_python(show).stdout.split())

    assert frozen > 50_000  # the app as loaded
    assert tracked < frozen // 10  # what a full collection still walks
