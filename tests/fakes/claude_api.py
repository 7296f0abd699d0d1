"""A fake Anthropic Messages API on 127.0.0.1, for tests, benchmarks and chaos runs.

It speaks enough of ``POST /v1/messages`` for the real ``anthropic`` SDK, is as strict as the
real API about what NEXUS could get wrong (prefill, missing headers, too many cache marks,
unsupported schema keywords, sampling parameters and thinking settings current models refuse),
and answers from the offline extractor run on the transcript in the request. Models that think
by default (Claude 5: Haiku 5.5) do so here too unless the request disables it: a thinking block
comes first and its tokens are billed and count against ``max_tokens``. Cache figures appear
only when the marked prefix reaches the model's cache minimum (Haiku 5.5: 512 tokens, Haiku
4.5: 4,096). Scripted steps and a seeded random failure rate inject faults.

    python -m tests.fakes.claude_api --port 8765 --latency 0.2
    ANTHROPIC_BASE_URL=http://127.0.0.1:8765 ANTHROPIC_API_KEY=anything make run

Rate limits (off by default): ``set_rate_limits(rpm=, itpm=, otpm=)`` (or POST /_fake/rate_limits)
makes the fake enforce an account's per-minute limits as the real API does: a token bucket per
dimension, as large as the limit and refilled continuously, checked when a request arrives;
over it, a real 429 with ``retry-after``. Every answer then carries the
``anthropic-ratelimit-{requests,input-tokens,output-tokens}-{limit,remaining,reset}`` headers.
Input tokens count as the API counts them for ITPM: uncached input plus cache writes.

Message Batches: ``POST /v1/messages/batches`` (create), ``GET …/{id}`` (retrieve),
``GET …/{id}/results`` (JSONL), ``POST …/{id}/cancel``. A batch ends ``batch_seconds`` after
it was created (knob: ``set_batches(seconds=, expire=)``; ``expire`` makes every request of
the batches that end expire instead of answering); each request is answered as a
``/v1/messages`` call with the same body would be (scripted steps apply), without latency.

Control API (JSON): POST /_fake/script [steps], POST /_fake/latency {"latency"} or {"min", "max"},
POST /_fake/failure_rate {"rate", "statuses", "hang_rate", "hang_seconds", "seed"},
POST /_fake/keys {"accept": [keys]} or {"any": true}, GET /_fake/stats, POST /_fake/reset.
Stats include the faults injected by kind and the calls that overlapped another open call for
the same conversation (the chaos suite's proof that one session is never worked twice at once).
Steps: "ok", ["ok", {overrides}], ["429", retry_after], "529", "500", "400", "401", "403",
"spend_limit", ["hang", seconds], "malformed", "invalid", "refusal", "max_tokens".
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import math
import random
import re
import threading
import time
from collections import Counter, deque
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ingestion.extraction.offline import extract_raw
from prospects.vocabulary import clamp_nivel

# Structured outputs' JSON-schema subset (Anthropic docs): numeric and length constraints are
# refused, as are array bounds other than minItems 0/1; format only from a fixed list; pattern
# only without backreferences, lookaround or \b. The SDK moves such constraints into the
# description for pydantic schemas; a raw schema dict (what NEXUS sends) reaches the API as is.
UNSUPPORTED_SCHEMA_KEYWORDS = {
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minLength", "maxLength", "maxItems", "uniqueItems", "minProperties", "maxProperties",
    "patternProperties", "if", "then", "else", "not",
}  # fmt: skip
SUPPORTED_STRING_FORMATS = {
    "date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid",
}  # fmt: skip
_UNSUPPORTED_REGEX = re.compile(r"\\[1-9bB]|\(\?<?[=!]")
MAX_CACHE_MARKS = 4
DEFAULT_HANG_SECONDS = 60.0  # past any sane client timeout; stop() wakes hung handlers
_MESSAGE_RE = re.compile(r'<message[^>]*\brole="(user|assistant)"[^>]*>(.*?)</message>', re.DOTALL)
_ERRORS = {
    "400": (400, "invalid_request_error", "messages.0.content: bad request (scripted)"),
    "401": (401, "authentication_error", "invalid x-api-key"),
    "403": (403, "permission_error", "Your API key does not have permission to use the specified resource."),
    "500": (500, "api_error", "Internal server error"),
    "529": (529, "overloaded_error", "Overloaded"),
    "spend_limit": (
        400,
        "invalid_request_error",
        "Your credit balance is too low to access the Anthropic API. "
        "Please go to Plans & Billing to upgrade or purchase credits.",
    ),
    "429": (429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
}


_Reply = tuple[int, dict[str, Any], dict[str, str]]  # status, JSON body, extra headers


def api_key(headers: dict[str, str]) -> str:
    """The caller's key: ``x-api-key``, or ``Authorization: Bearer`` (what SDK 2.x sends)."""
    bearer = headers.get("authorization", "")
    return headers.get("x-api-key") or (bearer[7:] if bearer.lower().startswith("bearer ") else "")


