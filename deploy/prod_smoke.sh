#!/usr/bin/env bash
# Production smoke test: the container entrypoint's roles, run directly on this machine with
# production settings against the local PostgreSQL and Redis. Proves what the Dockerfile and
# compose.yaml run, without a Docker engine:
#
#   migrate   two `entrypoint.sh migrate` replicas at once on an empty database both succeed
#             (the advisory lock serialises them)
#   check     `entrypoint.sh check` (check --deploy) is clean at WARNING level
#   static    collectstatic with the manifest storage, as the image build does
#   serve     beat, web and worker start; each PID is the exec'd process itself
#   ready     /health and /ready answer 200
#   ingest    POST /api/events answers 201
#   segment   the worker re-segments the visitor: GET /api/personalization shows RECRUITER
#   metrics   /metrics is Prometheus text and sums every gunicorn worker's counts
#   requeue   a worker stopped with a re-segmentation pending loses nothing: a new worker does it
#   drain     SIGTERM to web while a slow upload is in flight: the request completes (201)
#             and gunicorn exits 0
#   beat      beat's heartbeat task (due 60 s after start) runs through the broker and a worker
#   stop      worker and beat exit 0 on SIGTERM
#
# Needs: `make install` (.venv), psql, curl, redis-cli, PostgreSQL and Redis on 127.0.0.1.
# Scratch resources (dropped/flushed before and after): database SMOKE_DB (portfolio_smoke) via
# SMOKE_PG_ADMIN_URL, the cache on Redis SMOKE_REDIS_URL (redis://127.0.0.1:6379/7) and the
# broker apart from it on SMOKE_BROKER_URL (redis://127.0.0.1:6379/13), as compose and k8s keep
# them on two instances (docs/DEPLOYMENT.md). SMOKE_KEEP=1 keeps the
# database and the logs for inspection. Exit status 0 only if every check passed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
STARTED=$(date +%s)

PG_ADMIN_URL="${SMOKE_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
SMOKE_DB="${SMOKE_DB:-portfolio_smoke}"
SMOKE_REDIS_URL="${SMOKE_REDIS_URL:-redis://127.0.0.1:6379/7}"
SMOKE_BROKER_URL="${SMOKE_BROKER_URL:-redis://127.0.0.1:6379/13}"

RESULTS=()
FAILURES=0
PIDS=()
SCRATCH=""

say() { printf '\n== %s\n' "$*"; }
pass() { RESULTS+=("PASS  $*"); printf 'PASS  %s\n' "$*"; }
fail() { RESULTS+=("FAIL  $*"); printf 'FAIL  %s\n' "$*"; FAILURES=$((FAILURES + 1)); }
# A failure after which the remaining checks mean nothing.
fatal() { fail "$*"; exit 1; }

