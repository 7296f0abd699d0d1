"""kombu's Redis transport, with one synchronous ``redis.Redis`` client per channel pool.

kombu's Redis channel builds a new ``redis.Redis`` for every command it sends outside its
polling loop (``conn_or_acquire``): every publish, every ack, every event. redis-py 8 fills a
~170-entry response-callback table in each constructor, ~50 µs of CPU, which on the worker
lands on the consumer thread that every task goes through. Here the client is built once per
connection pool (rebuilt if kombu replaces the pool after a reconnect). A ``redis.Redis``
holds no connection of its own, so sharing it is safe; everything else is kombu's.

Selected with ``CELERY_BROKER_TRANSPORT = "nexus_project.broker:Transport"``; the broker URL
(``redis://…``) still says where Redis is.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
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
