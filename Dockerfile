# syntax=docker/dockerfile:1
# One image for every role: `docker run IMAGE web|worker|beat|migrate|check|manage ...`
# (deploy/entrypoint.sh). Runtime dependencies only (requirements/production.txt), static files
# collected at build time and served by whitenoise, runs as an unprivileged user.
#
# Python is pinned to a patch release on Debian bookworm, whose postgresql-client (15) must be
# at least the server's major version for pg_dump: compose.yaml runs postgres:15. Bump both
# deliberately (and prefer pinning by digest in your registry mirror).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- build: virtualenv with the pinned requirements, the app, its static files -----------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv
COPY requirements/base.txt requirements/production.txt /tmp/requirements/
RUN pip install --no-cache-dir -r /tmp/requirements/production.txt

WORKDIR /app
COPY . .

# collectstatic imports the production settings, which refuse to load without these. They are
# dummies that exist only for this one command: never ENV, never in the final image.
RUN DJANGO_ENV=production \
    DJANGO_SECRET_KEY=build-time-only-collectstatic-not-a-secret-0123456789abcdef \
    ALLOWED_HOSTS=build.invalid \
    DATABASE_URL=sqlite:////tmp/collectstatic-unused.sqlite3 \
    python manage.py collectstatic --noinput \
 && python -m compileall -q /app

# --- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="portfolio-personalization" \
      org.opencontainers.image.description="Portfolio personalization backend: web, worker, beat, migrate" \
      org.opencontainers.image.licenses="UNLICENSED"

# postgresql-client: pg_dump / pg_restore for `manage.py backup` and `restore`. Debian's
# security updates replace old package versions, so an exact pin would break rebuilds.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin app

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8000

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app

# Code and static files stay root-owned and read-only; the app user writes only under var/:
# run/ (beat schedule, gunicorn's metrics files), media/ (uploads), backups/.
RUN install -d -o app -g app -m 0750 /app/var/run /app/var/media /app/var/backups

# Numeric, so Kubernetes' runAsNonRoot can verify it. Mount volumes on var/media (shared by
# web and worker) and var/backups (compose.yaml does).
USER 10001:10001
EXPOSE 8000

# The web role's liveness. Worker and beat override or disable it (compose.yaml).
# --start-interval (probe every 2 s while starting) needs Docker Engine 25 or newer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --start-interval=2s --retries=3 \
  CMD ["python", "/app/deploy/healthcheck.py"]

ENTRYPOINT ["bash", "/app/deploy/entrypoint.sh"]
CMD ["web"]
