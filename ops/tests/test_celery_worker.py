"""A real `celery worker` process, a real broker: the task leaves this process and comes back."""

import uuid

from ops.tasks import ping


def test_ping_task__real_worker__returns_reply(celery_worker):
    payload = uuid.uuid4().hex

    result = ping.apply_async(args=[payload], queue=celery_worker.queue)

    assert result.get(timeout=30) == {"reply": payload}
    assert result.successful()
