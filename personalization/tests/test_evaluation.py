"""The shipped signals must keep separating the persona behaviour models (quality, not time)."""

from datetime import UTC, datetime

from personalization import evaluation as ev


def test_default_signals__labelled_visitors__meet_quality_targets():
    report = ev.evaluate(
        visitors=600,
        seed=ev.EVAL_SEED,
        now=datetime(2026, 11, 29, tzinfo=UTC),
        temperature=1.0,
        min_events=3,
    )

    assert ev.accuracy(report.subset(5)) >= 0.9
    assert ev.casual_share(report.thin_outcomes) == 1.0
    assert ev.macro_f1(report.subset(5)) >= 0.85
