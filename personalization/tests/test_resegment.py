import contextlib
import time
import uuid

import pytest
from django.core.management import call_command

from analytics.models import Visitor
from analytics.services import EventIn, events_store
from ops.services import demo_seed
from personalization.models import VisitorProfile
from personalization.recompute import profiles_recompute_all
from personalization.selectors import conversion_by_variant, segment_counts
from personalization.services import (
    pending_visitors_drain,
    resegment_pending,
    resegment_request,
    visitor_resegment,
    visitors_resegment,
)
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
            queued.append(resegment_pending("rec.2"))
        again = resegment_request(user_pseudo_ids=["rec.2"])
    finally:
        app.conf.task_default_queue = previous

    assert queued == [True, True, True]  # the first store marked it; the others found it
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
    assert not resegment_pending("bulk.0")  # no per-visitor round trip


def _recruiter_events(uid, n=4, start=0):
    from django.utils import timezone

    return [
        EventIn(
            event_name="download_resume",
            user_pseudo_id=uid,
            occurred_at=timezone.now(),
            event_id=f"{uid}-{start + i}",
        )
        for i in range(n)
    ]


@pytest.mark.django_db
def test_visitors_resegment__batch__same_profiles_as_one_by_one():
    from django.utils import timezone

    demo_seed(visitors=30)
    ids = sorted(Visitor.objects.values_list("user_pseudo_id", flat=True))
    now = timezone.now()

    batch = visitors_resegment(user_pseudo_ids=ids, now=now)
    batch_rows = {
        p.user_pseudo_id: (p.segment, p.scores, p.explanation, p.version)
        for p in VisitorProfile.objects.all()
    }
    for uid in ids:
        visitor_resegment(user_pseudo_id=uid, now=now)

    assert set(batch) == set(ids)
    one_by_one = {
        p.user_pseudo_id: (p.segment, p.scores, p.explanation, p.version)
        for p in VisitorProfile.objects.all()
    }
    assert one_by_one == batch_rows  # same answers, so no version moved


@pytest.mark.django_db
def test_visitors_resegment__new_events__only_changed_profiles_bump_version():
    events_store(events=_recruiter_events("a.1") + _recruiter_events("a.2"))
    visitors_resegment(user_pseudo_ids=["a.1", "a.2"])
    events_store(events=_recruiter_events("a.2", n=1, start=10))

    profiles = visitors_resegment(user_pseudo_ids=["a.1", "a.2", "a.nobody"])

    assert set(profiles) == {"a.1", "a.2"}  # no events, no profile
    versions = dict(VisitorProfile.objects.values_list("user_pseudo_id", "version"))
    assert versions == {"a.1": 1, "a.2": 2}
    assert VisitorProfile.objects.get(user_pseudo_id="a.2").event_count == 5


@pytest.mark.django_db
def test_visitors_resegment__after_commit__next_request_is_a_cache_hit(
    client, django_capture_on_commit_callbacks, django_assert_num_queries
):
    from personalization.services import catalog_load_demo

    catalog_load_demo()
    events_store(events=_recruiter_events("warm.1"))
    with django_capture_on_commit_callbacks(execute=True):
        visitors_resegment(user_pseudo_ids=["warm.1"])

    with django_assert_num_queries(0):
        body = client.get("/api/personalization", {"user_id": "warm.1"}).json()

    profile = VisitorProfile.objects.get(user_pseudo_id="warm.1")
    assert body["segment"] == profile.segment == "RECRUITER"
    assert body["confidence"] == round(profile.confidence, 4)


@contextlib.contextmanager
def tasks_held():
    """Celery not eager, publishing to a queue of the test's own that no worker reads: yields a
    function that counts the messages waiting there (any broker); the queue goes at the end."""
    from portfolio.celery import app

    queue = f"held-{uuid.uuid4().hex[:8]}"
    eager, default = app.conf.task_always_eager, app.conf.task_default_queue
    app.conf.task_always_eager, app.conf.task_default_queue = False, queue

    def waiting() -> int:
        with app.connection_for_write() as conn:
            return conn.default_channel.queue_declare(queue=queue, passive=True).message_count

    try:
        yield waiting
    finally:
        app.conf.task_always_eager, app.conf.task_default_queue = eager, default
        with app.connection_for_write() as conn, contextlib.suppress(Exception):
            conn.default_channel.queue_purge(queue)
            conn.default_channel.queue_delete(queue)


@pytest.mark.django_db
def test_resegment_request__redis__one_drain_per_window_then_all_scored(redis_url):
    events_store(events=_recruiter_events("d.1") + _recruiter_events("d.2"))

    with tasks_held() as waiting:
        first = resegment_request(user_pseudo_ids=["d.1", "d.2"])
        second = resegment_request(user_pseudo_ids=["d.1", "d.3"])
        scheduled = waiting()

    assert (first, second) == (2, 1)  # d.1 was pending already
    assert scheduled == 1  # one drain for the window, not one message per event
    assert all(resegment_pending(uid) for uid in ("d.1", "d.2", "d.3"))

    assert pending_visitors_drain() == 3

    assert not any(resegment_pending(uid) for uid in ("d.1", "d.2", "d.3"))
    assert set(VisitorProfile.objects.values_list("user_pseudo_id", flat=True)) == {"d.1", "d.2"}


@pytest.mark.django_db
def test_pending_visitors_drain__more_than_one_run__next_run_scheduled(redis_url):
    ids = [f"m.{i}" for i in range(5)]
    events_store(events=[e for uid in ids for e in _recruiter_events(uid, n=1)])
    with tasks_held() as waiting:
        resegment_request(user_pseudo_ids=ids)
        scheduled = waiting()

        scored = pending_visitors_drain(batch=2, max_batches=2)

        assert (scheduled, scored) == (1, 4)
        assert sum(resegment_pending(uid) for uid in ids) == 1
        assert waiting() == 2  # the follow-up run, right away
        assert pending_visitors_drain() == 1
    assert VisitorProfile.objects.filter(user_pseudo_id__in=ids).count() == 5


@pytest.mark.django_db(transaction=True)
def test_pending_visitors_drain__one_visitor_breaks_the_batch__others_scored(
    redis_url, postgres, caplog
):
    events_store(events=_recruiter_events("f.1") + _recruiter_events("f.2"))
    with tasks_held():
        resegment_request(user_pseudo_ids=["f.1", "f\x00bad", "f.2"])  # PostgreSQL refuses NUL

        scored = pending_visitors_drain()

    assert scored == 2
    assert set(VisitorProfile.objects.values_list("user_pseudo_id", flat=True)) == {"f.1", "f.2"}
    assert not resegment_pending("f\x00bad")  # logged, not retried forever
    assert any(r.message == "p13n.resegment.failed" for r in caplog.records)


@pytest.mark.django_db
def test_resegment_request__other_cache__pending_mark_then_task(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    events_store(events=_recruiter_events("l.1"))

    with tasks_held() as waiting:
        queued = resegment_request(user_pseudo_ids=["l.1"])
        again = resegment_request(user_pseudo_ids=["l.1"])
        scheduled = waiting()

    assert (queued, again, scheduled) == (1, 0, 1)
    assert resegment_pending("l.1")
