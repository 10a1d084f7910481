#!/usr/bin/env bash
# One image, every role. Usage: entrypoint.sh ROLE [ARGS...]
#
#   web       gunicorn (deploy/gunicorn.conf.py): PORT, WEB_CONCURRENCY, GUNICORN_THREADS, ...
#   worker    celery worker: CELERY_WORKER_CONCURRENCY (2), CELERY_WORKER_QUEUES (celery),
#             CELERY_WORKER_MAX_TASKS_PER_CHILD (1000), CELERY_METRICS_PORT (metrics, off)
#   beat      celery beat; its schedule file is CELERY_BEAT_SCHEDULE (var/run/celerybeat-schedule)
#   migrate   manage.py migrate_locked --noinput: a PostgreSQL advisory lock lets one replica
#             migrate at a time (MIGRATE_LOCK_TIMEOUT, 600 s); a plain migrate on SQLite
#   check     manage.py check --deploy --fail-level WARNING (no database needed)
#   manage    manage.py ARGS... (e.g. `manage backup`, `manage ensure_admin`)
#
# web, worker, beat, migrate and manage first wait for the database: DB_WAIT_TIMEOUT seconds
# (60), one try a second. Each role `exec`s its process, so it receives the container's
# SIGTERM directly and shuts down gracefully. Python is the first `python` on PATH (the image's
# /opt/venv; deploy/prod_smoke.sh puts the project's .venv/bin first).
set -euo pipefail

APP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$APP_DIR"
export PYTHONUNBUFFERED=1

log() { printf '[entrypoint] %s\n' "$*" >&2; }

usage() {
  sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 64
}

wait_for_db() {
  python manage.py wait_for_db --timeout "${DB_WAIT_TIMEOUT:-60}" --interval 1
}

role="${1:-}"
[ -n "$role" ] || usage
shift

# prometheus_client's multiprocess mode is for gunicorn (the web role) and for a worker that
# serves metrics (CELERY_METRICS_PORT). Anywhere else an inherited PROMETHEUS_MULTIPROC_DIR would
# send every metric write to a directory that may not exist yet, and nothing scrapes those
# processes anyway.
metrics_dir="${PROMETHEUS_MULTIPROC_DIR-$APP_DIR/var/run/prometheus}"
unset PROMETHEUS_MULTIPROC_DIR

# An empty multiprocess directory (stale files of dead pids would count), then exported.
use_metrics_dir() {
  mkdir -p "$1"
  # Only prometheus_client's own files: never a recursive delete of a configured path.
  find "$1" -maxdepth 1 -type f -name '*.db' -delete
  export PROMETHEUS_MULTIPROC_DIR="$1"
}

case "$role" in
  web)
    wait_for_db
    # Several gunicorn workers, one /metrics: prometheus_client's multiprocess mode aggregates
    # every worker's samples. The directory must start empty (stale files of dead pids).
    # Set PROMETHEUS_MULTIPROC_DIR= (empty) to turn it off.
    if [ -n "$metrics_dir" ]; then
      use_metrics_dir "$metrics_dir"
    fi
    log "web: gunicorn on port ${PORT:-8000}"
    exec python -m gunicorn --config deploy/gunicorn.conf.py "$@" portfolio.wsgi:application
    ;;
  worker)
    wait_for_db
    # The node's main process serves the metrics that its prefork children write; a directory
    # of its own, so a web and a worker on one host never share files.
    if [ "${CELERY_METRICS_PORT:-0}" != 0 ] && [ -n "$metrics_dir" ]; then
      use_metrics_dir "$metrics_dir-worker"
      log "worker: metrics on port $CELERY_METRICS_PORT"
    fi
    # --without-mingle: no start-up round trip to every other worker (revoked-task sync, which
    # we do not use); --without-gossip: no event chatter on the broker. Remote control
    # (`celery inspect ping`, used by the health check) still works.
    log "worker: concurrency ${CELERY_WORKER_CONCURRENCY:-2}"
    exec python -m celery -A portfolio worker \
      --loglevel="${LOG_LEVEL:-INFO}" \
      --concurrency="${CELERY_WORKER_CONCURRENCY:-2}" \
      --queues="${CELERY_WORKER_QUEUES:-celery}" \
      --max-tasks-per-child="${CELERY_WORKER_MAX_TASKS_PER_CHILD:-1000}" \
      --without-mingle --without-gossip \
      "$@"
    ;;
  beat)
    wait_for_db
    schedule="${CELERY_BEAT_SCHEDULE:-$APP_DIR/var/run/celerybeat-schedule}"
    mkdir -p "$(dirname "$schedule")"
    # No --pidfile (celery's default in the foreground): a restarted container never finds a
    # stale pid file and refuses to start.
    log "beat: schedule file $schedule (run exactly one beat)"
    exec python -m celery -A portfolio beat \
      --loglevel="${LOG_LEVEL:-INFO}" --schedule="$schedule" "$@"
    ;;
  migrate)
    wait_for_db
    exec python manage.py migrate_locked --noinput \
      --lock-timeout "${MIGRATE_LOCK_TIMEOUT:-600}" "$@"
    ;;
  check)
    exec python manage.py check --deploy --fail-level "${CHECK_FAIL_LEVEL:-WARNING}" "$@"
    ;;
  manage)
    wait_for_db
    exec python manage.py "$@"
    ;;
  -h | --help | help)
    usage
    ;;
  *)
    log "unknown role: $role"
    usage
    ;;
esac