# Smallest cacheable prefix per model, in tokens (Anthropic's prompt-caching docs); a marked
# prefix below it is silently not cached. Longest matching prefix wins; 1024 otherwise.
_CACHE_MINIMUMS = {
    "claude-haiku-5-5": 512,
    "claude-opus-5": 512,
    "claude-fable-5": 512,
    "claude-mythos-5": 512,
    "claude-opus-4-7": 2048,
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-haiku-4-5": 4096,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
}
# Claude 5 models think (adaptive) unless told not to; Fable 5 and Mythos 5 cannot be told.
_THINKS_BY_DEFAULT = (
    "claude-haiku-5",
    "claude-sonnet-5",
    "claude-opus-5",
    "claude-fable-5",
    "claude-mythos-5",
)
_ALWAYS_THINKS = ("claude-fable-5", "claude-mythos-5")
# Claude Opus 4.7 and later refuse non-default sampling parameters and budget_tokens thinking.
_NO_SAMPLING_PARAMS = ("claude-opus-4-7", "claude-opus-4-8", *_THINKS_BY_DEFAULT)
FAKE_THINKING_TOKENS = 120  # what a default-on thinking pass costs here, in output tokens


def cache_minimum(model: str) -> int:
    """Smallest cacheable prefix of ``model``, in tokens."""
    names = sorted((n for n in _CACHE_MINIMUMS if model.startswith(n)), key=len, reverse=True)
    return _CACHE_MINIMUMS[names[0]] if names else 1024


def thinking_on(body: dict[str, Any]) -> bool:
    """Whether the model thinks for this request: asked for, or on by default and not disabled."""
    mode = (body.get("thinking") or {}).get("type")
    if mode is None:
        return str(body.get("model", "")).startswith(_THINKS_BY_DEFAULT)
    return mode != "disabled"


