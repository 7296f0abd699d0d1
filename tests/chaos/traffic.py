"""Scripted widget traffic and the load client that plays it.

The script is deterministic (seeded): 300 sessions, each POSTing its conversation after every
visitor message (4 growing transcripts). 50 visitors come back for a second session, sent in
a second phase after every first-phase POST was answered, so the order of each visitor's
sessions (what the Prospect fold follows) is the same in every run.

The client behaves like the widget: on 429 or 503 it retries the same body after the answer's
``Retry-After`` (plus up to half as much again of jitter, so the retries do not come back
together), on a refused or dropped connection or a timeout with exponential backoff and full
jitter, until accepted or its deadline passes. Every answer it saw is counted, retries
included, and every attempt's latency is kept (``Tally.attempts``).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

SESSIONS = 300
RETURNING = 50  # visitors with a second session
TURNS = 4  # visitor messages per session: one POST after each
PHASE_1_SPREAD_S = 12.0  # first-phase sessions start over this long
PHASE_2_SPREAD_S = 3.0
TYPING_GAP_S = (0.8, 1.6)  # between a visitor's messages

NAMES = [
    "Juan Pérez", "Ana López", "María García", "Carlos Ruiz", "Lucía Fernández", "Pedro Gómez",
    "Sofía Martínez", "Diego Torres", "Valentina Díaz", "Andrés Morales", "Camila Rojas",
    "Jorge Herrera", "Isabel Castro", "Miguel Vargas", "Paula Jiménez", "Luis Romero",
]  # fmt: skip
INTRODUCTIONS = ["Me llamo {name}", "Soy {name}", "Mi nombre es {name}", "My name is {name}", ""]
SITUATIONS = [
    "Trabajo como contador en una empresa", "Tengo mi propio negocio de comida",
    "Soy estudiante en la universidad", "Trabajo por cuenta propia, soy freelance",
    "Soy ama de casa y cuido a mis hijos", "Dirijo un equipo en mi iglesia",
    "I work as an accountant", "Cuéntame un poco más, por favor",
]  # fmt: skip
REACTIONS = [
    "Quiero empezar cuanto antes", "Me parece caro", "No tengo tiempo para esto",
    "¿Esto es una pirámide?", "No me interesa, gracias", "Me interesa la inversión",
    "No sé si confiar", "Suena bien",
]  # fmt: skip
CONTACTS = [
    "Mi correo es {email}", "Mi teléfono es +52 55 {a} {b}", "Prefiero no dar mis datos todavía",
    "Escríbeme a {email} o llámame al +34 6{a}{b}",
]  # fmt: skip
ASSISTANT = [
    "¡Hola! ¿En qué puedo ayudarte?",
    "Entiendo. ¿Qué más te gustaría saber?",
    "Gracias por contarme.",
]


@dataclass(frozen=True)
class Session:
    session_id: str
    fingerprint: str
    phase: int
    transcripts: tuple[tuple[dict[str, str], ...], ...]  # one per POST, growing
    start_s: float  # offset within its phase
    gaps_s: tuple[float, ...]  # before each later POST

    @property
    def final(self) -> list[dict[str, str]]:
        return list(self.transcripts[-1])


def _visitor_lines(rng: random.Random, index: int) -> list[str]:
    name = rng.choice(NAMES)
    user = f"user{index:03d}.{rng.randint(10, 99)}@example.com"
    first = f"Hola, buenas (consulta {index:03d}). " + rng.choice(INTRODUCTIONS).format(name=name)
    contact = rng.choice(CONTACTS).format(email=user, a=rng.randint(1000, 9999), b=rng.randint(1000, 9999))
    return [first.strip(), rng.choice(SITUATIONS), rng.choice(REACTIONS), contact]


def script(seed: int = 2026) -> list[Session]:
    """The scripted traffic; the same seed gives the same traffic in every run."""
    rng = random.Random(seed)
    sessions = []
    for index in range(SESSIONS):
        returning = index >= SESSIONS - RETURNING
        visitor = index - (SESSIONS - RETURNING) if returning else index
        lines = _visitor_lines(rng, index)
        messages: list[dict[str, str]] = []
        transcripts = []
        for turn, line in enumerate(lines):
            if turn:
                messages.append({"role": "assistant", "content": ASSISTANT[turn % len(ASSISTANT)]})
            messages.append({"role": "user", "content": line})
            transcripts.append(tuple(messages))
        spread = PHASE_2_SPREAD_S if returning else PHASE_1_SPREAD_S
        sessions.append(
            Session(
                session_id=f"chaos-{index:03d}",
                fingerprint=f"visitor-{visitor:03d}",
                phase=2 if returning else 1,
                transcripts=tuple(transcripts),
                start_s=rng.uniform(0, spread),
                gaps_s=tuple(rng.uniform(*TYPING_GAP_S) for _ in range(TURNS - 1)),
            )
        )
    return sessions


@dataclass
class Post:
    """One logical POST of the script: the client retries it until it is accepted."""

    session: Session
    transcript: int  # index into session.transcripts
    delay_s: float  # after the previous POST of its lane


@dataclass
class Tally:
    posts: int = 0
    accepted: int = 0  # eventually answered 202
    answers: Counter[str] = field(default_factory=Counter)  # every answer seen, retries included
    flags: Counter[str] = field(default_factory=Counter)  # duplicate / stale among the 202s
    gave_up: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # answers the widget cannot act on
    accepted_sessions: set[str] = field(default_factory=set)
    # (started, seconds, answer) of every attempt, monotonic clock: latency during a fault
    attempts: list[tuple[float, float, str]] = field(default_factory=list)
    retry_after_waits: int = 0  # retries that waited out a Retry-After
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def server_errors(self) -> dict[str, int]:
        """5xx answers other than the documented 503 (database unavailable)."""
        return {k: v for k, v in self.answers.items() if k.startswith("5") and k != "503"}


RETRYABLE = {429, 503}


class LoadClient:
    """Plays lanes of POSTs: a lane sends its POSTs in order, lanes run concurrently."""

    def __init__(self, port: int, *, deadline_s: float = 90.0) -> None:
        self.port = port
        self.deadline_s = deadline_s
        self.tally = Tally()
        self.started_at = 0.0
        self.sent = 0  # first attempts so far: scenarios time their faults on it

    def run(self, phases: list[list[list[Post]]]) -> Tally:
        """Each phase is a list of lanes; a phase starts once the previous one is answered."""
        self.started_at = time.monotonic()
        for lanes in phases:
            asyncio.run(self._phase(lanes))
        return self.tally

    async def _phase(self, lanes: list[list[Post]]) -> None:
        await asyncio.gather(*(self._lane(lane) for lane in lanes))

    async def _lane(self, lane: list[Post]) -> None:
        for post in lane:
            await asyncio.sleep(post.delay_s)
            await self._send(post)

    async def _send(self, post: Post) -> None:
        body = json.dumps(
            {
                "messages": list(post.session.transcripts[post.transcript]),
                "sessionId": post.session.session_id,
                "fingerprint": post.session.fingerprint,
                "metadata": {"url": "https://example.com/oportunidad", "userAgent": "chaos-widget/1.0"},
            }
        ).encode()
        self.sent += 1
        with self.tally.lock:
            self.tally.posts += 1
        deadline = time.monotonic() + self.deadline_s
        attempt = 0
        while True:
            began = time.monotonic()
            status, answer, retry_after = await self._attempt(body)
            key = str(status) if status else "connection_error"
            with self.tally.lock:
                self.tally.answers[key] += 1
                self.tally.attempts.append((began, time.monotonic() - began, key))
            if status == 202:
                with self.tally.lock:
                    self.tally.accepted += 1
                    self.tally.accepted_sessions.add(post.session.session_id)
                    for flag in ("duplicate", "stale"):
                        if answer.get(flag):
                            self.tally.flags[flag] += 1
                return
            if status and status not in RETRYABLE and status < 500:
                with self.tally.lock:
                    self.tally.unexpected.append(f"{post.session.session_id}: {status} {answer}")
                return
            attempt += 1
            if time.monotonic() > deadline:
                with self.tally.lock:
                    self.tally.gave_up.append(f"{post.session.session_id}#{post.transcript}: last {key}")
                return
            if status in RETRYABLE and retry_after is not None:
                with self.tally.lock:
                    self.tally.retry_after_waits += 1
                await asyncio.sleep(retry_after + random.uniform(0, retry_after / 2))
                continue
            await asyncio.sleep(random.uniform(0, min(3.0, 0.2 * 2**attempt)))

    async def _attempt(self, body: bytes) -> tuple[int, dict[str, Any], float | None]:
        """(status, JSON body, Retry-After seconds); (0, {}, None) when the connection failed
        or timed out."""
        try:
            return await asyncio.wait_for(self._http_post(body), 15)
        except (OSError, TimeoutError, ValueError, IndexError):
            return 0, {}, None

    async def _http_post(self, body: bytes) -> tuple[int, dict[str, Any], float | None]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(
                (
                    "POST /api/nexus/producer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                ).encode()
                + body
            )
            await writer.drain()
            raw = await reader.read()
        finally:
            writer.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        retry_after = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"retry-after":
                retry_after = float(value.strip())
        try:
            return status, json.loads(payload) if payload else {}, retry_after
        except ValueError:
            return status, {"raw": payload[:200].decode(errors="replace")}, retry_after


def p99(latencies: list[float]) -> float:
    """The 99th percentile (nearest rank) of ``latencies``; 0 for none."""
    if not latencies:
        return 0.0
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def plain_lanes(sessions: list[Session], phase: int) -> list[list[Post]]:
    """The widget as it is: one lane per session, each transcript once, in order."""
    lanes = []
    for session in (s for s in sessions if s.phase == phase):
        posts = [Post(session, 0, session.start_s)]
        posts += [Post(session, k, gap) for k, gap in enumerate(session.gaps_s, start=1)]
        lanes.append(posts)
    return lanes


def unruly_lanes(sessions: list[Session], phase: int, seed: int = 5) -> list[list[Post]]:
    """The same conversations sent the way networks and impatient browsers send them.

    Every third session: three tabs POST each transcript at the same moment (concurrent
    exact duplicates). Every third: each POST is followed by a late retry of the previous,
    older transcript (out of order) and an exact duplicate. The rest: two transcripts race
    each other in separate lanes. The longest transcript is always sent, so the end state is
    the plain traffic's.
    """
    rng = random.Random(seed)
    lanes: list[list[Post]] = []
    for index, session in enumerate(s for s in sessions if s.phase == phase):
        plain = plain_lanes([session], phase)[0]
        kind = index % 3
        if kind == 0:
            lanes += [list(plain) for _ in range(3)]
        elif kind == 1:
            lane = []
            for post in plain:
                lane.append(post)
                if post.transcript:
                    lane.append(Post(session, post.transcript - 1, rng.uniform(0, 0.2)))
                lane.append(Post(session, post.transcript, rng.uniform(0, 0.2)))
            lanes.append(lane)
        else:
            # Even transcripts in one lane, odd ones in another started at the same time:
            # neighbours overlap and arrive in either order.
            lanes.append([Post(session, p.transcript, p.delay_s) for p in plain if p.transcript % 2 == 0])
            odd = [Post(session, p.transcript, p.delay_s) for p in plain if p.transcript % 2 == 1]
            odd[0] = Post(session, odd[0].transcript, session.start_s + rng.uniform(0, 0.1))
            lanes.append(odd)
    return lanes
