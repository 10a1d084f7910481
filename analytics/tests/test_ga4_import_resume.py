"""A GA4 import whose worker died resumes by itself (issue 18 item 9): the upload's heartbeat
stops moving, and a periodic sweep re-queues it; a live or finished import is left alone."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from analytics.ga4_export import import_export_file, import_upload
from analytics.models import Event, GA4ExportUpload, ImportStatus
from analytics.tasks import import_uploads_resume
from analytics.tests.test_ga4_export import T0, export_row

pytestmark = pytest.mark.django_db


def _upload(tmp_path, settings, rows: int = 5, **fields) -> GA4ExportUpload:
    settings.MEDIA_ROOT = tmp_path
    lines = [export_row(user=f"{i}.1", micros=T0 + i) for i in range(rows)]
    data = gzip.compress("".join(json.dumps(line) + "\n" for line in lines).encode())
    return GA4ExportUpload.objects.create(file=ContentFile(data, name="export.json.gz"), **fields)


def _sweep(capture) -> None:
    with capture(execute=True):
        import_uploads_resume.apply()


def test_import_uploads_resume__running_heartbeat_stale__requeued_and_finished(
    tmp_path, settings, django_capture_on_commit_callbacks
):
    long_ago = timezone.now() - timedelta(seconds=settings.GA4_IMPORT_STALE_SECONDS + 60)
    upload = _upload(tmp_path, settings, status=ImportStatus.RUNNING, heartbeat_at=long_ago)

    _sweep(django_capture_on_commit_callbacks)

    upload.refresh_from_db()
    assert upload.status == ImportStatus.DONE
    assert (upload.rows_read, upload.rows_imported) == (5, 5)
    assert upload.heartbeat_at is not None
    assert upload.heartbeat_at > long_ago
    assert Event.objects.count() == 5


def test_import_uploads_resume__running_before_heartbeats_existed__requeued(
    tmp_path, settings, django_capture_on_commit_callbacks
):
    upload = _upload(tmp_path, settings, status=ImportStatus.RUNNING)
    GA4ExportUpload.objects.filter(pk=upload.pk).update(
        uploaded_at=timezone.now() - timedelta(hours=2)
    )

    _sweep(django_capture_on_commit_callbacks)

    upload.refresh_from_db()
    assert upload.status == ImportStatus.DONE


@pytest.mark.parametrize(
    ("status", "heartbeat_age"),
    [
        (ImportStatus.RUNNING, 5),  # alive: its worker moved the heartbeat 5 s ago
        (ImportStatus.PENDING, None),  # just uploaded, queued by admin
        (ImportStatus.DONE, 10_000),
        (ImportStatus.FAILED, 10_000),
    ],
)
def test_import_uploads_resume__live_new_or_finished__untouched(
    tmp_path, settings, django_capture_on_commit_callbacks, status, heartbeat_age
):
    beat = None if heartbeat_age is None else timezone.now() - timedelta(seconds=heartbeat_age)
    upload = _upload(tmp_path, settings, status=status, heartbeat_at=beat)

    _sweep(django_capture_on_commit_callbacks)

    upload.refresh_from_db()
    assert upload.status == status
    assert upload.heartbeat_at == beat
    assert Event.objects.count() == 0


def test_import_upload__resume_of_an_import_already_finished__skipped(tmp_path, settings):
    upload = _upload(tmp_path, settings)
    import_upload(upload.pk)
    upload.refresh_from_db()
    before = (upload.status, upload.rows_imported, upload.finished_at)

    import_upload(upload.pk, resume=True)  # a duplicate resume message

    upload.refresh_from_db()
    assert (upload.status, upload.rows_imported, upload.finished_at) == before


def test_import_upload__redelivered_after_the_sweep_finished_it__skipped(tmp_path, settings):
    upload = _upload(tmp_path, settings)
    import_upload(upload.pk)
    upload.refresh_from_db()
    before = (upload.status, upload.rows_imported, upload.rows_duplicate, upload.finished_at)

    import_upload(upload.pk, redelivered=True)

    upload.refresh_from_db()
    assert (
        upload.status,
        upload.rows_imported,
        upload.rows_duplicate,
        upload.finished_at,
    ) == before


def test_import_upload__redelivered_unfinished__runs(tmp_path, settings):
    upload = _upload(tmp_path, settings, status=ImportStatus.RUNNING, heartbeat_at=timezone.now())

    import_upload(upload.pk, redelivered=True)  # its run was killed: the broker hands it back

    upload.refresh_from_db()
    assert upload.status == ImportStatus.DONE
    assert Event.objects.count() == 5


def test_import_upload__resume_while_alive__skipped(tmp_path, settings):
    upload = _upload(tmp_path, settings, status=ImportStatus.RUNNING, heartbeat_at=timezone.now())

    import_upload(upload.pk, resume=True)

    assert Event.objects.count() == 0


def test_import_export_file__on_batch__called_after_each_stored_batch(tmp_path, settings):
    upload = _upload(tmp_path, settings, rows=6)
    seen = []

    import_export_file(
        upload.file.path,
        batch_size=2,
        on_batch=lambda summary: seen.append((summary.rows_read, Event.objects.count())),
    )

    assert seen[:3] == [(2, 2), (4, 4), (6, 6)]


def test_import_upload__done__heartbeat_recorded(tmp_path, settings):
    upload = _upload(tmp_path, settings)
    started = timezone.now()

    import_upload(upload.pk)

    upload.refresh_from_db()
    assert upload.heartbeat_at is not None
    assert upload.heartbeat_at >= started


def test_beat_schedule__import_resume_sweep__every_sweep_interval(settings):
    from portfolio.celery import app

    entry = app.conf.beat_schedule["analytics-ga4-import-resume"]
    assert entry["task"] == "analytics.tasks.import_uploads_resume"
    assert entry["schedule"] == settings.GA4_IMPORT_SWEEP_SECONDS
    assert settings.GA4_IMPORT_SWEEP_SECONDS + settings.GA4_IMPORT_STALE_SECONDS <= 600
