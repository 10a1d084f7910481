#!/usr/bin/env bash
# Release on a compose host: pull, migrate, rolling restart, health gate.
#
#   IMAGE=ghcr.io/OWNER/REPO:sha-abc1234 bash deploy/deploy.sh
#
# Run it in the directory holding compose.yaml and .env (deploy.yml ships them there). Steps:
#   1. pull IMAGE (or, without IMAGE, build the image from this checkout)
#   2. PostgreSQL and Redis up and healthy
#   3. migrate, one-shot (`entrypoint.sh migrate`: advisory-locked). If it fails, nothing else
#      changes: the running release keeps serving. Migrations must therefore be backward
#      compatible with the release still running (expand now, contract in a later release).
#   4. web, then worker: new containers start beside the old ones; once every new one is healthy
#      the old ones get SIGTERM (web drains in-flight requests, workers finish their tasks and
#      hand reserved ones back) and are removed. If a new container never becomes healthy, the
#      new ones are removed instead and the old release keeps running: exit 1.
#      New web containers must also answer /ready (database, cache, broker) before the switch.
#   5. beat: stopped, then started (never two schedulers at once).
#   6. the proxy is started if it is not running.
# On success IMAGE is recorded in .env, so later plain `docker compose` commands keep this
# release. To roll back, run again with the previous IMAGE (printed at the start and the end).
#
# Environment: IMAGE, COMPOSE ("docker compose"), DOCKER (docker), HEALTH_TIMEOUT (180 s per
# service), READY_TRIES (15, 2 s apart), ENV_FILE (.env).
set -euo pipefail

COMPOSE="${COMPOSE:-docker compose}"
DOCKER="${DOCKER:-docker}"
HEALTH_TIMEOUT="${HEALTH_TIMEOUT:-180}"
READY_TRIES="${READY_TRIES:-15}"
ENV_FILE="${ENV_FILE:-.env}"

log() { printf '[deploy %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { log "FAILED: $*"; exit 1; }
# shellcheck disable=SC2086  # COMPOSE is a command and its arguments, split on purpose
compose() { $COMPOSE "$@"; }

[ -f compose.yaml ] || die "no compose.yaml here ($(pwd))"
[ -f "$ENV_FILE" ] || die "no $ENV_FILE here: copy .env.production.example and fill it in"

# --- 1. image ---------------------------------------------------------------------------------
previous="$(sed -n 's/^IMAGE=//p' "$ENV_FILE" | tail -n 1)"
log "previous image: ${previous:-<none recorded>}"
if [ -n "${IMAGE:-}" ]; then
  export IMAGE
  log "pulling $IMAGE"
  compose pull --quiet migrate web worker beat
else
  log "no IMAGE given: building from this checkout"
  compose build migrate
fi

# --- 2. services -------------------------------------------------------------------------------
log "postgres and redis"
compose up -d --wait postgres redis

# --- 3. migrate --------------------------------------------------------------------------------
log "migrate"
compose run --rm --no-deps migrate || die "migrate failed; the running release is untouched"

# --- 4. rolling restart, health-gated ----------------------------------------------------------
health_of() {
  $DOCKER inspect \
    --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1"
}

# wait_healthy ID...: every container healthy (or running, when it has no health check)
wait_healthy() {
  local deadline=$(($(date +%s) + HEALTH_TIMEOUT)) id state pending
  while :; do
    pending=""
    for id in "$@"; do
      state="$(health_of "$id" 2>/dev/null || echo missing)"
      case "$state" in
        healthy | running) ;;
        unhealthy | exited | dead | missing) log "container ${id:0:12} is $state"; return 1 ;;
        *) pending=1 ;;
      esac
    done
    [ -z "$pending" ] && return 0
    [ "$(date +%s)" -ge "$deadline" ] && { log "not healthy after ${HEALTH_TIMEOUT}s"; return 1; }
    sleep 2
  done
}

# ready ID...: /ready answers 200 in every container (database, cache and broker reachable)
ready() {
  local id ok
  for id in "$@"; do
    ok=""
    for _ in $(seq 1 "$READY_TRIES"); do
      if $DOCKER exec "$id" python deploy/healthcheck.py /ready; then ok=1; break; fi
      sleep 2
    done
    [ -n "$ok" ] || { log "container ${id:0:12}: /ready not 200"; return 1; }
  done
}

# roll SERVICE STOP_TIMEOUT [ready]: start as many new containers as run now (at least one)
# beside the old ones, wait until they are healthy (and, with `ready`, answer /ready), then stop
# and remove the old ones. On failure remove the new ones and exit 1: the old ones keep running.
roll() {
  local service=$1 stop_timeout=$2 gate=${3:-} old new id count
  mapfile -t old < <(compose ps -q "$service")
  count=${#old[@]}
  [ "$count" -gt 0 ] || count=1
  log "$service: starting $count new container(s) beside ${#old[@]} old"
  compose up -d --no-deps --no-recreate --scale "$service=$((${#old[@]} + count))" "$service"
  if [ "${#old[@]}" -eq 0 ]; then
    mapfile -t new < <(compose ps -q "$service")
  else
    mapfile -t new < <(compose ps -q "$service" | grep -v -x -F -f <(printf '%s\n' "${old[@]}"))
  fi
  [ "${#new[@]}" -gt 0 ] || die "$service: no new container started"
  if ! wait_healthy "${new[@]}" || { [ "$gate" = ready ] && ! ready "${new[@]}"; }; then
    for id in "${new[@]}"; do
      $DOCKER logs --tail 50 "$id" 2>&1 | sed "s/^/[${id:0:12}] /" || true
    done
    log "$service: removing the new container(s); the old release keeps serving"
    $DOCKER rm -f "${new[@]}" >/dev/null
    die "$service: new release unhealthy (previous image: ${previous:-none recorded})"
  fi
  if [ "${#old[@]}" -gt 0 ]; then
    log "$service: new container(s) healthy; stopping ${#old[@]} old (SIGTERM, ${stop_timeout}s)"
    $DOCKER stop --time "$stop_timeout" "${old[@]}" >/dev/null
    $DOCKER rm "${old[@]}" >/dev/null
  fi
  log "$service: done"
}

roll web 30 ready
roll worker 300

# --- 5. beat: stop, then start -----------------------------------------------------------------
log "beat: recreate (stop before start)"
compose up -d --no-deps --force-recreate beat

# --- 6. the edge ------------------------------------------------------------------------------
# Started on the first deploy; later ones leave it running (it follows web through DNS).
compose up -d --no-deps --no-recreate proxy

# Record the release, so later plain `docker compose` commands keep running it.
if [ -n "${IMAGE:-}" ]; then
  if grep -q '^IMAGE=' "$ENV_FILE"; then
    sed -i "s|^IMAGE=.*|IMAGE=$IMAGE|" "$ENV_FILE"
  else
    printf '\nIMAGE=%s\n' "$IMAGE" >>"$ENV_FILE"
  fi
fi
log "deployed ${IMAGE:-a local build} (previous: ${previous:-none recorded})"