def tokens(chars: int) -> int:
    """How the fake counts tokens: characters / 4 (real tokenizers count more)."""
    return max(1, chars // 4)


def prompt_tokens(body: dict[str, Any]) -> int:
    """The prompt tokens (tools, system, messages) this fake bills for a Messages API body."""
    return tokens(sum(len(text) for text, _ in _blocks(body)))


class _Bucket:
    """One per-minute limit: holds up to ``limit``, refilled at limit/60 per second."""

    def __init__(self, limit: int, now: float, window: float = 60.0) -> None:
        self.limit, self.rate = limit, limit / 60.0
        self.capacity = self.rate * window
        self.tokens, self.at = self.capacity, now

    def level(self, now: float) -> float:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return self.tokens

    def wait_for(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` fits (0 when it does now). A cost above the limit waits for
        a full bucket: the real API refuses such a request outright, NEXUS never sends one."""
        return max(0.0, (min(cost, self.capacity) - self.level(now)) / self.rate)

    def take(self, cost: float, now: float) -> None:
        self.level(now)
        self.tokens -= cost


class ApiError(Exception):
    def __init__(self, status: int, error_type: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.error_type, self.message, self.headers = status, error_type, message, headers or {}


class FakeClaude:
    """The fake server. ``FakeClaude(port=0)`` picks a free port; use as a context manager."""

    _script: deque[tuple[str, Any]]
    _failure: dict[str, Any]
    _accepted_keys: set[str] | None
    _requests: list[dict[str, Any]]
    _by_status: Counter[str]
    _injected: Counter[str]
    _open_conversations: Counter[str]
    _cached_prefixes: set[str]
    _limits: dict[str, _Bucket]

    def __init__(self, port: int = 0, latency: float = 0.0, *, seed: int = 0) -> None:
        self._port = port
        self._initial_latency = latency
        self._seed = seed
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._reset_state()

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FakeClaude:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _Server(("127.0.0.1", self._port), handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False  # hung handlers must not block stop()
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-claude", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeClaude:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- knobs --------------------------------------------------------------------------------
    def script(self, steps: list[Any]) -> None:
        """Queue responses, one per request, in order; after them every answer is "ok"."""
        with self._lock:
            self._script.extend(_normalise_step(step) for step in steps)

    def set_latency(
        self, latency: float | None = None, *, low: float | None = None, high: float | None = None
    ) -> None:
        """A fixed latency, or a uniform one between ``low`` and ``high`` seconds (seeded)."""
        with self._lock:
            if latency is not None:
                self._latency = (latency, latency)
            else:
                self._latency = (low or 0.0, high if high is not None else (low or 0.0))

    def set_failure_rate(
        self,
        rate: float = 0.0,
        statuses: list[int | str] | None = None,
        hang_rate: float = 0.0,
        hang_seconds: float = DEFAULT_HANG_SECONDS,
        seed: int | None = None,
    ) -> None:
        with self._lock:
            self._failure = {
                "rate": rate,
                "statuses": [str(s) for s in (statuses or [429, 529, 500])],
                "hang_rate": hang_rate,
                "hang_seconds": hang_seconds,
            }
            if seed is not None:
                self._rng = random.Random(seed)

    def set_rate_limits(self, rpm: int = 0, itpm: int = 0, otpm: int = 0, window: float = 60.0) -> None:
        """Enforce per-minute limits (0 = none) with real 429s; the buckets start full.

        ``window``: seconds of refill a bucket holds (the API: a minute). A benchmark that
        scales time by k (limits k times higher) passes 60/k to keep the same account shape."""
        with self._lock:
            now = time.monotonic()
            self._limits = {
                name: _Bucket(limit, now, window)
                for name, limit in (("requests", rpm), ("input-tokens", itpm), ("output-tokens", otpm))
                if limit
            }

    def set_batches(self, seconds: float = 0.0, expire: bool = False) -> None:
        """How long a batch takes to end, and whether its requests expire instead."""
        with self._lock:
            self._batch_knobs = {"seconds": seconds, "expire": expire}

    def reject_keys(self) -> None:
        """Every key gets 401 until ``accept_key``."""
        with self._lock:
            self._accepted_keys = set()

    def accept_key(self, key: str) -> None:
        with self._lock:
            if self._accepted_keys is not None:
                self._accepted_keys.add(key)

    def accept_any_key(self) -> None:
        with self._lock:
            self._accepted_keys = None

    def reset(self) -> None:
        with self._lock:
            self._reset_state()

    # --- observations -------------------------------------------------------------------------
    @property
    def requests(self) -> list[dict[str, Any]]:
        """Recorded requests: ``{"path", "headers", "body"}``, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def calls(self) -> int:
        with self._lock:
            return self._calls

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": self._calls,
                "in_flight": self._in_flight,
                "max_in_flight": self._max_in_flight,
                "by_status": dict(self._by_status),
                # Faults this fake chose to answer with (scripted or by failure rate), by kind:
                # a client can have seen at most these many failed calls.
                "injected": dict(self._injected),
                # Calls that began while another call for the same conversation was still
                # open (hangs excluded: their client has already given up): > 0 means two
                # workers worked one session at once.
                "same_conversation_overlaps": self._overlaps,
                "input_tokens_total": self._input_tokens,
                "output_tokens_total": self._output_tokens,
                "scripted_left": len(self._script),
                # 429s answered because a rate limit (set_rate_limits) was exceeded.
                "rate_limited": self._rate_limited,
                "rate_limits": {name: bucket.limit for name, bucket in self._limits.items()},
            }

    # --- internals ----------------------------------------------------------------------------
    def _reset_state(self) -> None:
        self._script = deque()
        self._latency = (self._initial_latency, self._initial_latency)
        self._failure = {"rate": 0.0, "statuses": [], "hang_rate": 0.0, "hang_seconds": 0.0}
        self._rng = random.Random(self._seed)
        self._accepted_keys = None
        self._requests = []
        self._calls = self._in_flight = self._max_in_flight = 0
        self._by_status = Counter()
        self._injected = Counter()
        self._open_conversations = Counter()
        self._overlaps = 0
        self._input_tokens = self._output_tokens = 0
        self._cached_prefixes = set()
        self._limits = {}
        self._rate_limited = 0
        self._batches: dict[str, dict[str, Any]] = {}
        self._batch_knobs = {"seconds": 0.0, "expire": False}

    def _begin(
        self, path: str, headers: dict[str, str], body: Any, conversation: str | None
    ) -> tuple[tuple[str, Any], float]:
        with self._lock:
            self._calls += 1
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            self._requests.append({"path": path, "headers": headers, "body": body})
            low, high = self._latency
            latency = low if low == high else self._rng.uniform(low, high)
            step = self._next_step()
            if step[0] != "ok":
                self._injected[step[0]] += 1
            if conversation is not None and step[0] != "hang":
                if self._open_conversations[conversation]:
                    self._overlaps += 1
                self._open_conversations[conversation] += 1
            return step, latency

    def _next_step(self) -> tuple[str, Any]:
        if self._script:
            return self._script.popleft()
        failure = self._failure
        roll = self._rng.random()
        if roll < failure["hang_rate"]:
            return ("hang", failure["hang_seconds"])
        if failure["statuses"] and roll < failure["hang_rate"] + failure["rate"]:
            status = self._rng.choice(failure["statuses"])
            return (status, 1.0 if status == "429" else None)
        return ("ok", None)

    def _end(self, status: int, usage: dict[str, int] | None, conversation: str | None, step: str) -> None:
        with self._lock:
            self._in_flight -= 1
            if conversation is not None and step != "hang":
                self._open_conversations[conversation] -= 1
            self._by_status[str(status)] += 1
            if usage:
                self._input_tokens += usage["input_tokens"]
                self._output_tokens += usage["output_tokens"]

    def _key_accepted(self, key: str) -> bool:
        with self._lock:
            return self._accepted_keys is None or key in self._accepted_keys

    def _cache_usage(self, model: str, prefix_text: str | None) -> tuple[int, int]:
        """(cache_creation, cache_read) for the marked prefix, if it is long enough to cache."""
        if prefix_text is None or tokens(len(prefix_text)) < cache_minimum(model):
            return 0, 0
        key = hashlib.sha256(f"{model}\0{prefix_text}".encode()).hexdigest()
        with self._lock:
            if key in self._cached_prefixes:
                return 0, tokens(len(prefix_text))
            self._cached_prefixes.add(key)
        return tokens(len(prefix_text)), 0

    def handle_messages(
        self, headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """One /v1/messages call: (status, JSON body, extra headers)."""
        conversation = conversation_key(body)
        limited = self._admit(body)
        if limited is not None:
            return limited
        step, latency = self._begin("/v1/messages", headers, body, conversation)
        status, usage = 500, None
        try:
            if latency:
                self._stopping.wait(latency)
            _validate_request(headers, body)
            if not self._key_accepted(api_key(headers)):
                raise ApiError(401, "authentication_error", "invalid x-api-key")
            status, payload, extra = self._answer(step, body)
            usage = payload.get("usage")
            return status, payload, {**extra, **self._charge_output(usage)}
        except ApiError as error:
            status = error.status
            return status, _error_body(error.error_type, error.message), error.headers
        finally:
            self._end(status, usage, conversation, step[0])

    # --- Message Batches ---------------------------------------------------------------------
    def batch_create(self, headers: dict[str, str], body: Any) -> _Reply:
        if not api_key(headers) or not self._key_accepted(api_key(headers)):
            return 401, _error_body("authentication_error", "invalid x-api-key"), {}
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return 400, _error_body("invalid_request_error", "requests: at least one request is required"), {}
        ids = [r.get("custom_id") for r in requests]
        if len(set(ids)) != len(ids) or not all(
            isinstance(i, str) and re.fullmatch(r"[\w-]{1,64}", i) for i in ids
        ):
            return 400, _error_body("invalid_request_error", "custom_id: 1-64 of [a-zA-Z0-9_-], unique"), {}
        with self._lock:
            batch_id = f"msgbatch_fake_{len(self._batches) + 1:06d}"
            self._batches[batch_id] = {
                "id": batch_id,
                "created": time.time(),
                "ends": time.time() + self._batch_knobs["seconds"],
                "expire": self._batch_knobs["expire"],
                "requests": requests,
                "results": None,
                "canceled": False,
            }
        return 200, self._batch_view(batch_id, headers), {}

    def batch_get(self, batch_id: str, headers: dict[str, str], *, results: bool = False) -> tuple[int, Any]:
        with self._lock:
            known = batch_id in self._batches
        if not known:
            return 404, _error_body("not_found_error", f"batch {batch_id} not found")
        view = self._batch_view(batch_id, headers)
        if not results:
            return 200, view
        if view["processing_status"] != "ended":
            return 400, _error_body("invalid_request_error", "batch has not ended")
        with self._lock:
            return 200, self._batches[batch_id]["results"]

    def batch_cancel(self, batch_id: str, headers: dict[str, str]) -> _Reply:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return 404, _error_body("not_found_error", f"batch {batch_id} not found"), {}
            if batch["results"] is None:
                batch["canceled"] = True
                batch["ends"] = time.time()
        return 200, self._batch_view(batch_id, headers), {}

    def _batch_view(self, batch_id: str, headers: dict[str, str]) -> dict[str, Any]:
        self._maybe_end(batch_id)
        with self._lock:
            batch = self._batches[batch_id]
            done = batch["results"]
            counts = Counter(line["result"]["type"] for line in done or [])
        stamp = lambda t: datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")  # noqa: E731
        host = headers.get("host", "127.0.0.1")
        return {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "ended"
            if done is not None
            else ("canceling" if batch["canceled"] else "in_progress"),
            "request_counts": {
                "processing": 0 if done is not None else len(batch["requests"]),
                **{k: counts.get(k, 0) for k in ("succeeded", "errored", "canceled", "expired")},
            },
            "created_at": stamp(batch["created"]),
            "expires_at": stamp(batch["created"] + 86400),
            "ended_at": stamp(batch["ends"]) if done is not None else None,
            "cancel_initiated_at": stamp(batch["ends"]) if batch["canceled"] else None,
            "archived_at": None,
            "results_url": f"http://{host}/v1/messages/batches/{batch_id}/results"
            if done is not None
            else None,
        }

    def _maybe_end(self, batch_id: str) -> None:
        with self._lock:
            batch = self._batches[batch_id]
            if batch["results"] is not None or time.time() < batch["ends"]:
                return
            requests, expire, canceled = batch["requests"], batch["expire"], batch["canceled"]
        lines = []
        for request in requests:
            if canceled or expire:
                lines.append(
                    {
                        "custom_id": request["custom_id"],
                        "result": {"type": "canceled" if canceled else "expired"},
                    }
                )
                continue
            status, payload, _ = self._batch_answer(request.get("params") or {})
            if status == 200:
                result = {"type": "succeeded", "message": payload}
            else:
                result = {"type": "errored", "error": payload}
            lines.append({"custom_id": request["custom_id"], "result": result})
        with self._lock:
            batch["results"] = lines

    def _batch_answer(self, body: dict[str, Any]) -> _Reply:
        headers = {"x-api-key": "batch", "anthropic-version": "2023-06-01"}
        with self._lock:
            self._calls += 1
            step = self._next_step()
        status: int = 500
        usage = None
        try:
            _validate_request(headers, body)
            status, payload, extra = self._answer(step, body)
            usage = payload.get("usage")
            return status, payload, extra
        except ApiError as error:
            status = error.status
            return status, _error_body(error.error_type, error.message), error.headers
        finally:
            with self._lock:
                self._by_status[f"batch_{status}"] += 1
                if usage:
                    self._input_tokens += usage["input_tokens"]
                    self._output_tokens += usage["output_tokens"]

    def _admit(self, body: Any) -> _Reply | None:
        """Check the rate limits when a request arrives: None to go ahead (charged), or the 429.

        Requests and input tokens are charged at arrival; output tokens only need the bucket
        not to be empty, and are charged with what the answer produced (``_charge_output``)."""
        if not self._limits:
            return None
        try:
            input_cost = self._itpm_cost(body)
        except (KeyError, TypeError, AttributeError):
            input_cost = 0  # a malformed body: validation answers it
        with self._lock:
            now = time.monotonic()
            costs = {"requests": 1.0, "input-tokens": float(input_cost), "output-tokens": 1.0}
            waits = [b.wait_for(costs[name], now) for name, b in self._limits.items()]
            if max(waits) > 0:
                self._calls += 1
                self._rate_limited += 1
                self._by_status["429"] += 1
                headers = {**self._limit_headers(now), "retry-after": str(max(1, math.ceil(max(waits))))}
                message = "This request would exceed your organization's rate limit. (fake)"
                return 429, _error_body("rate_limit_error", message), headers
            for name, bucket in self._limits.items():
                if name != "output-tokens":
                    bucket.take(costs[name], now)
        return None

    def _charge_output(self, usage: dict[str, int] | None) -> dict[str, str]:
        if not self._limits:
            return {}
        with self._lock:
            now = time.monotonic()
            bucket = self._limits.get("output-tokens")
            if bucket is not None and usage:
                bucket.take(float(usage["output_tokens"]), now)
            return self._limit_headers(now)

    def _limit_headers(self, now: float) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, bucket in self._limits.items():
            remaining = bucket.level(now)
            reset = time.time() + (bucket.capacity - remaining) / bucket.rate
            prefix = f"anthropic-ratelimit-{name}"
            headers[f"{prefix}-limit"] = str(bucket.limit)
            headers[f"{prefix}-remaining"] = str(max(0, math.floor(remaining)))
            headers[f"{prefix}-reset"] = (
                datetime.fromtimestamp(math.ceil(reset), UTC).isoformat().replace("+00:00", "Z")
            )
        return headers

    def _itpm_cost(self, body: dict[str, Any]) -> int:
        """Input tokens as ITPM counts them: the prompt minus what a cache read would serve."""
        blocks = _blocks(body)
        total = tokens(sum(len(text) for text, _ in blocks))
        marked = [i for i, (_, is_marked) in enumerate(blocks) if is_marked]
        if not marked:
            return total
        prefix = "".join(t for t, _ in blocks[: marked[-1] + 1])
        key = hashlib.sha256(f"{body.get('model')}\0{prefix}".encode()).hexdigest()
        with self._lock:
            cached = key in self._cached_prefixes
        return max(0, total - tokens(len(prefix))) if cached else total

    def _answer(
        self, step: tuple[str, Any], body: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        kind, arg = step
        if kind == "hang":
            self._stopping.wait(arg if arg is not None else DEFAULT_HANG_SECONDS)
            kind, arg = "ok", None
        if kind in _ERRORS or kind.isdigit():
            status, error_type, message = _ERRORS.get(kind) or _generic_error(int(kind))
            extra = _retry_after_headers(arg) if kind == "429" else {}
            raise ApiError(status, error_type, message, extra)
        data = _answer_data(body, arg if kind == "ok" else None)
        text = json.dumps(data, ensure_ascii=False)
        stop_reason = "end_turn"
        if kind == "malformed":
            text = 'Sure! Here is what I found: {nombre: "Juan", nivel_interes: alto'
        elif kind == "invalid":
            text = json.dumps({"nombre": 42, "nivel_interes": "alto", "objeciones": "precio"})
        elif kind == "refusal":
            text, stop_reason = "I can't help with that request.", "refusal"
        elif kind == "max_tokens":
            text, stop_reason = text[: len(text) // 2], "max_tokens"
        return 200, self._message(body, text, stop_reason), {}

    def _message(self, body: dict[str, Any], text: str, stop_reason: str) -> dict[str, Any]:
        model = body["model"]
        blocks = _blocks(body)
        total_chars = sum(len(block_text) for block_text, _ in blocks)
        marked = [i for i, (_, is_marked) in enumerate(blocks) if is_marked]
        prefix = "".join(t for t, _ in blocks[: marked[-1] + 1]) if marked else None
        creation, read = self._cache_usage(model, prefix)
        thinking = FAKE_THINKING_TOKENS if thinking_on(body) else 0
        output_tokens = thinking + tokens(len(text))
        if output_tokens > body["max_tokens"] and stop_reason == "end_turn":
            # Thinking counts against max_tokens: the answer is cut where the budget ends.
            output_tokens, stop_reason = body["max_tokens"], "max_tokens"
            text = text[: max(0, (body["max_tokens"] - thinking) * 4)]
        usage = {
            "input_tokens": max(0, tokens(total_chars) - creation - read),
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read,
            "output_tokens_details": {"thinking_tokens": thinking},
        }
        if body.get("tools") and stop_reason == "end_turn":
            name = body["tools"][0]["name"]
            tool_input = json.loads(text)
            content: list[dict[str, Any]] = [
                {"type": "tool_use", "id": f"toolu_fake_{self.calls}", "name": name, "input": tool_input}
            ]
            stop_reason = "tool_use"
        else:
            content = [{"type": "text", "text": text}]
        if thinking:
            # The thinking text itself is omitted by default; the block still comes first.
            signature = hashlib.sha256(text.encode()).hexdigest()[:32]
            content.insert(0, {"type": "thinking", "thinking": "", "signature": signature})
        return {
            "id": f"msg_fake_{self.calls:06d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }


# --- request validation (as strict as the real API on what NEXUS could get wrong) -------------
def _validate_request(headers: dict[str, str], body: Any) -> None:
    if not api_key(headers):
        raise ApiError(401, "authentication_error", "x-api-key header is required")
    if not headers.get("anthropic-version"):
        raise ApiError(400, "invalid_request_error", "anthropic-version: header is required")
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request_error", "request body must be a JSON object")
    for field in ("model", "max_tokens", "messages"):
        if field not in body:
            raise ApiError(400, "invalid_request_error", f"{field}: Field required")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "invalid_request_error", "messages: at least one message is required")
    if messages[-1].get("role") == "assistant":
        raise ApiError(
            400,
            "invalid_request_error",
            "This model does not support assistant message prefill. "
            "The conversation must end with a user message.",
        )
    _check_model_params(body)
    marks = _count_cache_marks(body)
    if marks > MAX_CACHE_MARKS:
        raise ApiError(
            400,
            "invalid_request_error",
            f"A maximum of {MAX_CACHE_MARKS} blocks with cache_control may be provided. Found {marks}.",
        )
    output_format = (body.get("output_config") or {}).get("format")
    if output_format is not None:
        if output_format.get("type") != "json_schema" or not isinstance(output_format.get("schema"), dict):
            raise ApiError(400, "invalid_request_error", "output_config.format: expected type json_schema")
        _check_schema(output_format["schema"], "output_config.format.schema")


def _check_model_params(body: dict[str, Any]) -> None:
    """What current models refuse: sampling parameters, budget thinking, a thinking setting the
    model does not have, and a forced tool choice while thinking is on."""
    model = str(body["model"])
    if model.startswith(_NO_SAMPLING_PARAMS):
        for name in ("temperature", "top_p", "top_k"):
            if name in body:
                raise ApiError(
                    400, "invalid_request_error", f"{name}: is not supported for this model; omit it"
                )
    thinking = body.get("thinking")
    if thinking is not None:
        mode = thinking.get("type") if isinstance(thinking, dict) else None
        if mode not in ("enabled", "adaptive", "disabled"):
            message = "thinking.type: Input should be 'enabled', 'adaptive' or 'disabled'"
            raise ApiError(400, "invalid_request_error", message)
        if mode == "enabled" and model.startswith(_NO_SAMPLING_PARAMS):
            message = (
                '"thinking.type.enabled" is not supported for this model. '
                'Use "thinking.type.adaptive" and "output_config.effort" instead.'
            )
            raise ApiError(400, "invalid_request_error", message)
        if mode == "disabled" and model.startswith(_ALWAYS_THINKS):
            raise ApiError(400, "invalid_request_error", "thinking cannot be disabled for this model")
    choice = (body.get("tool_choice") or {}).get("type")
    if choice in ("any", "tool") and thinking_on(body):
        raise ApiError(
            400,
            "invalid_request_error",
            "Thinking may not be enabled when tool_choice forces tool use.",
        )


def _count_cache_marks(value: Any) -> int:
    if isinstance(value, dict):
        own = 1 if "cache_control" in value else 0
        return own + sum(_count_cache_marks(v) for k, v in value.items() if k != "cache_control")
    if isinstance(value, list):
        return sum(_count_cache_marks(v) for v in value)
    return 0


def _check_schema(schema: Any, path: str) -> None:
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            _check_schema(item, f"{path}.{i}")
        return
    if not isinstance(schema, dict):
        return
    for key, value in schema.items():
        unsupported = (
            key in UNSUPPORTED_SCHEMA_KEYWORDS
            or (key == "minItems" and value not in (0, 1))
            or (key == "format" and value not in SUPPORTED_STRING_FORMATS)
            or (key == "pattern" and (not isinstance(value, str) or _UNSUPPORTED_REGEX.search(value)))
        )
        if unsupported:
            raise ApiError(
                400, "invalid_request_error", f"{path}: JSON schema keyword '{key}' is not supported"
            )
        if key == "properties" and isinstance(value, dict):
            for name, sub in value.items():
                _check_schema(sub, f"{path}.properties.{name}")
        elif key in ("items", "anyOf", "allOf", "$defs", "definitions"):
            _check_schema(
                value if key not in ("$defs", "definitions") else list(value.values()), f"{path}.{key}"
            )
    if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
        raise ApiError(
            400, "invalid_request_error", f"{path}: 'additionalProperties' must be explicitly set to false"
        )


# --- answers ----------------------------------------------------------------------------------
def _blocks(body: dict[str, Any]) -> list[tuple[str, bool]]:
    """The prompt in cache order (tools, system, messages) as (text, has cache mark)."""
    blocks: list[tuple[str, bool]] = []
    for tool in body.get("tools") or []:
        blocks.append((json.dumps(tool), "cache_control" in tool))
    system = body.get("system") or []
    for block in [{"text": system}] if isinstance(system, str) else system:
        blocks.append((block.get("text", ""), "cache_control" in block))
    for message in body["messages"]:
        content = message.get("content")
        for block in [{"text": content}] if isinstance(content, str) else content or []:
            blocks.append((str(block.get("text", "")), "cache_control" in block))
    return blocks


def transcript_from_request(body: dict[str, Any]) -> list[dict[str, str]]:
    """The conversation inside the request's <transcript>, or the request messages themselves."""
    texts = [text for text, _ in _blocks({"messages": body["messages"]})]
    found = [
        {"role": role, "content": html.unescape(content)}
        for text in texts
        for role, content in _MESSAGE_RE.findall(text)
    ]
    return found or [
        {"role": m.get("role", "user"), "content": t} for m, t in zip(body["messages"], texts, strict=False)
    ]


def conversation_key(body: Any) -> str | None:
    """Which conversation a request is about: its first visitor message (None if unreadable)."""
    try:
        first = next(m["content"] for m in transcript_from_request(body) if m["role"] == "user")
    except (KeyError, TypeError, AttributeError, StopIteration):
        return None
    return hashlib.sha256(first.encode()).hexdigest()[:16]


def _answer_data(body: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    data = extract_raw(transcript_from_request(body))
    data["nivel_interes"] = clamp_nivel(data["nivel_interes"])
    data.update(overrides or {})
    schema = _requested_schema(body)
    if schema and isinstance(schema.get("properties"), dict):
        data = {key: data.get(key) for key in schema["properties"]}
    return data


def _requested_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    output_format = (body.get("output_config") or {}).get("format") or {}
    if output_format.get("schema"):
        return output_format["schema"]
    tools = body.get("tools") or []
    return tools[0].get("input_schema") if tools else None


def _retry_after_headers(seconds: Any) -> dict[str, str]:
    if seconds is None:
        return {}
    seconds = float(seconds)
    if seconds.is_integer():
        return {"retry-after": str(int(seconds))}
    return {"retry-after-ms": str(int(seconds * 1000)), "retry-after": str(int(seconds) + 1)}


def _generic_error(status: int) -> tuple[int, str, str]:
    error_type = {404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error"}.get(
        status, "api_error" if status >= 500 else "invalid_request_error"
    )
    return status, error_type, f"scripted HTTP {status}"


def _error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _normalise_step(step: Any) -> tuple[str, Any]:
    if isinstance(step, (list, tuple)):
        kind, arg = str(step[0]), (step[1] if len(step) > 1 else None)
    else:
        kind, arg = str(step), None
    known = {"ok", "hang", "malformed", "invalid", "refusal", "max_tokens", *_ERRORS}
    if kind not in known and not (kind.isdigit() and len(kind) == 3):
        raise ValueError(f"unknown fake step {kind!r}; known: {sorted(known)}")
    return kind, arg


_BATCH_PATH = re.compile(r"/v1/messages/batches/([\w-]+)(/results|/cancel)?")


class _Server(ThreadingHTTPServer):
    # socketserver's listen backlog is 5: a worker opening its 16+ SDK connections at once
    # overflowed it and met "connection refused", a failure the real API never causes.
    request_queue_size = 1024


class _Handler(BaseHTTPRequestHandler):
    fake: FakeClaude
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle plus the client's
    # delayed ACK stalls every answer ~40 ms, which would make the fake slower than its latency knob.
    disable_nagle_algorithm = True
    timeout = 120  # an idle keep-alive connection frees its thread eventually

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and benchmarks print their own summaries

    def do_GET(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        match = _BATCH_PATH.fullmatch(self.path.split("?")[0])
        if self.path == "/_fake/stats":
            self._send(200, self.fake.stats())
        elif match and match.group(2) in (None, "/results"):
            results = match.group(2) == "/results"
            status, payload = self.fake.batch_get(match.group(1), headers, results=results)
            if results and status == 200:
                self._send_jsonl(payload)
            else:
                self._send(status, payload)
        else:
            self._send(404, _error_body("not_found_error", f"{self.path} not found"))

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            self._send(400, _error_body("invalid_request_error", "request body is not valid JSON"))
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path.split("?")[0]
        if path == "/v1/messages":
            status, payload, extra = self.fake.handle_messages(headers, body)
            self._send(status, payload, extra)
            return
        if path == "/v1/messages/batches":
            self._send(*self.fake.batch_create(headers, body))
            return
        match = _BATCH_PATH.fullmatch(path)
        if match and match.group(2) == "/cancel":
            self._send(*self.fake.batch_cancel(match.group(1), headers))
            return
        try:
            self._control(body)
        except (ValueError, TypeError, KeyError) as error:
            self._send(400, {"error": str(error)})

    def _control(self, body: Any) -> None:
        fake, path = self.fake, self.path
        if path == "/_fake/script":
            fake.script(list(body))
        elif path == "/_fake/latency":
            fake.set_latency(body.get("latency"), low=body.get("min"), high=body.get("max"))
        elif path == "/_fake/failure_rate":
            fake.set_failure_rate(**body)
        elif path == "/_fake/batches":
            fake.set_batches(**body)
        elif path == "/_fake/rate_limits":
            fake.set_rate_limits(**body)
        elif path == "/_fake/keys":
            if body.get("any"):
                fake.accept_any_key()
            else:
                fake.reject_keys()
                for key in body.get("accept", []):
                    fake.accept_key(key)
        elif path == "/_fake/reset":
            fake.reset()
        else:
            self._send(404, {"error": f"{path} not found"})
            return
        self._send(200, {"ok": True, **fake.stats()})

    def _send_jsonl(self, lines: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        try:
            self.send_response(200)
            self.send_header("content-type", "application/binary")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _send(self, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.send_header("request-id", f"req_fake_{time.monotonic_ns()}")
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): exactly what a hang step is for


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=None, help="fixed seconds per answer")
    parser.add_argument("--latency-min", type=float, default=None)
    parser.add_argument("--latency-max", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0, help="seed for random latency and failures")
    parser.add_argument("--rpm", type=int, default=0, help="enforce requests per minute (0 = none)")
    parser.add_argument("--itpm", type=int, default=0, help="enforce input tokens per minute")
    parser.add_argument("--otpm", type=int, default=0, help="enforce output tokens per minute")
    args = parser.parse_args(argv)
    fake = FakeClaude(port=args.port, latency=args.latency or 0.0, seed=args.seed)
    fake.set_rate_limits(rpm=args.rpm, itpm=args.itpm, otpm=args.otpm)
    if args.latency_min is not None or args.latency_max is not None:
        fake.set_latency(low=args.latency_min, high=args.latency_max)
    fake.start()
    print(f"fake Claude listening on {fake.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
