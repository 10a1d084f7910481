"""Offline evaluation of the shipped segmentation on labelled synthetic visitors.

The persona behaviour models generate visitors whose true segment is known (with a seed other
than the demo's); the default signals and the demo catalog score them exactly as production
would. Reports accuracy, macro-F1 and calibration per segment. No database needed.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from analytics.services import timestamp_to_datetime

from . import defaults
from .demo_catalog import PROJECTS, SKILLS
from .personas import PERSONAS, generate_visitors
from .scoring import CASUAL, CatalogTags, EventView, ScoringModel, SegmentSpec, SignalSpec
from .scoring import score_visitor as score

EVAL_SEED = 7_331
EVAL_MIX = {code: 1 / len(PERSONAS) for code in PERSONAS}
CALIBRATION_BINS = [(0.0, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 0.95), (0.95, 1.0001)]


def default_model(*, temperature: float, min_events: int) -> ScoringModel:
    """The model a fresh install runs: default segments and signals over the demo catalog."""
    return ScoringModel(
        segments=[
            SegmentSpec(
                code=s["code"],
                name=s["name"],
                prior=s["prior"],
                description=s["description"],
                recommendation=s["recommendation"],
                topic_tags=tuple(s["topic_tags"]),
            )
            for s in defaults.SEGMENTS
        ],
        signals=[
            SignalSpec(
                id=index,
                segment=s["segment"],
                label=s["label"],
                event_name=s["event_name"],
                conditions=tuple(s["conditions"]),
                weight=s["weight"],
                cap=s["cap"],
                half_life_days=s.get("half_life_days", 30.0),
            )
            for index, s in enumerate(defaults.SIGNALS)
        ],
        catalog=CatalogTags(
            projects={p["slug"]: p["tags"] for p in PROJECTS},
            skills={s["name"]: s["tags"] for s in SKILLS},
        ),
        temperature=temperature,
        min_events=min_events,
    )


@dataclass
class Outcome:
    truth: str
    predicted: str
    confidence: float
    events: int


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    thin_outcomes: list[Outcome] = field(default_factory=list)

    def subset(self, min_events: int) -> list[Outcome]:
        return [o for o in self.outcomes if o.events >= min_events]


def evaluate(
    *, visitors: int, seed: int, now: datetime, temperature: float, min_events: int
) -> Report:
    model = default_model(temperature=temperature, min_events=min_events)
    report = Report()
    rng = random.Random(seed + 1)
    for visitor in generate_visitors(count=visitors, seed=seed, now=now, mix=EVAL_MIX):
        events = [
            EventView(
                e["event_name"],
                e["event_params"],
                timestamp_to_datetime(e["event_timestamp"]),
                e["event_params"].get("page_referrer", ""),
            )
            for e in visitor.events
        ]
        decision = score(model, events, now=now)
        report.outcomes.append(
            Outcome(visitor.segment, decision.segment, decision.confidence, len(events))
        )
        # The same visitor seen after only its first one or two events must stay CASUAL.
        cut = rng.randint(1, 2)
        thin = score(model, events[:cut], now=now)
        report.thin_outcomes.append(Outcome(visitor.segment, thin.segment, thin.confidence, cut))
    return report


def accuracy(outcomes: list[Outcome]) -> float:
    return sum(o.truth == o.predicted for o in outcomes) / len(outcomes) if outcomes else 0.0


def per_segment(outcomes: list[Outcome]) -> dict[str, dict[str, float]]:
    truths = Counter(o.truth for o in outcomes)
    predictions = Counter(o.predicted for o in outcomes)
    hits = Counter(o.truth for o in outcomes if o.truth == o.predicted)
    table = {}
    for code in sorted(set(truths) | set(predictions)):
        precision = hits[code] / predictions[code] if predictions[code] else 0.0
        recall = hits[code] / truths[code] if truths[code] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        predicted = [o for o in outcomes if o.predicted == code]
        table[code] = {
            "support": truths[code],
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "mean_confidence": (
                sum(o.confidence for o in predicted) / len(predicted) if predicted else 0.0
            ),
            "accuracy_when_predicted": precision,
        }
    return table


def macro_f1(outcomes: list[Outcome]) -> float:
    rows = [r for r in per_segment(outcomes).values() if r["support"]]
    return sum(r["f1"] for r in rows) / len(rows) if rows else 0.0


def calibration(outcomes: list[Outcome]) -> tuple[list[tuple[str, int, float, float]], float]:
    """Reliability bins (label, n, mean confidence, accuracy) and the expected calibration
    error: the gap between confidence and accuracy, weighted by bin size."""
    bins = []
    ece = 0.0
    for low, high in CALIBRATION_BINS:
        members = [o for o in outcomes if low <= o.confidence < high]
        if not members:
            continue
        confidence = sum(o.confidence for o in members) / len(members)
        acc = accuracy(members)
        ece += len(members) / len(outcomes) * abs(confidence - acc)
        bins.append((f"{low:.2f}-{min(high, 1.0):.2f}", len(members), confidence, acc))
    return bins, ece


def casual_share(outcomes: list[Outcome]) -> float:
    return sum(o.predicted == CASUAL for o in outcomes) / len(outcomes) if outcomes else 0.0
