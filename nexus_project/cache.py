"""Django's Redis cache, with one ``redis.Redis`` client per connection pool instead of one per
call.

Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis`` for every cache operation,
and redis-py 8 fills a ~170-entry response-callback table in each constructor: ~50 µs of CPU
per get or set, more than the Redis round trip itself. The producer makes four cache calls per
POST (two throttles, a read and a write each) and the worker several per job, so the client
is built once per pool here and reused. A ``redis.Redis`` holds no connection of its own (the
pool hands one out per command), so sharing it between threads is what redis-py intends.
Everything else (serializer, pools, options, failure behaviour) is Django's.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, servers: Any, **options: Any) -> None:
        super().__init__(servers, **options)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        client = self._clients.get(id(pool))
        if client is None:  # a race builds two; either is fine
            client = self._clients[id(pool)] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient

    def server_time(self) -> float:
        """The Redis server's clock (``TIME``), in seconds: the one clock for deadlines kept in
        the cache, which every process reads whatever its own host's clock says."""
        seconds, micros = self._cache.get_client(write=True).time()
        return float(seconds) + micros / 1_000_000
