"""The personalization cache: one round trip per request, versions checked, failures absorbed.

Four keys answer a request in one MGET:
- `p13n:ruleset`        the rule-set version (bumped by every rule, signal or catalog edit)
- `p13n:pv:<visitor>`   the visitor's profile version (bumped by every re-segmentation)
- `p13n:r:<visitor>`    the response's JSON bytes, tagged with the versions it was built from
- `p13n:anon`           the answer every visitor without events shares (one per variant, the
                        id left out), tagged with the rule-set version
An entry whose tags differ from the current versions is a miss, so an admin edit or a new
profile shows on the next request without scanning or deleting keys. Any cache error counts
as a miss and is counted in `cache_errors_total`: the caller falls back to the database.

Only visitors with a profile (events) get keys of their own: an unknown id costs no stored
state (API.md), so a loop of made-up ids cannot fill Redis. A missing version key is never
read as "no events": the cache evicts (allkeys-lru), so only the database can tell an unknown
visitor from one whose keys were evicted, and it does with one indexed query before the shared
answer is served.

In front of Redis, each process keeps the answers it served last (`LocalResponses`, up to
PERSONALIZATION_LOCAL_CACHE_SIZE): a hit there costs no round trip. Every writer of a version
publishes the visitors it changed (or "all", for the rule set) on a Redis channel after
writing, and every process listening drops them; a process serves from its copy only while it
is subscribed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache

from ops.metrics import CACHE_ERRORS, CACHE_HITS, CACHE_MISSES

logger = logging.getLogger(__name__)

CACHE_NAME = "personalization"
RULESET_KEY = "p13n:ruleset"
ANONYMOUS_KEY = "p13n:anon"
# An answer starts with its visitor's id: the shared answer is kept without it.
_ANONYMOUS_HEAD = b'{"user_id":""'
# Bound once: labels() costs a lock and a dict lookup per call on the hot path.
_HITS, _MISSES, _ERRORS = (m.labels(CACHE_NAME) for m in (CACHE_HITS, CACHE_MISSES, CACHE_ERRORS))


def profile_version_key(user_pseudo_id: str) -> str:
    return f"p13n:pv:{user_pseudo_id}"


def response_key(user_pseudo_id: str) -> str:
    return f"p13n:r:{user_pseudo_id}"


@dataclass(frozen=True)
class Lookup:
    response: bytes | None
    ruleset: int | None  # None: unknown (not cached, or the cache failed)
    profile_version: int | None  # None: no version cached for this visitor
    failed: bool = False
    # The shared answers of visitors without events, by variant, for the current rule set.
    anonymous: dict[str, bytes] | None = None
    generation: int | None = None  # of the per-process copy, when there is one


def lookup(user_pseudo_id: str) -> Lookup:
    local = local_responses()
    generation = None
    if local is not None:
        body, generation = local.get(user_pseudo_id)
        if body is not None:
            _HITS.inc()
            return Lookup(body, None, None)
    keys = [
        RULESET_KEY,
        profile_version_key(user_pseudo_id),
        response_key(user_pseudo_id),
        ANONYMOUS_KEY,
    ]
    try:
        found = cache.get_many(keys)
    except Exception as exc:  # a cache outage must not fail the request
        _ERRORS.inc()
        logger.warning("p13n.cache.read_failed", extra={"error": type(exc).__name__})
        return Lookup(None, None, None, failed=True)
    ruleset = found.get(keys[0])
    profile_version = found.get(keys[1])
    entry = found.get(keys[2])  # (ruleset, profile_version, body)
    if (
        entry is not None
        and ruleset is not None
        and profile_version is not None
        and entry[:2] == (ruleset, profile_version)
    ):
        _HITS.inc()
        if local is not None and generation is not None:
            local.put(user_pseudo_id, entry[2], generation=generation)
        return Lookup(entry[2], ruleset, profile_version)
    shared = found.get(keys[3])  # (ruleset, {variant: answer without its id})
    anonymous = (
        shared[1] if shared is not None and ruleset is not None and shared[0] == ruleset else None
    )
    if anonymous is None or profile_version is not None:
        _MISSES.inc()
    # else: counted by the caller, once the database has said whether the visitor has events
    return Lookup(None, ruleset, profile_version, anonymous=anonymous, generation=generation)


def count_miss() -> None:
    _MISSES.inc()


def anonymous_response(
    user_pseudo_id: str, *, answers: dict[str, bytes], variant: str, generation: int | None
) -> bytes:
    """The shared answer of a visitor without events, with its id put back; kept in this
    process's copy (which an invalidation clears when the visitor's first profile is published),
    never in Redis."""
    _HITS.inc()
    body = b'{"user_id":' + json.dumps(user_pseudo_id).encode() + answers[variant]
    local = _local["responses"]
    if local is not None and generation is not None:
        local.put(user_pseudo_id, body, generation=generation)
    return body


def store_anonymous(*, ruleset: int, responses: dict[str, bytes]) -> None:
    """Keep the answers of visitors without events (built with an empty id), one per variant,
    for every unknown visitor to share."""
    answers = {}
    for variant, body in responses.items():
        if not body.startswith(_ANONYMOUS_HEAD):
            raise ValueError("an anonymous answer starts with an empty user_id")
        answers[variant] = body[len(_ANONYMOUS_HEAD) :]
    timeout = settings.PERSONALIZATION_CACHE_TIMEOUT
    try:
        cache.add(RULESET_KEY, ruleset, timeout=timeout)
        cache.set(ANONYMOUS_KEY, (ruleset, answers), timeout=timeout)
    except Exception as exc:
        _ERRORS.inc()
        logger.warning("p13n.cache.write_failed", extra={"error": type(exc).__name__})


def store(user_pseudo_id: str, *, response: bytes, ruleset: int, profile_version: int) -> None:
    """Keep a visitor's answer: visitors with a profile only (profile_version 1 and up)."""
    entries: dict[str, Any] = {
        RULESET_KEY: ruleset,
        profile_version_key(user_pseudo_id): profile_version,
        response_key(user_pseudo_id): (ruleset, profile_version, response),
    }
    try:
        cache.add(RULESET_KEY, ruleset, timeout=settings.PERSONALIZATION_CACHE_TIMEOUT)
        cache.add(profile_version_key(user_pseudo_id), profile_version, timeout=None)
        del entries[RULESET_KEY], entries[profile_version_key(user_pseudo_id)]
        cache.set_many(entries, timeout=settings.PERSONALIZATION_CACHE_TIMEOUT)
    except Exception as exc:
        _ERRORS.inc()
        logger.warning("p13n.cache.write_failed", extra={"error": type(exc).__name__})


