"""A real `celery worker` serves its metrics on CELERY_METRICS_PORT: task counts and durations
from whichever process ran the task (prefork children included), queue lengths, the same
protection as /metrics, and JSON log lines that carry the publishing request's id."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT, run_celery_worker
from ops.context import request_id_var
from ops.tasks import ping

from .servers import free_port, http_get, labels, parse_samples, wait_for

TOKEN = "worker-scrape-token-42"
REQUEST_ID = "req-from-web-00042"
TASKS = 4


@pytest.mark.services
@pytest.mark.real_worker
@pytest.mark.parametrize(
    "worker_args", [(), ("--pool=prefork", "--concurrency=2")], ids=["solo", "prefork"]
)
def test_worker_metrics_port__tasks_run__counted_timed_protected_and_logged(
    worker_args, tmp_path, django_db_setup
):
    port = free_port()
    multiprocess_dir = tmp_path / "prometheus"
    multiprocess_dir.mkdir()
    url = f"http://127.0.0.1:{port}/metrics"
    auth = {"Authorization": f"Bearer {TOKEN}"}

    with run_celery_worker(
        *worker_args,
        CELERY_METRICS_PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(multiprocess_dir),
        METRICS_BEARER_TOKEN=TOKEN,
        LOG_FORMAT="json",
    ) as worker:
        published = request_id_var.set(REQUEST_ID)  # as if queued by a web request
        try:
            results = [ping.apply_async(args=[str(i)], queue=worker.queue) for i in range(TASKS)]
        finally:
            request_id_var.reset(published)
        for result in results:
            assert result.get(timeout=30)["reply"]

        # The counters move in task_postrun, just after the result is stored.
        def counted() -> bool:
            status, _, body = http_get(url, auth)
            succeeded = parse_samples(body).get("celery_tasks_total", {})
            return status == 200 and succeeded.get(
                labels(task="ops.tasks.ping", state="succeeded")
            ) == float(TASKS)

        assert wait_for(counted, timeout=15), http_get(url, auth)
        samples = parse_samples(http_get(url, auth)[2])
        unauthorized, headers, _ = http_get(url)
        log_lines = [
            json.loads(line)
            for line in (ROOT / "var" / f"{worker.queue}.log").read_text().splitlines()
            if line.startswith("{")
        ]

    assert samples["celery_task_duration_seconds_count"][labels(task="ops.tasks.ping")] == TASKS
    assert samples["celery_queue_length"][labels(queue=worker.queue)] == 0
    assert unauthorized == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    if worker_args:
        # The main process serves; the children ran the tasks and wrote their own files.
        writers = {path.stem.rsplit("_", 1)[1] for path in multiprocess_dir.glob("counter_*.db")}
        assert writers - {str(worker.process.pid)}
    task_ids = {result.id for result in results}
    task_lines = [line for line in log_lines if line.get("task_id") in task_ids]
    assert {line["task_id"] for line in task_lines} == task_ids
    assert {line["task_name"] for line in task_lines} == {"ops.tasks.ping"}
    assert {line["request_id"] for line in task_lines} == {REQUEST_ID}
