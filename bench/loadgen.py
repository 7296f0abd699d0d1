"""An open-loop HTTP load generator on asyncio: requests leave on a fixed schedule, and each
latency is measured from its scheduled time, so a slow server cannot slow the client down and
hide its own queueing (coordinated omission). One connection per request: gunicorn's sync
workers close after every response anyway."""

from __future__ import annotations

import asyncio
import json
import random
import time
import zlib
from dataclasses import dataclass, field

WORDS = [
    "hola", "me", "llamo", "quiero", "saber", "sobre", "la", "oportunidad", "de", "negocio",
    "trabajo", "en", "una", "empresa", "tengo", "tiempo", "familia", "precio", "inversion",
    "gracias", "por", "favor", "como", "funciona", "el", "plan", "mensual",
]  # fmt: skip


def conversation(rng: random.Random, turns: int | None = None) -> list[dict[str, str]]:
    """A 1-2 KB conversation, like the wrk script's."""
    turns = turns or rng.randint(4, 6)
    return [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": " ".join(rng.choice(WORDS) for _ in range(rng.randint(25, 45))),
        }
        for i in range(turns)
    ]


def producer_body(session: str, messages: list[dict[str, str]]) -> bytes:
    return json.dumps(
        {
            "messages": messages,
            "sessionId": session,
            "fingerprint": f"fp-{session}",
            "metadata": {"url": "https://example.com/oportunidad", "userAgent": "Mozilla/5.0 (bench)"},
        }
    ).encode()


def visitor_ip(key: str) -> str:
    """A stable address per session: every visitor comes through the one proxy with its own
    X-Forwarded-For (the bench runs with NUM_PROXIES=1), as in production."""
    n = zlib.crc32(key.encode())
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{1 + n % 254}"


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    sent_at: dict[str, float] = field(default_factory=dict)  # key -> wall-clock send time
    # bursts(): key -> (sent, answered) wall-clock times of each POST, in order
    posts: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    errors: int = 0
    # How late the client itself sent each request against its schedule: if this grows, the
    # client (not the server) is the bottleneck and the latencies measure the client.
    send_lag_ms: list[float] = field(default_factory=list)
    client_cpu_s: float = 0.0
    wall_s: float = 0.0

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)


async def _post(host: str, port: int, path: str, body: bytes, xff: str) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"X-Forwarded-For: {xff}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        writer.write(head + body)
        await writer.drain()
        status_line = await reader.readline()
        await reader.read()  # to EOF: the server closes (Connection: close)
        return int(status_line.split()[1])
    finally:
        writer.close()


async def paced(host: str, port: int, path: str, rate: float, requests: list[tuple[str, bytes]]) -> Result:
    """POST ``requests`` ((key, body) pairs, built beforehand) at ``rate`` per second.

    One sender walks the schedule and starts each request at its due time; latency counts
    from that due time. Bodies are built before the clock starts: building them inside the
    schedule (as a first version did) made the first requests late by the build time, and
    that client-side delay showed up as the server's p99."""
    result = Result()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    start = time.perf_counter() + 0.05

    async def one(key: str, body: bytes, due: float) -> None:
        result.sent_at[key] = time.time()
        try:
            status = await asyncio.wait_for(_post(host, port, path, body, visitor_ip(key)), 30)
        except (OSError, TimeoutError, ValueError, IndexError):
            result.errors += 1
            return
        result.latencies_ms.append((time.perf_counter() - due) * 1000)
        result.count(status)

    tasks = []
    for i, (key, body) in enumerate(requests):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        result.send_lag_ms.append(max(0.0, time.perf_counter() - due) * 1000)
        tasks.append(asyncio.ensure_future(one(key, body, due)))
    await asyncio.gather(*tasks)
    result.client_cpu_s = time.process_time() - cpu0
    result.wall_s = time.perf_counter() - wall0
    return result


async def bursts(
    host: str, port: int, path: str, sessions: list[tuple[str, list[bytes]]], concurrency: int
) -> Result:
    """Each session sends its bodies one after another; ``concurrency`` sessions at a time."""
    result = Result()
    queue: asyncio.Queue[tuple[str, list[bytes]]] = asyncio.Queue()
    for item in sessions:
        queue.put_nowait(item)

    async def worker() -> None:
        while not queue.empty():
            key, bodies = queue.get_nowait()
            for body in bodies:
                t0, wall0 = time.perf_counter(), time.time()
                try:
                    status = await asyncio.wait_for(_post(host, port, path, body, visitor_ip(key)), 30)
                except (OSError, TimeoutError, ValueError, IndexError):
                    result.errors += 1
                    continue
                result.latencies_ms.append((time.perf_counter() - t0) * 1000)
                result.posts.setdefault(key, []).append((wall0, time.time()))
                result.count(status)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return result


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return round(ordered[index], 2)