def publish_ruleset(version: int) -> None:
    # A time-to-live like the answers': a lost or expired version is re-read from the database.
    _safe_set(RULESET_KEY, version, timeout=settings.PERSONALIZATION_CACHE_TIMEOUT)
    _invalidate(None)


def publish_profile_version(user_pseudo_id: str, version: int) -> None:
    _safe_set(profile_version_key(user_pseudo_id), version)
    _invalidate([user_pseudo_id])


def forget_visitor(user_pseudo_id: str) -> None:
    try:
        cache.delete_many([profile_version_key(user_pseudo_id), response_key(user_pseudo_id)])
    except Exception as exc:
        _ERRORS.inc()
        logger.warning("p13n.cache.delete_failed", extra={"error": type(exc).__name__})
    _invalidate([user_pseudo_id])


def ruleset_cached() -> int | None:
    """The rule-set version the cache holds; None if it holds none or cannot be read."""
    try:
        value = cache.get(RULESET_KEY)
    except Exception as exc:
        _ERRORS.inc()
        logger.warning("p13n.cache.read_failed", extra={"error": type(exc).__name__})
        return None
    return value if isinstance(value, int) else None


def invalidate_all(*, ruleset: int) -> bool:
    """Forget every visitor's cached version and response and publish `ruleset` (the database
    was restored: everything cached may be newer than it). Every process drops its local copy.
    False if the cache failed."""
    try:
        if hasattr(cache, "delete_pattern"):  # django-redis: SCAN, only our KEY_PREFIX
            for pattern in (profile_version_key("*"), response_key("*")):
                cache.delete_pattern(pattern, itersize=1000)
            cache.delete(ANONYMOUS_KEY)
        else:
            cache.clear()
        cache.set(RULESET_KEY, ruleset, timeout=settings.PERSONALIZATION_CACHE_TIMEOUT)
    except Exception as exc:
        _ERRORS.inc()
        logger.warning("p13n.cache.invalidate_all_failed", extra={"error": type(exc).__name__})
        return False
    finally:
        _invalidate(None)
    return True


