"""The personalization cache: one round trip per request, versions checked, failures absorbed.

Three keys answer a request in one MGET:
- `p13n:ruleset`        the rule-set version (bumped by every rule, signal or catalog edit)
- `p13n:pv:<visitor>`   the visitor's profile version (bumped by every re-segmentation)
- `p13n:r:<visitor>`    the response's JSON bytes, tagged with the versions it was built from
An entry whose tags differ from the current versions is a miss, so an admin edit or a new
profile shows on the next request without scanning or deleting keys. Any cache error counts
as a miss and is counted in `cache_errors_total`: the caller falls back to the database.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

from ops.metrics import CACHE_ERRORS, CACHE_HITS, CACHE_MISSES

logger = logging.getLogger(__name__)

CACHE_NAME = "personalization"
RULESET_KEY = "p13n:ruleset"
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
    profile_version: int | None
    failed: bool = False


def lookup(user_pseudo_id: str) -> Lookup:
    keys = [RULESET_KEY, profile_version_key(user_pseudo_id), response_key(user_pseudo_id)]
    try:
        found = cache.get_many(keys)
    except Exception as exc:  # a cache outage must not fail the request
        _ERRORS.inc()
        logger.warning("p13n.cache.read_failed", extra={"error": type(exc).__name__})
        return Lookup(None, None, None, failed=True)
    ruleset = found.get(keys[0])
    profile_version = found.get(keys[1], 0)
    entry = found.get(keys[2])  # (ruleset, profile_version, body)
    if entry is not None and ruleset is not None and entry[:2] == (ruleset, profile_version):
        _HITS.inc()
        return Lookup(entry[2], ruleset, profile_version)
    _MISSES.inc()
    return Lookup(None, ruleset, profile_version if keys[1] in found else None)


def store(user_pseudo_id: str, *, response: bytes, ruleset: int, profile_version: int) -> None:
    entries: dict[str, Any] = {
        RULESET_KEY: ruleset,
        profile_version_key(user_pseudo_id): profile_version,
        response_key(user_pseudo_id): (ruleset, profile_version, response),
    }
    try:
        cache.add(RULESET_KEY, ruleset, timeout=None)
        cache.add(profile_version_key(user_pseudo_id), profile_version, timeout=None)
        del entries[RULESET_KEY], entries[profile_version_key(user_pseudo_id)]
        cache.set_many(entries, timeout=settings.PERSONALIZATION_CACHE_TIMEOUT)
    except Exception as exc:
        _ERRORS.inc()
        logger.warning("p13n.cache.write_failed", extra={"error": type(exc).__name__})


def publish_ruleset(version: int) -> None:
    _safe_set(RULESET_KEY, version)


def publish_profile_version(user_pseudo_id: str, version: int) -> None:
    _safe_set(profile_version_key(user_pseudo_id), version)


def forget_visitor(user_pseudo_id: str) -> None:
    try:
        cache.delete_many([profile_version_key(user_pseudo_id), response_key(user_pseudo_id)])
    except Exception as exc:
        _ERRORS.inc()
        logger.warning("p13n.cache.delete_failed", extra={"error": type(exc).__name__})


def _safe_set(key: str, value: int) -> None:
    try:
        cache.set(key, value, timeout=None)
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
        cache.add(RULESET_KEY, ruleset, timeout=None)  # never over a newer one
        cache.set_many(
            {profile_version_key(uid): version for uid, version in versions.items()}, timeout=None
        )
        cache.set_many(entries, timeout=settings.PERSONALIZATION_CACHE_TIMEOUT)
    except Exception as exc:
        _ERRORS.inc()
        logger.warning("p13n.cache.write_failed", extra={"error": type(exc).__name__})


def publish_profile_versions(versions: dict[str, int]) -> None:
    try:
        cache.set_many(
            {profile_version_key(uid): version for uid, version in versions.items()}, timeout=None
        )
    except Exception as exc:
        _ERRORS.inc()
        logger.warning("p13n.cache.write_failed", extra={"error": type(exc).__name__})
