"""Rule services audit every change and turn the rule set over; visitor_erase forgets all."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connections
from django.utils import timezone

from analytics.models import EventSource
from analytics.services import (
    ErasureCounts,
    EventIn,
    RejectedIn,
    events_store,
    rejected_events_store,
    visitor_erase,
)
from personalization import cache as p13n_cache
from personalization.models import (
    PersonalizationRule,
    RuleChange,
    RuleSetVersion,
    RuleStatus,
    Segment,
    VisitorProfile,
)
from personalization.services import (
    pending_key,
    rule_activate,
    rule_archive,
    rule_create,
    rule_delete,
    rule_update,
)


def ruleset():
    return RuleSetVersion.objects.get().version


def actions(rule_ref):
    return list(
        RuleChange.objects.filter(rule_ref=rule_ref).order_by("id").values_list("action", flat=True)
    )


@pytest.mark.django_db
def test_rule_create__draft__audited_bumped_and_published(django_capture_on_commit_callbacks):
    segment = Segment.objects.get(code="STUDENT")
    before = ruleset()

    with django_capture_on_commit_callbacks(execute=True):
        rule = rule_create(segment=segment, priority_sections=["projects"], actor="ann")

    assert (rule.version, rule.status, rule.created_by) == (2, RuleStatus.DRAFT, "ann")
    assert ruleset() == before + 1
    assert cache.get(p13n_cache.RULESET_KEY) == ruleset()
    change = RuleChange.objects.get(rule=rule)
    assert (change.action, change.actor, change.version, change.segment_code) == (
        "created",
        "ann",
        2,
        "STUDENT",
    )
    assert change.before is None
    assert change.after["priority_sections"] == ["projects"]


@pytest.mark.django_db
def test_rule_create__activate__archives_the_old_rule_with_entries():
    segment = Segment.objects.get(code="STUDENT")
    old = PersonalizationRule.objects.get(segment=segment)

    rule = rule_create(segment=segment, actor="llm-approval", activate=True)

    old.refresh_from_db()
    assert old.status == RuleStatus.ARCHIVED
    assert rule.status == RuleStatus.ACTIVE
    assert actions(rule.pk) == ["created", "activated"]
    assert actions(old.pk) == ["archived"]
    archived = RuleChange.objects.get(rule_ref=old.pk)
    assert (archived.before["status"], archived.after["status"]) == ("active", "archived")


@pytest.mark.django_db
def test_rule_update__draft__same_version_diff_recorded():
    rule = rule_create(segment=Segment.objects.get(code="CASUAL"), reasoning="a")
    before = ruleset()

    updated = rule_update(
        rule=rule, actor="bo", changes={"reasoning": "b", "highlight_skills": ("X",)}
    )

    assert updated.version == rule.version
    assert updated.highlight_skills == ["X"]
    assert ruleset() == before + 1
    change = RuleChange.objects.get(rule=rule, action="updated")
    assert (change.before["reasoning"], change.after["reasoning"]) == ("a", "b")
    assert change.actor == "bo"


@pytest.mark.django_db
def test_rule_update__active__next_version_number():
    rule = PersonalizationRule.objects.get(segment__code="CASUAL")
    rule_create(segment=rule.segment)  # a draft takes v2

    updated = rule_update(rule=rule, changes={"priority_sections": ["about"]})

    assert updated.version == 3
    assert updated.status == RuleStatus.ACTIVE


@pytest.mark.django_db
def test_rule_update__no_change__no_entry_no_bump():
    rule = PersonalizationRule.objects.get(segment__code="CASUAL")
    before = ruleset()

    rule_update(rule=rule, changes={"reasoning": rule.reasoning})

    assert ruleset() == before
    assert not RuleChange.objects.exists()


@pytest.mark.django_db
def test_rule_update__not_content__refused():
    rule = PersonalizationRule.objects.get(segment__code="CASUAL")

    with pytest.raises(ValueError, match="status"):
        rule_update(rule=rule, changes={"status": "archived"})


@pytest.mark.django_db
def test_rule_archive_and_delete__history_outlives_the_rule():
    rule = rule_create(segment=Segment.objects.get(code="RECRUITER"), actor="x")
    rule_activate(rule=rule, actor="x")
    rule_archive(rule=rule, actor="y")
    pk = rule.pk
    before = ruleset()

    rule_delete(rule=rule, actor="z")

    assert ruleset() == before + 1
    assert actions(pk) == ["created", "activated", "archived", "deleted"]
    assert not RuleChange.objects.filter(rule__isnull=False, rule_ref=pk).exists()
    deleted = RuleChange.objects.get(rule_ref=pk, action="deleted")
    assert (deleted.actor, deleted.after, deleted.before["status"]) == ("z", None, "archived")


@pytest.mark.django_db(transaction=True)
def test_rule_create__concurrent_for_one_segment__distinct_versions(postgres):
    segment = Segment.objects.get(code="ML_ENGINEER")

    def create(i):
        try:
            return rule_create(segment=segment, reasoning=str(i)).version
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=4) as pool:
        versions = list(pool.map(create, range(8)))

    assert sorted(versions) == list(range(2, 10))
    assert RuleChange.objects.filter(action="created").count() == 8


@pytest.mark.django_db
def test_visitor_erase__counts_and_cache(django_capture_on_commit_callbacks):
    from personalization.services import catalog_load_demo

    catalog_load_demo()
    now = timezone.now()
    uid = "erase.me"
    with django_capture_on_commit_callbacks(execute=True):
        events_store(
            events=[
                EventIn(
                    "project_click",
                    uid,
                    now - timedelta(minutes=i),
                    {"project_id": "llm-router"},
                    str(i),
                )
                for i in range(4)
            ]
        )
    rejected_events_store(
        source=EventSource.MP, items=[RejectedIn(payload={"client_id": uid}, reasons=[])]
    )
    assert VisitorProfile.objects.filter(user_pseudo_id=uid).exists()
    cache.set(pending_key(uid), 1)
    cache.set(p13n_cache.response_key(uid), (1, 1, b"{}"))

    with django_capture_on_commit_callbacks(execute=True):
        counts = visitor_erase(user_pseudo_id=uid)

    assert counts == ErasureCounts(events=4, visitors=1, rejected_events=1, profiles=1)
    assert cache.get(pending_key(uid)) is None
    assert cache.get(p13n_cache.response_key(uid)) is None
    assert visitor_erase(user_pseudo_id=uid) == ErasureCounts(0, 0, 0, 0)


@pytest.mark.django_db
def test_visitor_erase__cache_only_after_commit(django_capture_on_commit_callbacks):
    cache.set(p13n_cache.response_key("v.1"), (1, 0, b"{}"))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        visitor_erase(user_pseudo_id="v.1")
        assert cache.get(p13n_cache.response_key("v.1")) is not None

    assert len(callbacks) == 2  # cache entries, and the erasure ledger