def _safe_set(key: str, value: int, *, timeout: int | None = None) -> None:
    try:
        cache.set(key, value, timeout=timeout)
    except Exception as exc:
        _ERRORS.inc()
        logger.warning("p13n.cache.write_failed", extra={"error": type(exc).__name__})


def publish_profiles(
    versions: dict[str, int], *, ruleset: int, responses: dict[str, bytes]
) -> None:
    """New profile versions, each with its response built from them: the visitors' next
    requests are hits (a response built under an older rule set is a miss, as ever)."""
    entries = {response_key(uid): (ruleset, versions[uid], body) for uid, body in responses.items()}
    try:
        # never over a newer one
        cache.add(RULESET_KEY, ruleset, timeout=settings.PERSONALIZATION_CACHE_TIMEOUT)
        cache.set_many(entries, timeout=settings.PERSONALIZATION_CACHE_TIMEOUT)
    except Exception as exc:
        _ERRORS.inc()
        logger.warning("p13n.cache.write_failed", extra={"error": type(exc).__name__})
    # The versions last: until they move, the new entries are not read (nor are they after,
    # if writing them failed: the database answers).
    publish_profile_versions(versions)


def publish_profile_versions(versions: dict[str, int]) -> None:
    try:
        cache.set_many(
            {profile_version_key(uid): version for uid, version in versions.items()}, timeout=None
        )
    except Exception as exc:
        _ERRORS.inc()
        logger.warning("p13n.cache.write_failed", extra={"error": type(exc).__name__})
    _invalidate(versions)


# --- The per-process copy --------------------------------------------------------------------

INVALIDATE_CHANNEL = "p13n:invalidate"
_ALL = "*"


def redis_client() -> Any:
    """The raw Redis client behind the default cache, or None for another backend."""
    get_client = getattr(getattr(cache, "client", None), "get_client", None)
    return get_client(write=True) if get_client else None


def _invalidate(user_pseudo_ids: Iterable[str] | None) -> None:
    """Tell every process (this one at once) that these visitors' answers, or all of them
    (None), changed. Sent after the new versions are written."""
    ids = None if user_pseudo_ids is None else list(user_pseudo_ids)
    local = _local["responses"]
    if local is not None:
        local.drop(ids)
    client = redis_client()
    if client is None or ids == []:
        return
    try:
        client.publish(cache.make_key(INVALIDATE_CHANNEL), _ALL if ids is None else json.dumps(ids))
    except Exception as exc:
        # The listeners lost their connection too, or will notice it: they stop serving copies.
        _ERRORS.inc()
        logger.warning("p13n.cache.invalidate_failed", extra={"error": type(exc).__name__})


