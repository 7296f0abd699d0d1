"""A full Redis (``maxmemory`` with ``noeviction``) against nexus_project/broker.py's transport,
on a private redis-server of this test's own (the suite's Redis is shared, and this one's
memory limit is the fault)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py
from kombu import Connection, Queue
from kombu.exceptions import OperationalError
from kombu.transport import redis as kombu_redis

from nexus_project.broker import Transport
from tests.chaos.services import Redis, ServiceUnavailable

QUEUE = Queue("oom-test", routing_key="oom-test")


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[Redis]:
    try:
        server = Redis(tmp_path).start()
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


def fill(server: Redis) -> None:
    server.cli("CONFIG", "SET", "maxmemory", "1")
    assert server.cli("SET", "probe", "1") == "", "Redis accepted a write while full"


def consume_one_while_full(server: Redis, connection: Connection) -> list[Any]:
    """Declare and start consuming, then fill Redis, then take one message."""
    got: list[Any] = []
    with connection.Consumer(QUEUE, callbacks=[lambda body, message: got.append(message)]):
        fill(server)
        connection.drain_events(timeout=5)
    return got


def test_a_message_taken_while_redis_is_full_is_delivered_and_the_consumer_goes_on(full_redis: Redis) -> None:
    client = redis_py.Redis(port=full_redis.port)
    with Connection(full_redis.url, transport=Transport) as connection:
        connection.Producer().publish({"job": "a"}, routing_key="oom-test", declare=[QUEUE])

        got = consume_one_while_full(full_redis, connection)

        assert [m.payload for m in got] == [{"job": "a"}]
        # BRPOP took it and the full Redis kept no copy (no unacked entry, an empty queue):
        # from here the job's ledger row and the sweeper are what bring it back if this
        # process dies before finishing it.
        assert client.llen("oom-test") == 0
        assert client.hlen("unacked") == 0
        channel = got[0].channel
        assert channel.qos.can_consume()  # the prefetch count knows it
        full_redis.cli("CONFIG", "SET", "maxmemory", "0")
        got[0].ack()
        channel.qos._flush()  # kombu forgets acked tags lazily
        assert not channel.qos._delivered


def test_kombus_own_transport_stops_on_the_same_delivery(full_redis: Redis) -> None:
    # The reference: what made a Celery worker exit ("Unrecoverable error: OutOfMemoryError").
    with Connection(full_redis.url, transport=kombu_redis.Transport) as connection:
        connection.Producer().publish({"job": "a"}, routing_key="oom-test", declare=[QUEUE])
        with pytest.raises(redis_py.exceptions.OutOfMemoryError):
            consume_one_while_full(full_redis, connection)


def test_a_refused_publish_keeps_its_connection_and_the_next_one_goes_through(full_redis: Redis) -> None:
    client = redis_py.Redis(port=full_redis.port)
    with Connection(full_redis.url, transport=Transport) as connection:
        producer = connection.Producer()
        producer.publish({"job": "warm"}, routing_key="oom-test", declare=[QUEUE])
        channel = connection.default_channel
        fill(full_redis)

        with pytest.raises(OperationalError):
            producer.publish(
                {"job": "a"}, routing_key="oom-test", retry=True, retry_policy={"max_retries": 2}
            )

        assert connection.default_channel is channel and channel.connection is not None
        full_redis.cli("CONFIG", "SET", "maxmemory", "0")
        producer.publish({"job": "b"}, routing_key="oom-test", retry=True, retry_policy={"max_retries": 2})
        assert client.llen("oom-test") == 2
