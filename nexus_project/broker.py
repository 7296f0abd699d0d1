"""kombu's Redis transport, with one synchronous ``redis.Redis`` client per channel pool.

kombu's Redis channel builds a new ``redis.Redis`` for every command it sends outside its
polling loop (``conn_or_acquire``): every publish, every ack, every event. redis-py 8 fills a
~170-entry response-callback table in each constructor, ~50 µs of CPU, which on the worker
lands on the consumer thread that every task goes through. Here the client is built once per
connection pool (rebuilt if kombu replaces the pool after a reconnect). A ``redis.Redis``
holds no connection of its own, so sharing it is safe; everything else is kombu's.

Its QoS also keeps a worker consuming when Redis is full (``maxmemory`` with ``noeviction``):
BRPOP has already taken the message off the queue when kombu records it in its unacked index
(ZADD + HSET), and Redis refuses that write. kombu lets the ``OutOfMemoryError`` escape Celery's
event loop and the worker exits ("Unrecoverable error"). Treating it as a connection error
would not save the message either: it is in no Redis key any more, and putting it back on the
queue is a write the full Redis refuses too. So the message is counted as delivered in this
process only and runs now. What it gives up is kombu's redelivery after the visibility timeout
if this worker dies before the ack; the job's ledger row covers that (its lease expires or its
dispatch passes the grace, and the sweeper publishes it again: SPEC §10).

Selected with ``CELERY_BROKER_TRANSPORT = "nexus_project.broker:Transport"``; the broker URL
(``redis://…``) still says where Redis is.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from redis.exceptions import OutOfMemoryError

logger = logging.getLogger(__name__)


class QoS(kombu_redis.QoS):
    def append(self, message: Any, delivery_tag: Any) -> None:
        try:
            super().append(message, delivery_tag)
        except OutOfMemoryError as error:
            # Neither key was written (the MULTI was discarded); count it here so the prefetch
            # limit and the ack see it, and let it run.
            virtual.QoS.append(self, message, delivery_tag)
            logger.warning(
                "a full Redis refused the unacked index of a delivered message; it runs now, and "
                "the ledger's sweeper republishes it if this worker dies first",
                extra={"error": type(error).__name__},
            )


class Channel(kombu_redis.Channel):
    QoS = QoS
    _sync_client: tuple[Any, Any] | None = None  # (pool, client)

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool
        cached = self._sync_client
        if cached is not None and cached[0] is pool:
            return cached[1]
        client = super()._create_client()
        self._sync_client = (pool, client)
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel
    # kombu's Redis transport does not split its errors into recoverable kinds, so kombu's
    # ``ensure`` (a publish with retry) takes every ``ResponseError`` for a broken connection:
    # a publish that a full Redis refuses closes the connection and its channel and opens new
    # ones, on each retry. Under the chaos suite's redis_oom that churn left a producer on a
    # closed channel once in a few runs, and its next publish raised AttributeError: a 500.
    # A refused write is the server's answer on a healthy connection: retried on the same
    # channel, then raised (kombu's OperationalError) for the caller, whose ledger row stays
    # the promise. Connection failures are recovered by reconnecting, as before.
    recoverable_connection_errors = kombu_redis.Transport.connection_errors
    recoverable_channel_errors = (OutOfMemoryError,)