class LocalResponses:
    """Answers this process served recently, valid while it is subscribed to the invalidation
    channel.

    Every read first applies the messages that have arrived (a non-blocking poll of the
    subscription's socket, skipped while another thread of the process is doing it): a writer
    publishes before its own request returns, so the next request anywhere sees the change.
    `generation` moves on every invalidation, so an answer read from Redis before one arrived is
    not kept. Without a healthy subscription nothing is
    served from here, and on (re)subscribing everything is forgotten, since messages may have
    been missed.
    """

    RETRY_SECONDS = 5.0

    def __init__(self, *, url: str, channel: str, size: int) -> None:
        self.url, self.channel, self.size = url, channel, size
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()  # writes to the entries
        self._sync_lock = threading.Lock()  # one thread polls the subscription at a time
        self._pubsub: Any = None
        self._retry_at = 0.0
        self.generation = 0

    def get(self, user_pseudo_id: str) -> tuple[bytes | None, int]:
        generation = self.generation
        if not self._sync():
            return None, generation
        # No lock to read: a dict lookup is atomic, and holding a lock across the poll's system
        # call made every thread queue behind the GIL hand-offs (throughput fell by half).
        return self._entries.get(user_pseudo_id), generation

    def put(self, user_pseudo_id: str, body: bytes, *, generation: int) -> None:
        with self._lock:
            if self._pubsub is None or generation != self.generation:
                return
            self._entries[user_pseudo_id] = body
            self._entries.move_to_end(user_pseudo_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def drop(self, user_pseudo_ids: list[str] | None) -> None:
        with self._lock:
            self._drop(user_pseudo_ids)

    def _drop(self, user_pseudo_ids: list[str] | None) -> None:
        self.generation += 1
        if user_pseudo_ids is None:
            self._entries.clear()
        else:
            for uid in user_pseudo_ids:
                self._entries.pop(uid, None)

    def _sync(self) -> bool:
        """Apply the invalidations that have arrived; False without a healthy subscription."""
        if not self._sync_lock.acquire(blocking=False):
            return self._pubsub is not None  # another thread is applying them right now
        try:
            return self._sync_locked()
        finally:
            self._sync_lock.release()

    def _sync_locked(self) -> bool:
        try:
            if self._pubsub is None:
                if time.monotonic() < self._retry_at:
                    return False
                self._subscribe()
            while (message := self._pubsub.get_message(timeout=0)) is not None:
                if message["type"] == "message":
                    data = message["data"].decode()
                    self.drop(None if data == _ALL else json.loads(data))
            return True
        except Exception as exc:
            if self._pubsub is not None:
                logger.warning("p13n.cache.subscription_lost", extra={"error": type(exc).__name__})
                with contextlib.suppress(Exception):
                    self._pubsub.close()
            self._pubsub, self._retry_at = None, time.monotonic() + self.RETRY_SECONDS
            self.drop(None)
            return False

    def _subscribe(self) -> None:
        client = redis.Redis.from_url(
            self.url, socket_connect_timeout=1, socket_timeout=1, health_check_interval=5
        )
        pubsub = client.pubsub()
        pubsub.subscribe(self.channel)
        confirmed = pubsub.get_message(timeout=1.0)  # the subscription is in place from here
        if not confirmed or confirmed["type"] != "subscribe":
            pubsub.close()
            raise ConnectionError("no subscription confirmation")
        self.drop(None)  # whatever was kept before may have missed messages
        self._pubsub = pubsub


_local: dict[str, Any] = {"pid": None, "responses": None}
_local_start = threading.Lock()


def local_responses() -> LocalResponses | None:
    """This process's copy, started on first use (after gunicorn's fork); None when turned off
    (PERSONALIZATION_LOCAL_CACHE_SIZE=0) or when the cache is not Redis."""
    if _local["pid"] == os.getpid():
        return _local["responses"]
    with _local_start:  # one listener per process, whichever thread asks first
        if _local["pid"] != os.getpid():
            size = settings.PERSONALIZATION_LOCAL_CACHE_SIZE
            location = settings.CACHES["default"].get("LOCATION")
            responses = None
            if size > 0 and redis_client() is not None and isinstance(location, str):
                responses = LocalResponses(
                    url=location, channel=cache.make_key(INVALIDATE_CHANNEL), size=size
                )
            _local["responses"], _local["pid"] = responses, os.getpid()
    return _local["responses"]


def local_responses_clear() -> None:
    """Forget this process's copies (tests change Redis behind the channel's back)."""
    local = _local["responses"]
    if local is not None:
        local.drop(None)
