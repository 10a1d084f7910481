"""Deterministic segmentation with an exact explanation.

raw score(segment) = prior + Σ over its signals of weight * min(cap, Σ decay(age) of matches)
scores = softmax(raw / temperature); confidence = the winner's score.

The contributions listed in an explanation add up, with the prior, to each raw score. Pure
functions over plain data: the same engine serves the Celery task, `resegment --all` and
`make eval` (which runs it on synthetic visitors without a database).

Conditions are admin-typed JSON: a signal whose conditions break the schema (conditions.py)
never matches, and a condition that raises on an event counts as not holding; neither fails a
decision. Both are reported through the model's `broken` and `on_condition_error`.

Numbers are admin-typed too: a prior, weight, cap or half-life outside the bounds the admin
enforces (validation.py) is scored as the nearest bound, NaN as "counts nothing" (a half-life
as "no decay"), and reported through `clamped`; so every raw score is finite and the scores are
finite and sum to 1, whatever a row holds.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from .conditions import conditions_problems, regex_compile
from .validation import (
    CAP_MAX,
    HALF_LIFE_MAX_DAYS,
    HALF_LIFE_MIN_DAYS,
    PRIOR_LIMIT,
    WEIGHT_LIMIT,
)

CASUAL = "CASUAL"
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class EventView:
    """The parts of an event the scorer reads."""

    event_name: str
    params: Mapping[str, Any]
    occurred_at: datetime
    page_referrer: str = ""


@dataclass(frozen=True)
class SegmentSpec:
    code: str
    name: str
    prior: float
    description: str = ""
    recommendation: str = ""
    topic_tags: tuple[str, ...] = ()


Matcher = Callable[[EventView], bool]


@dataclass(frozen=True)
class SignalSpec:
    id: int
    segment: str
    label: str
    event_name: str  # "*" matches any event
    # As stored: normally a tuple of {"param", "op", "value"}, but any JSON an admin or a raw
    # write left there; checked when the model is built.
    conditions: Any
    weight: float
    cap: float
    half_life_days: float | None


@dataclass(frozen=True)
class Contribution:
    signal: str
    segment: str
    weight: float
    count: float
    contribution: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "segment": self.segment,
            "weight": self.weight,
            "count": round(self.count, 4),
            "contribution": round(self.contribution, 4),
        }


@dataclass(frozen=True)
class Decision:
    segment: str
    confidence: float
    scores: dict[str, float]
    raw_scores: dict[str, float]
    contributions: list[Contribution]
    event_count: int
    thin_evidence: bool


def _param(event: EventView, name: str) -> Any:
    if name == "page_referrer":
        return event.page_referrer or event.params.get("page_referrer", "")
    if name == "referrer_host":
        referrer = event.page_referrer or event.params.get("page_referrer", "")
        return (urlsplit(str(referrer)).hostname or "") if referrer else ""
    if name == "traffic_source":
        return event.params.get("source") or event.params.get("utm_source") or ""
    return event.params.get(name)


class CatalogTags:
    """Topic tags of the catalog items an event may name (project slugs, skill names)."""

    def __init__(self, projects: Mapping[str, Iterable[str]], skills: Mapping[str, Iterable[str]]):
        self.by_item: dict[str, frozenset[str]] = {}
        for name, tags in skills.items():
            self.by_item[name.lower()] = frozenset(t.lower() for t in tags)
        for slug, tags in projects.items():
            self.by_item[slug.lower()] = frozenset(t.lower() for t in tags)

    def tags(self, item: Any) -> frozenset[str]:
        return self.by_item.get(str(item).lower(), frozenset()) if item is not None else frozenset()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value) if isinstance(value, (int, float)) else float(str(value))
    except (ValueError, OverflowError):  # not a number; an integer past the float range
        return None


def _never(event: EventView) -> bool:
    return False


def compile_conditions(conditions: Any, catalog: CatalogTags) -> tuple[Matcher, list[str]]:
    """A signal's conditions → (the predicate that all of them hold, the schema problems). A
    signal with problems gets a predicate that never holds: leaving a broken condition out
    would count events the admin meant to filter away."""
    problems = conditions_problems(conditions)
    if problems:
        return _never, problems
    return _all_of([compile_condition(c, catalog) for c in conditions]), []


def compile_condition(condition: Mapping[str, Any], catalog: CatalogTags) -> Matcher:
    """One valid condition (conditions_problems says none) → a predicate on events."""
    param, op, expected = (
        condition.get("param", ""),
        condition.get("op", "exists"),
        condition.get("value"),
    )
    if op == "exists":
        return lambda e: _param(e, param) not in (None, "")
    if op == "equals":
        return lambda e: str(_param(e, param)).lower() == str(expected).lower()
    if op == "in":
        allowed = {str(v).lower() for v in (expected or [])}
        return lambda e: str(_param(e, param)).lower() in allowed
    if op == "contains":
        needle = str(expected).lower()
        return lambda e: needle in str(_param(e, param) or "").lower()
    if op == "regex":
        found = _regex_finder(str(expected))
        return lambda e: found(str(_param(e, param) or ""))
    if op == "tag":
        wanted = frozenset(str(v).lower() for v in (expected or []))
        return lambda e: bool(catalog.tags(_param(e, param)) & wanted)
    if op in {"gte", "lte"}:
        bound = _number(expected)
        if bound is None:
            return lambda e: False

        def compare(e: EventView) -> bool:
            value = _number(_param(e, param))
            if value is None:
                return False
            return value >= bound if op == "gte" else value <= bound

        return compare
    return lambda e: False


MEMO_TEXT_LENGTH = 256
MEMO_SIZE = 2048


def _regex_finder(pattern: str) -> Callable[[str], bool]:
    """Whether the pattern is found in a text. RE2's binding costs 2-9 µs a call against 0.1-0.6
    for `re` on a host name, and a wildcard signal runs on every event: short texts (hosts,
    slugs, mostly "") repeat, so their answers are kept, a bounded number per condition."""
    search = regex_compile(pattern).search

    def found(text: str) -> bool:
        try:
            return search(text) is not None
        except UnicodeEncodeError:  # a lone surrogate in a param: RE2 reads UTF-8 only
            return search(text.encode("utf-8", "replace").decode()) is not None

    remembered = functools.lru_cache(maxsize=MEMO_SIZE)(found)
    return lambda text: remembered(text) if len(text) <= MEMO_TEXT_LENGTH else found(text)


@dataclass
class ScoringModel:
    segments: list[SegmentSpec]
    signals: list[SignalSpec]
    catalog: CatalogTags
    temperature: float = 1.0
    min_events: int = 3
    _matchers: dict[int, Matcher] = field(default_factory=dict, repr=False)
    # Per event name, the signals that may count it with their predicates, built once: scoring
    # a full recompute asks this for every event.
    _plans: dict[str, list[tuple[SignalSpec, Matcher]]] = field(default_factory=dict, repr=False)
    _wildcard_plan: list[tuple[SignalSpec, Matcher]] = field(default_factory=list, repr=False)
    version: str = ""
    # Signal id -> why its conditions break the schema; such a signal never matches.
    broken: dict[int, list[str]] = field(default_factory=dict)
    # Called when a condition raises on an event (it then counts as not holding).
    on_condition_error: Callable[[SignalSpec, Exception], None] | None = field(
        default=None, repr=False, compare=False
    )
    # What was scored other than stored: "signal 7: weight 1e+308 counted as 1000.0", ...
    clamped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.segments = [self._bounded_segment(s) for s in self.segments]
        self.signals = [self._bounded_signal(s) for s in self.signals]
        by_event: dict[str, list[SignalSpec]] = {}
        for signal in self.signals:
            self._matchers[signal.id], problems = compile_conditions(
                signal.conditions, self.catalog
            )
            if problems:
                self.broken[signal.id] = problems
            by_event.setdefault(signal.event_name, []).append(signal)
        wildcard = by_event.pop("*", [])
        self._wildcard_plan = [(s, self._matchers[s.id]) for s in wildcard]
        for name, signals in by_event.items():
            self._plans[name] = [(s, self._matchers[s.id]) for s in [*signals, *wildcard]]
        if not self.version:
            self.version = model_version(self)

    def _bounded_segment(self, segment: SegmentSpec) -> SegmentSpec:
        prior = self._bounded(f"segment {segment.code}: prior", segment.prior, PRIOR_LIMIT)
        return segment if prior == segment.prior else replace(segment, prior=prior)

    def _bounded_signal(self, signal: SignalSpec) -> SignalSpec:
        what = f"signal {signal.id}"
        weight = self._bounded(f"{what}: weight", signal.weight, WEIGHT_LIMIT)
        cap = self._bounded(f"{what}: cap", signal.cap, CAP_MAX, low=0.0)
        half_life = signal.half_life_days
        if half_life is not None:
            # Zero, negative and NaN have always meant "no decay"; keep that, and bound the rest.
            half_life = _as_float(half_life, HALF_LIFE_MAX_DAYS)
            half_life = (
                self._bounded(
                    f"{what}: half_life_days", half_life, HALF_LIFE_MAX_DAYS, HALF_LIFE_MIN_DAYS
                )
                if half_life > 0
                else None
            )
        if (weight, cap, half_life) == (signal.weight, signal.cap, signal.half_life_days):
            return signal
        return replace(signal, weight=weight, cap=cap, half_life_days=half_life)

    def _bounded(self, what: str, value: Any, high: float, low: float | None = None) -> float:
        low = -high if low is None else low
        number = _as_float(value, high)
        bounded = 0.0 if math.isnan(number) else min(max(number, low), high)
        if math.isnan(number) or not low <= number <= high:
            self.clamped.append(f"{what} {value!r} counted as {bounded!r}")
        return bounded

    def plan_for(self, event_name: str) -> list[tuple[SignalSpec, Matcher]]:
        """The signals an event of this name may count for (its name's, then "*"), each with
        the predicate of all its conditions."""
        return self._plans.get(event_name, self._wildcard_plan)

    def condition_failed(self, signal: SignalSpec, exc: Exception) -> None:
        if self.on_condition_error is not None:
            self.on_condition_error(signal, exc)


def _all_of(matchers: list[Matcher]) -> Matcher:
    if not matchers:
        return lambda e: True
    if len(matchers) == 1:
        return matchers[0]
    return lambda e: all(matcher(e) for matcher in matchers)


def model_version(model: ScoringModel) -> str:
    """A short hash of everything that shapes a decision, stored with every profile."""
    material = {
        "segments": [(s.code, s.prior) for s in model.segments],
        "signals": [
            (s.id, s.segment, s.event_name, s.conditions, s.weight, s.cap, s.half_life_days)
            for s in model.signals
        ],
        "catalog": sorted((k, sorted(v)) for k, v in model.catalog.by_item.items()),
        "temperature": model.temperature,
        "min_events": model.min_events,
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:12]


def _decay(age_seconds: float, half_life_days: float | None) -> float:
    if not half_life_days or half_life_days <= 0:
        return 1.0
    return 0.5 ** (max(age_seconds, 0.0) / (half_life_days * SECONDS_PER_DAY))


def _as_float(value: Any, high: float) -> float:
    """A stored number as a float; an integer past the float range as ±high, anything that is
    not a number as NaN."""
    try:
        return float(value)
    except OverflowError:
        return high if value > 0 else -high
    except (TypeError, ValueError):
        return math.nan


def _softmax(raw: Mapping[str, float], temperature: float) -> dict[str, float]:
    """Finite scores summing to 1 for any raw scores and temperature. Each score's distance to
    the top is taken before dividing (raw / temperature alone can overflow, and inf - inf is
    NaN); a NaN raw score counts as 0 and an infinite one as the largest float; a temperature
    that is not a positive finite number (a bad SCORING_TEMPERATURE) as 1."""
    if not 0 < temperature < math.inf:
        temperature = 1.0
    finite = {
        code: 0.0 if math.isnan(v) else min(max(v, -sys.float_info.max), sys.float_info.max)
        for code, v in raw.items()
    }
    top = max(finite.values())
    # The distance is >= 0 and may overflow to inf (exp gives 0); the top's is 0, so total >= 1.
    exps = {code: math.exp(-((top - value) / temperature)) for code, value in finite.items()}
    total = sum(exps.values())
    return {code: value / total for code, value in exps.items()}


def score_visitor(model: ScoringModel, events: Iterable[EventView], *, now: datetime) -> Decision:
    counts: dict[int, float] = {}
    event_count = 0
    for event in events:
        event_count += 1
        for signal, matches in model.plan_for(event.event_name):
            try:
                hit = matches(event)
            except Exception as exc:  # admin-typed data on visitor-typed data: never fatal
                model.condition_failed(signal, exc)
                continue
            if hit:
                age = (now - event.occurred_at).total_seconds()
                counts[signal.id] = counts.get(signal.id, 0.0) + _decay(age, signal.half_life_days)

    raw = {segment.code: segment.prior for segment in model.segments} or {CASUAL: 0.0}
    contributions = []
    for signal in model.signals:
        if signal.id not in counts or signal.segment not in raw:
            continue
        count = min(counts[signal.id], signal.cap)
        value = signal.weight * count
        raw[signal.segment] += value
        contributions.append(
            Contribution(signal.label, signal.segment, signal.weight, count, value)
        )
    contributions.sort(key=lambda c: -abs(c.contribution))

    scores = _softmax(raw, model.temperature)
    thin = event_count < model.min_events
    if thin and CASUAL in scores:
        segment = CASUAL
    else:
        segment = max(scores, key=lambda code: (scores[code], code == CASUAL))
    return Decision(
        segment=segment,
        confidence=scores[segment],
        scores=scores,
        raw_scores=raw,
        contributions=contributions,
        event_count=event_count,
        thin_evidence=thin,
    )


def narrative(decision: Decision, segments: Mapping[str, SegmentSpec]) -> dict[str, str]:
    """The seed's {what, why, so_what, recommendation}, written from the contributions."""
    spec = segments.get(decision.segment)
    name = spec.name if spec else decision.segment
    what = (
        f"Classified as {name} with {decision.confidence:.0%} confidence "
        f"from {decision.event_count} event{'s' if decision.event_count != 1 else ''}."
    )
    own = [c for c in decision.contributions if c.segment == decision.segment and c.contribution]
    if decision.thin_evidence:
        why = (
            f"Only {decision.event_count} event(s) so far; fewer than the "
            "minimum needed to tell audiences apart, so the default applies."
        )
    elif own:
        parts = [f"{c.signal} x{c.count:.1f} (+{c.contribution:.2f})" for c in own[:3]]
        why = "Strongest evidence: " + "; ".join(parts) + "."
    else:
        why = "No signal for another audience outweighed the default."
    runner_up = sorted(
        (code for code in decision.scores if code != decision.segment),
        key=lambda code: -decision.scores[code],
    )
    so_what = (spec.description if spec else "") or ""
    if runner_up:
        other = runner_up[0]
        so_what = (f"{so_what} Next most likely: {other} at {decision.scores[other]:.0%}.").strip()
    recommendation = (spec.recommendation if spec else "") or "Show the default page."
    return {"what": what, "why": why, "so_what": so_what, "recommendation": recommendation}


def explanation(decision: Decision, segments: Mapping[str, SegmentSpec]) -> dict[str, Any]:
    return {
        **narrative(decision, segments),
        "priors": {code: spec.prior for code, spec in segments.items()},
        "contributions": [c.as_dict() for c in decision.contributions],
    }