summary() {
  local rc=$? elapsed=$(($(date +%s) - STARTED))
  trap - EXIT INT TERM
  # Stop whatever is still running: TERM to each role's process group, then KILL.
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null; done
  for _ in $(seq 1 50); do
    local alive=""
    for pid in "${PIDS[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null; done
  if [ "$FAILURES" -gt 0 ] && [ -n "$SCRATCH" ]; then
    for log in "$SCRATCH"/*.log; do
      [ -f "$log" ] || continue
      printf '\n--- last lines of %s\n' "$(basename "$log")"
      tail -n 25 "$log"
    done
  fi
  if [ "${SMOKE_KEEP:-0}" != 1 ]; then
    psql "$PG_ADMIN_URL" -qtAc "DROP DATABASE IF EXISTS \"$SMOKE_DB\" WITH (FORCE)" >/dev/null 2>&1
    redis-cli -u "$SMOKE_REDIS_URL" flushdb >/dev/null 2>&1
    redis-cli -u "$SMOKE_BROKER_URL" flushdb >/dev/null 2>&1
    [ -n "$SCRATCH" ] && rm -rf "$SCRATCH"
  else
    printf '\nSMOKE_KEEP=1: kept database %s and %s\n' "$SMOKE_DB" "$SCRATCH"
  fi
  printf '\n===== prod smoke summary (%ss) =====\n' "$elapsed"
  printf '%s\n' "${RESULTS[@]}"
  if [ "$FAILURES" -eq 0 ] && [ "$rc" -eq 0 ]; then
    printf 'PROD SMOKE: PASS (%d checks)\n' "${#RESULTS[@]}"
    exit 0
  fi
  printf 'PROD SMOKE: FAIL (%d failed)\n' "$FAILURES"
  exit 1
}
trap summary EXIT
trap 'fail "interrupted"; exit 1' INT TERM

# --- preflight -------------------------------------------------------------------------------
[ -x .venv/bin/python ] || fatal "no .venv: run \`make install\` first"
export PATH="$ROOT/.venv/bin:$PATH"
for tool in psql curl redis-cli setsid; do
  command -v "$tool" >/dev/null || fatal "$tool not found"
done
psql "$PG_ADMIN_URL" -qtAc "SELECT 1" >/dev/null || fatal "PostgreSQL unreachable at $PG_ADMIN_URL"
redis-cli -u "$SMOKE_REDIS_URL" ping >/dev/null || fatal "Redis unreachable at $SMOKE_REDIS_URL"

SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/prod-smoke.XXXXXX")"
PORT="$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"

# --- production environment: nothing inherited decides the outcome -----------------------------
unset DJANGO_SETTINGS_MODULE DJANGO_DEBUG CELERY_TASK_ALWAYS_EAGER PROMETHEUS_MULTIPROC_DIR
export DJANGO_ENV=production
DJANGO_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(48))')"  # 64 chars
export DJANGO_SECRET_KEY
export ALLOWED_HOSTS=127.0.0.1,localhost
export SECURE_SSL_REDIRECT=false  # plain http here; `check` below runs with the default (true)
export DATABASE_URL="${PG_ADMIN_URL%/*}/$SMOKE_DB"
export REDIS_URL="$SMOKE_REDIS_URL"
export CELERY_BROKER_URL="$SMOKE_BROKER_URL" CELERY_RESULT_BACKEND="$SMOKE_BROKER_URL"
export CELERY_TASK_ALWAYS_EAGER=false
export CACHE_KEY_PREFIX=smoke
export STATIC_ROOT="$SCRATCH/static" MEDIA_ROOT="$SCRATCH/media"
export CELERY_BEAT_SCHEDULE="$SCRATCH/run/celerybeat-schedule"
export PORT WEB_CONCURRENCY=2 GUNICORN_THREADS=4 GUNICORN_ACCESS_LOG=json
export RESEGMENT_DEBOUNCE_SECONDS="${SMOKE_RESEGMENT_DEBOUNCE_SECONDS:-3}"
export DB_WAIT_TIMEOUT=30 LOG_LEVEL=INFO

psql "$PG_ADMIN_URL" -v ON_ERROR_STOP=1 -qtA \
  -c "DROP DATABASE IF EXISTS \"$SMOKE_DB\" WITH (FORCE)" \
  -c "CREATE DATABASE \"$SMOKE_DB\"" >/dev/null || fatal "could not create database $SMOKE_DB"
redis-cli -u "$SMOKE_REDIS_URL" flushdb >/dev/null
redis-cli -u "$SMOKE_BROKER_URL" flushdb >/dev/null

# --- helpers ----------------------------------------------------------------------------------
# start NAME ROLE [ARGS...]: the role in its own session (so cleanup can reach its children);
# $! is the entrypoint's PID, which `exec` turns into the role's process.
start() {
  local name=$1
  shift
  setsid bash deploy/entrypoint.sh "$@" >"$SCRATCH/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

# http METHOD PATH [curl args...]: prints the status code, body in $SCRATCH/body
http() {
  local method=$1 path=$2
  shift 2
  curl -sS -o "$SCRATCH/body" -w '%{http_code}' --max-time 15 -X "$method" "$@" "$BASE$path" \
    2>>"$SCRATCH/curl.log" || true
}

# wait_until SECONDS COMMAND...: retry every 0.5 s
wait_until() {
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@"; do
    [ "$(date +%s)" -ge "$deadline" ] && return 1
    sleep 0.5
  done
}

# stop_and_wait PID SECONDS: SIGTERM the process itself (as Docker and Kubernetes do to PID 1);
# STOP_RC is its exit status, or "timeout". (Not echoed: `wait` needs this shell, not a subshell.)
stop_and_wait() {
  local pid=$1
  STOP_RC=0
  kill -TERM "$pid" 2>/dev/null
  if ! wait_until "$2" eval "! kill -0 $pid 2>/dev/null"; then
    STOP_RC=timeout
    return
  fi
  wait "$pid" 2>/dev/null || STOP_RC=$?
}

is_exec_of() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q -- "$2"; }

segmented_as() {  # user_id segment: true once the worker has segmented the visitor
  [ "$(http GET "/api/personalization?user_id=$1")" = 200 ] || return 1
  python - "$SCRATCH/body" "$2" <<'PY'
import json, sys
body = json.load(open(sys.argv[1]))
sys.exit(0 if body.get("segment") == sys.argv[2] and body.get("segmented_at") else 1)
PY
}

events_body() {  # user_id count: a batch of RECRUITER events
  python - "$1" "$2" "${3:-0}" <<'PY'
import json, sys, time
uid, count, pad = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
now = int(time.time())
events = []
for i in range(count):
    if i % 2:
        event = {"event_name": "contact_intent", "event_params": {"contact_type": "linkedin"}}
    else:
        event = {"event_name": "download_resume", "event_params": {"file": "resume.pdf"}}
    if pad:
        event["event_params"]["note"] = "x" * pad
    event.update(user_pseudo_id=uid, event_timestamp=now - count + i, event_id=f"{uid}-{i}")
    events.append(event)
print(json.dumps({"events": events}))
PY
}

# --- migrate: two replicas at once --------------------------------------------------------------
say "migrate: two replicas at once on an empty database"
bash deploy/entrypoint.sh migrate >"$SCRATCH/migrate-a.log" 2>&1 &
MIGRATE_A=$!
bash deploy/entrypoint.sh migrate >"$SCRATCH/migrate-b.log" 2>&1 &
MIGRATE_B=$!
rc_a=0 rc_b=0
wait "$MIGRATE_A" || rc_a=$?
wait "$MIGRATE_B" || rc_b=$?
if [ "$rc_a" != 0 ] || [ "$rc_b" != 0 ]; then
  fatal "migrate: exit statuses $rc_a and $rc_b"
fi
applied=$(cat "$SCRATCH"/migrate-?.log | grep -c "Applying .*OK")
if grep -q "waiting for its lock" "$SCRATCH"/migrate-?.log; then
  pass "migrate: 2 concurrent replicas exited 0; one waited on the advisory lock; $applied migrations applied once"
else
  pass "migrate: 2 concurrent replicas exited 0, $applied migrations applied once (they did not overlap this run, so the lock wait was not exercised)"
fi

# --- beat first: its heartbeat is due 60 s after it starts; the other checks run meanwhile ---
say "start beat"
start beat beat
BEAT_PID=$LAST_PID
BEAT_STARTED=$(date +%s)

# --- check ------------------------------------------------------------------------------------
say "check --deploy (production settings, HTTPS redirect on)"
if SECURE_SSL_REDIRECT=true bash deploy/entrypoint.sh check >"$SCRATCH/check.log" 2>&1; then
  pass "check: manage.py check --deploy clean at WARNING level"
else
  fail "check: check --deploy reported problems (see check.log)"
  cat "$SCRATCH/check.log"
fi

# --- static files, as the image build does -----------------------------------------------------
say "collectstatic (manifest storage)"
if python manage.py collectstatic --noinput >"$SCRATCH/collectstatic.log" 2>&1 \
  && [ -f "$STATIC_ROOT/staticfiles.json" ]; then
  pass "static: collectstatic wrote $(find "$STATIC_ROOT" -type f | wc -l) files and the manifest"
else
  fail "static: collectstatic failed"
fi

# --- serve --------------------------------------------------------------------------------------
say "start web and worker"
# The web role's prometheus multiprocess directory, here in scratch (the image: var/run/).
PROMETHEUS_MULTIPROC_DIR="$SCRATCH/run/prometheus" start web web
WEB_PID=$LAST_PID
start worker worker --hostname "smoke-a@%h"
WORKER_PID=$LAST_PID
health_ok() { [ "$(http GET /health)" = 200 ]; }
wait_until 60 health_ok || fatal "web: /health never answered 200"
worker_ready() { grep -q "smoke-a@.* ready" "$SCRATCH/worker.log"; }
wait_until 60 worker_ready || fatal "worker: never became ready"
if is_exec_of "$WEB_PID" gunicorn && is_exec_of "$WORKER_PID" "celery -A portfolio worker" \
  && is_exec_of "$BEAT_PID" "celery -A portfolio beat"; then
  pass "serve: web, worker, beat up; each entrypoint PID is its exec'd gunicorn/celery process"
else
  fail "serve: an entrypoint PID is not the role's process (no exec?)"
fi

ready_ok() { [ "$(http GET /ready)" = 200 ]; }
if wait_until 20 ready_ok; then
  pass "ready: /health 200, /ready 200 $(tr -d '\n' <"$SCRATCH/body")"
else
  fail "ready: /ready answered $(http GET /ready): $(cat "$SCRATCH/body")"
fi

# --- ingest and segment -------------------------------------------------------------------------
say "events in, segment out"
VISITOR_A="smoke-recruiter-$$"
events_body "$VISITOR_A" 6 >"$SCRATCH/events-a.json"
code=$(http POST /api/events -H 'Content-Type: application/json' --data-binary "@$SCRATCH/events-a.json")
if [ "$code" = 201 ] && grep -q '"accepted":6' "$SCRATCH/body"; then
  pass "ingest: POST /api/events 201 $(cat "$SCRATCH/body")"
else
  fatal "ingest: POST /api/events answered $code: $(cat "$SCRATCH/body")"
fi
t0=$(date +%s)
if wait_until 60 segmented_as "$VISITOR_A" RECRUITER; then
  pass "segment: worker segmented $VISITOR_A as RECRUITER in $(($(date +%s) - t0)) s (debounce ${RESEGMENT_DEBOUNCE_SECONDS} s)"
else
  fail "segment: $VISITOR_A not RECRUITER after 60 s: $(cat "$SCRATCH/body")"
fi

# --- metrics ------------------------------------------------------------------------------------
say "metrics"
# Six scrapes on fresh connections land on either gunicorn worker: each must report the sum.
ingested=""
for _ in 1 2 3 4 5 6; do
  code=$(http GET /metrics -D "$SCRATCH/metrics.headers")
  [ "$code" = 200 ] || break
  value=$(grep -E '^events_ingested_total\{source="api"\}' "$SCRATCH/body" | awk '{print $2}')
  ingested="$ingested ${value%.0}"
done
pids=$(find "$SCRATCH/run/prometheus" -name 'counter_*.db' | wc -l)
if [ "$code" = 200 ] && grep -qi '^content-type: text/plain' "$SCRATCH/metrics.headers" \
  && grep -q '^# TYPE api_requests_total counter' "$SCRATCH/body" \
  && [ "$ingested" = " 6 6 6 6 6 6" ]; then
  pass "metrics: /metrics 200 Prometheus text; events_ingested_total{source=\"api\"} = 6 on 6 scrapes (multiprocess files from $pids processes)"
else
  fail "metrics: /metrics answered $code; events_ingested_total{source=api} over 6 scrapes:$ingested (want 6 each)"
fi

# --- requeue: a worker stopped with work pending loses nothing -----------------------------------
say "worker restart with a re-segmentation pending"
VISITOR_B="smoke-restart-$$"
events_body "$VISITOR_B" 6 >"$SCRATCH/events-b.json"
code=$(http POST /api/events -H 'Content-Type: application/json' --data-binary "@$SCRATCH/events-b.json")
[ "$code" = 201 ] || fail "requeue: POST for $VISITOR_B answered $code"
sleep 0.5  # the task (countdown ${RESEGMENT_DEBOUNCE_SECONDS} s) reaches worker A as a reserved ETA task
stop_and_wait "$WORKER_PID" 60
if [ "$STOP_RC" = 0 ]; then
  pass "worker: SIGTERM -> warm shutdown, exit 0"
else
  fail "worker: SIGTERM -> exit status $STOP_RC"
fi
# Which path did the task take? Task ids that worker A received but did not finish.
handed_back() {
  local id
  grep -oE 'resegment_visitors?\[[0-9a-f-]+\] received' "$SCRATCH/worker.log" \
    | grep -o '[0-9a-f-]\{36\}' | while read -r id; do
    grep -q "$id\] succeeded" "$SCRATCH/worker.log" || echo "$id"
  done
}
start worker-b worker --hostname "smoke-b@%h"
WORKER_PID=$LAST_PID
if wait_until 60 segmented_as "$VISITOR_B" RECRUITER; then
  pending=$(handed_back | head -1)
  if [ -n "$pending" ] && grep -q "$pending\] succeeded" "$SCRATCH/worker-b.log"; then
    how="worker A had reserved task $pending, gave it back at shutdown, worker B ran it"
  elif [ "$(grep -c 'resegment_visitor.*succeeded' "$SCRATCH/worker.log")" -ge 2 ]; then
    how="worker A ran it before exiting; the hand-back path was not exercised this run"
  else
    how="it was still on the broker when worker A stopped; the hand-back path was not exercised"
  fi
  pass "requeue: $VISITOR_B segmented after the worker restart ($how)"
else
  fail "requeue: $VISITOR_B not segmented 60 s after the restart"
fi

# --- drain: SIGTERM with a request in flight -----------------------------------------------------
say "web: SIGTERM while a slow upload is in flight"
VISITOR_C="smoke-inflight-$$"
events_body "$VISITOR_C" 500 300 >"$SCRATCH/events-c.json"
size=$(wc -c <"$SCRATCH/events-c.json")
# ~4 s to upload: the request is inside a gunicorn worker thread, reading its body, at SIGTERM.
rate=$((size / 4))
curl -sS -o "$SCRATCH/inflight.body" -w '%{http_code}' --max-time 60 --limit-rate "$rate" \
  -H 'Content-Type: application/json' -H 'Expect:' --data-binary "@$SCRATCH/events-c.json" \
  "$BASE/api/events" >"$SCRATCH/inflight.code" 2>>"$SCRATCH/curl.log" &
CURL_PID=$!
sleep 1.5
if ! kill -0 "$CURL_PID" 2>/dev/null; then
  fail "drain: the upload finished before SIGTERM; nothing was in flight to prove"
fi
SIGTERM_AT=$(date +%s.%N)
stop_and_wait "$WEB_PID" 40
wait "$CURL_PID" 2>/dev/null
CURL_DONE_AT=$(date +%s.%N)
code=$(cat "$SCRATCH/inflight.code")
later=$(python -c "print(f'{$CURL_DONE_AT - $SIGTERM_AT:.1f}')")
if [ "$code" = 201 ] && grep -q '"accepted":500' "$SCRATCH/inflight.body"; then
  pass "drain: in-flight upload (${size} bytes) got 201 accepted=500, ${later} s after SIGTERM"
else
  fail "drain: in-flight upload got '$code' $(cat "$SCRATCH/inflight.body" 2>/dev/null)"
fi
if [ "$STOP_RC" = 0 ]; then
  pass "web: SIGTERM -> gunicorn drained and exited 0"
else
  fail "web: SIGTERM -> exit status $STOP_RC"
fi
if [ "$(http GET /health)" = 000 ]; then
  pass "web: port closed after exit"
else
  fail "web: something still answers on $BASE"
fi

# --- beat ---------------------------------------------------------------------------------------
say "beat heartbeat (every 60 s) through broker and worker"
heartbeat() { [ "$(redis-cli -u "$SMOKE_REDIS_URL" exists smoke:1:ops:beat:last_heartbeat)" = 1 ]; }
if wait_until $((BEAT_STARTED + 90 - $(date +%s))) heartbeat; then
  pass "beat: ops.tasks.beat_heartbeat sent by beat, run by a worker, $(($(date +%s) - BEAT_STARTED)) s after beat started"
else
  fail "beat: no heartbeat 90 s after beat started"
fi

say "stop worker and beat"
stop_and_wait "$WORKER_PID" 60
if [ "$STOP_RC" = 0 ]; then
  pass "worker: SIGTERM -> exit 0"
else
  fail "worker: SIGTERM -> exit status $STOP_RC"
fi
stop_and_wait "$BEAT_PID" 20
if [ "$STOP_RC" = 0 ]; then
  pass "beat: SIGTERM -> exit 0"
else
  fail "beat: SIGTERM -> exit status $STOP_RC"
fi
