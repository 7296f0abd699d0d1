"""A slow dependency in user space: a TCP relay that forwards every chunk it reads
``delay_s`` later, in each direction, in order (a chunk is not held behind the previous one's
delay: the delays overlap, as a long link's do).

Why not ``tc qdisc ... netem delay 200ms`` on the veth, as the issue first said: the kernels
this suite runs on (CI containers, this machine) are built without ``sch_netem``; ``tc``
answers "Specified qdisc kind is unknown". A relay adds the same latency to every round trip
(a query, a Redis command) without a kernel module, on loopback, with no root needed; it
delays reads of whole chunks rather than single packets, which for request/response
protocols like PostgreSQL's and Redis's is the same thing.

    with DelayRelay(upstream_port) as relay:   # clients connect to 127.0.0.1:relay.port
        relay.delay_s = 0.2                     # from now on, each chunk read is held 200 ms
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any


class DelayRelay:
    def __init__(self, upstream_port: int, delay_s: float = 0.0, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay_s = delay_s
        self.port = 0
        self.connections = 0
        self.chunks = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="delay-relay")

    def __enter__(self) -> DelayRelay:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("delay relay did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._server.close()

    async def _connection(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        self.connections += 1
        await asyncio.gather(self._direction(client_r, up_w), self._direction(up_r, client_w))

    async def _direction(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        """Read chunks as they come; each is written ``delay_s`` after it was read."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def read() -> None:
            with contextlib.suppress(OSError):
                while chunk := await source.read(65536):
                    queue.put_nowait((time.monotonic() + self.delay_s, chunk))
            queue.put_nowait((time.monotonic() + self.delay_s, b""))  # EOF, delayed like data

        async def write() -> None:
            try:
                while True:
                    due, chunk = await queue.get()
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    if not chunk:
                        break
                    self.chunks += 1
                    sink.write(chunk)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.close()

        await asyncio.gather(read(), write())
