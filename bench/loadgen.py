"""An open-loop HTTP load generator on asyncio: requests leave on a fixed schedule, and each
latency is measured from its scheduled time, so a slow server cannot slow the client down and
hide its own queueing (coordinated omission). One connection per request: gunicorn's sync
workers close after every response anyway."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
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


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    sent_at: dict[str, float] = field(default_factory=dict)  # key -> wall-clock send time
    errors: int = 0


async def _post(host: str, port: int, path: str, body: bytes) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        writer.write(head + body)
        await writer.drain()
        status_line = await reader.readline()
        await reader.read()  # to EOF: the server closes (Connection: close)
        return int(status_line.split()[1])
    finally:
        writer.close()


async def paced(
    host: str,
    port: int,
    path: str,
    rate: float,
    duration: float,
    make_body: Callable[[int], tuple[str, bytes]],
) -> Result:
    """POST at ``rate`` per second for ``duration`` seconds; ``make_body(i)`` -> (key, body)."""
    result = Result()
    total = int(rate * duration)
    start = time.perf_counter() + 0.05
    tasks = []

    async def one(i: int) -> None:
        key, body = make_body(i)
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        result.sent_at[key] = time.time()
        try:
            status = await asyncio.wait_for(_post(host, port, path, body), 30)
        except (OSError, TimeoutError, ValueError, IndexError):
            result.errors += 1
            return
        result.latencies_ms.append((time.perf_counter() - due) * 1000)
        result.statuses[status] = result.statuses.get(status, 0) + 1

    for i in range(total):
        tasks.append(asyncio.ensure_future(one(i)))
    await asyncio.gather(*tasks)
    return result


async def bursts(host: str, port: int, path: str, sessions: list[list[bytes]], concurrency: int) -> Result:
    """Each session sends its bodies one after another; ``concurrency`` sessions at a time."""
    result = Result()
    queue: asyncio.Queue[list[bytes]] = asyncio.Queue()
    for bodies in sessions:
        queue.put_nowait(bodies)

    async def worker() -> None:
        while not queue.empty():
            for body in queue.get_nowait():
                t0 = time.perf_counter()
                try:
                    status = await asyncio.wait_for(_post(host, port, path, body), 30)
                except (OSError, TimeoutError, ValueError, IndexError):
                    result.errors += 1
                    continue
                result.latencies_ms.append((time.perf_counter() - t0) * 1000)
                result.statuses[status] = result.statuses.get(status, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return result


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return round(ordered[index], 2)
