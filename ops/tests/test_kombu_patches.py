"""ops/kombu_patches.py on a real (private) Redis: the unacknowledged message a worker held when
it lost the broker is restored, not lost with an AttributeError."""

from __future__ import annotations

import shutil

import pytest
import redis
from kombu import Connection, Exchange, Producer, Queue

from conftest import require_service
from ops.tests.test_failure_drills import PrivateRedis, free_port


@pytest.fixture
def lone_redis(tmp_path):  # type: ignore[no-untyped-def]
    require_service("redis-server on PATH", shutil.which("redis-server") is not None)
    server = PrivateRedis(port=free_port(), directory=tmp_path)
    server.start()
    yield server
    server.kill()


def test_redis_channel__transport_collected__unacked_message_restored_not_lost(lone_redis):
    import portfolio.celery  # noqa: F401  (applies the patch, as every worker's import does)

    queue = Queue("drill", Exchange("drill"), "drill")
    with Connection(lone_redis.url) as connection:
        channel = connection.channel()
        Producer(channel).publish(
            {"n": 1}, exchange=queue.exchange, routing_key="drill", declare=[queue]
        )
        message = queue(channel).get(no_ack=False)
        assert message is not None
        assert len(channel.qos._delivered) == 1
        # What the consumer's connection.collect() leaves after the broker went away: the
        # channel's pools dropped and the transport's connection info gone.
        channel._disconnect_pools()
        channel.connection.client = None

        channel.qos.restore_unacked_once()  # kombu 5.7.0 alone: AttributeError 'hostname'

    assert redis.Redis.from_url(lone_redis.url).llen("drill") == 1  # back in its queue


def test_kombu_redis_restore_patch__applied_twice__wraps_once():
    from kombu.transport import redis as kombu_redis

    from ops.kombu_patches import kombu_redis_restore_patch

    kombu_redis_restore_patch()
    patched = kombu_redis.Channel._connparams
    kombu_redis_restore_patch()

    assert kombu_redis.Channel._connparams is patched
    assert patched.__module__ == "ops.kombu_patches"
