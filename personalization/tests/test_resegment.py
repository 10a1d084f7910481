import time

import pytest
from django.core.cache import cache as djcache
from django.core.management import call_command

from analytics.models import Visitor
from analytics.services import EventIn, events_store
from ops.services import demo_seed
from personalization.models import VisitorProfile
from personalization.recompute import profiles_recompute_all
from personalization.selectors import conversion_by_variant, segment_counts
from personalization.services import pending_key, resegment_request, visitor_resegment
from personalization.tasks import resegment_visitor


@pytest.mark.django_db
def test_resegment_all__demo_visitors__one_profile_each_and_same_as_incremental():
    demo_seed(visitors=60)
    VisitorProfile.objects.all().delete()

    summary = profiles_recompute_all(batch_size=16)

    assert summary.visitors == Visitor.objects.count() == VisitorProfile.objects.count()
    sample = VisitorProfile.objects.order_by("user_pseudo_id")[:10]
    for profile in sample:
        incremental = visitor_resegment(
            user_pseudo_id=profile.user_pseudo_id, now=profile.computed_at
        )
        assert incremental is not None
        assert incremental.segment == profile.segment
        assert incremental.scores == profile.scores


@pytest.mark.django_db
def test_resegment_all__again__versions_go_up():
    demo_seed(visitors=10)
    profiles_recompute_all()
    before = dict(VisitorProfile.objects.values_list("user_pseudo_id", "version"))

    profiles_recompute_all()

    after = dict(VisitorProfile.objects.values_list("user_pseudo_id", "version"))
    assert all(after[uid] == before[uid] + 1 for uid in before)


@pytest.mark.django_db
def test_resegment_command__all__prints_summary(capsys):
    demo_seed(visitors=20)

    call_command("resegment", "--all", "--quiet")

    assert "Re-segmented 20 visitors" in capsys.readouterr().out
    assert sum(segment_counts().values()) == 20


@pytest.mark.django_db
def test_resegment_command__neither_ids_nor_all__error():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("resegment")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_demo_seed__eager_celery__every_visitor_segmented():
    # `make run`: events stored → re-segmentation queued after commit → runs in-process.
    demo_seed(visitors=25)

    assert VisitorProfile.objects.count() == Visitor.objects.count() == 25


@pytest.mark.django_db
def test_conversion_by_variant__per_segment_and_arm():
    demo_seed(visitors=80)
    profiles_recompute_all()

    table = conversion_by_variant()

    total = sum(cell["visitors"] for arms in table.values() for cell in arms.values())
    assert total == VisitorProfile.objects.count()
    recruiters = table["RECRUITER"]["personalized"]
    assert 0 < recruiters["converted"] <= recruiters["visitors"]
    assert recruiters["rate"] == pytest.approx(
        recruiters["converted"] / recruiters["visitors"], abs=1e-4
    )


def wait_for_profile(uid: str, timeout: float = 30) -> VisitorProfile:
    """The task ignores its result (nobody reads it), so watch for its effect instead."""
    deadline = time.monotonic() + timeout
    while True:
        profile = VisitorProfile.objects.filter(user_pseudo_id=uid).first()
        if profile is not None:
            return profile
        assert time.monotonic() < deadline, f"the worker never wrote the profile of {uid}"
        time.sleep(0.2)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_resegment_task__real_worker__profile_written(celery_worker, postgres):
    from django.utils import timezone

    events_store(
        events=[
            EventIn(
                event_name="download_resume",
                user_pseudo_id="rec.1",
                occurred_at=timezone.now(),
                event_id=str(i),
            )
            for i in range(4)
        ]
    )

    resegment_visitor.apply_async(args=["rec.1"], queue=celery_worker.queue)

    profile = wait_for_profile("rec.1")
    assert profile.event_count == 4
    assert profile.segment == "RECRUITER"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_resegment_request__burst__one_task_then_profile(celery_worker, postgres, settings):
    from django.utils import timezone

    from portfolio.celery import app

    settings.RESEGMENT_DEBOUNCE_SECONDS = 2
    queued = []
    previous = app.conf.task_default_queue
    app.conf.task_default_queue = celery_worker.queue
    try:
        for burst in range(3):  # three requests in a row, each committed: one task
            events_store(
                events=[
                    EventIn(
                        event_name="download_resume",
                        user_pseudo_id="rec.2",
                        occurred_at=timezone.now(),
                        event_id=f"{burst}-{i}",
                    )
                    for i in range(2)
                ]
            )
            queued.append(djcache.get(pending_key("rec.2")))
        again = resegment_request(user_pseudo_ids=["rec.2"])
    finally:
        app.conf.task_default_queue = previous

    assert queued == [1, 1, 1]  # the first store set the pending mark; the others found it
    assert again == 0
    profile = wait_for_profile("rec.2")
    assert profile.event_count == 6  # the one task ran after the burst and saw all of it


@pytest.mark.django_db
def test_resegment_request__bulk_load__chunked_tasks_every_visitor(
    django_capture_on_commit_callbacks,
):
    from personalization.services import DEBOUNCE_UP_TO, RESEGMENT_CHUNK

    ids = [f"bulk.{i}" for i in range(RESEGMENT_CHUNK + DEBOUNCE_UP_TO)]

    queued = resegment_request(user_pseudo_ids=ids + ids[:5])  # repeats count once

    assert queued == len(ids)
    assert djcache.get(pending_key("bulk.0")) is None  # no per-visitor round trip
