"""The Claude extractor: the one seam between NEXUS and the Anthropic Messages API.

Contract:
- One call costs at most ``ANTHROPIC_TIMEOUT_SECONDS`` per HTTP attempt (SDK ``max_retries=0``:
  Celery owns retries). Within one ``extract`` there are at most two attempts: one immediate
  retry for output that fails validation, or one retry with double ``max_tokens`` for a
  truncated answer.
- It returns an ``ExtractionResult`` whose data is guarded (``guard.py``) or raises
  ``ExtractionError``; nothing else escapes except programming errors.
- TRANSIENT (retry later, honouring ``retry_after``): 408, 409, 429, 500-504, 529, timeouts,
  connection errors. ACCOUNT (pause all extraction): 401, 403, a spend-limit/billing answer.
  PERMANENT (fail this revision): other 400, 404, 413, 422, refusal, output still invalid
  after one retry, still truncated after one retry.
- Thinking is off (``ANTHROPIC_THINKING=disabled``): extraction needs no reasoning, and on
  models that think by default (Haiku 5.5) thinking tokens are billed and count against
  ``max_tokens``. Content blocks are picked by type, so a leading thinking block is harmless.
- Cost is estimated per HTTP call from ``settings.ANTHROPIC_PRICES`` and summed, for failed
  runs too (their tokens were billed).
- Every answer and every failure carries what the API said about the account's rate limits
  (``anthropic-ratelimit-*`` headers, ``retry-after``) and how many HTTP calls it made, for the
  rate governor (``worker/governor.py``); ``estimate`` is what a call will cost it beforehand.
- Message Batches (``batch_create`` / ``batch_retrieve`` / ``batch_results`` /
  ``batch_cancel``): the same request body per job; each result becomes an ExtractionResult
  (cost at ``BATCH_PRICE_FACTOR`` of the live rate) or an ExtractionError classified as the
  live call's would be; an expired or canceled request is reported as such.
- Log lines carry model, tokens, latency and categories; never transcript text or contact data.
- Each HTTP call is a span with the OpenTelemetry GenAI conventions (``chat <model>``: model,
  tokens, cache tokens, finish reason, the failure's category); the SDK's own client span, kept
  to metadata (never the prompt or the answer), sits under it. A no-op with tracing off.
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import datetime
from typing import Any

import anthropic
from django.conf import settings
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, StatusCode

from nexus_project.tracing import ATTR_ERROR_CATEGORY

from .base import Category, ExtractionError, ExtractionResult, FailureKind, Limit, RateLimits, Usage
from .guard import InvalidOutput, check_shape, guard
from .prompt import PROMPT_VERSION, SYSTEM_PROMPT, user_turn
from .schema import OUTPUT_SCHEMA

logger = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

TOOL_NAME = "record_prospect"
# Models that predate structured outputs (claude-3*, the first Sonnet 4 / Opus 4 releases):
# for these the schema is enforced by forcing a tool call instead. Matched by prefix.
NO_STRUCTURED_OUTPUT_PREFIXES = (
    "claude-3",
    "claude-sonnet-4-0",
    "claude-sonnet-4-2025",
    "claude-opus-4-0",
    "claude-opus-4-2025",
)
# A longer ask is clamped to this; the pipeline caps every countdown at BACKOFF_CAP_SECONDS
# anyway (below the broker's visibility timeout). Waiting the cap beats hammering a rate limit.
RETRY_AFTER_MAX_SECONDS = 600.0
THINKING_MODES = ("disabled", "adaptive", "")  # "" sends nothing: the model's own default
# The Message Batches API bills every token at half the live rate.
BATCH_PRICE_FACTOR = 0.5
# The API's limit on requests per batch (and 256 MB; our requests are a few KB each).
BATCH_MAX_REQUESTS = 100_000
# A batch result's error type -> category (the live call's status says the same).
_ERROR_TYPE_CATEGORY = {
    "invalid_request_error": Category.BAD_REQUEST,
    "authentication_error": Category.AUTH,
    "permission_error": Category.AUTH,
    "not_found_error": Category.NOT_FOUND,
    "request_too_large": Category.TOO_LARGE,
    "rate_limit_error": Category.RATE_LIMITED,
    "api_error": Category.SERVER_ERROR,
    "overloaded_error": Category.OVERLOADED,
    "timeout_error": Category.TIMEOUT,
}

# HTTP status -> category; each category's kind (transient, permanent, account) is base.py's.
_STATUS_CATEGORY = {
    400: Category.BAD_REQUEST,
    401: Category.AUTH,
    403: Category.AUTH,
    404: Category.NOT_FOUND,
    408: Category.TIMEOUT,
    409: Category.SERVER_ERROR,
    413: Category.TOO_LARGE,
    422: Category.UNPROCESSABLE,
    429: Category.RATE_LIMITED,
    500: Category.SERVER_ERROR,
    501: Category.SERVER_ERROR,
    502: Category.SERVER_ERROR,
    503: Category.SERVER_ERROR,
    504: Category.TIMEOUT,
    529: Category.OVERLOADED,
}
_SPEND_LIMIT_HINTS = ("credit balance", "spend limit", "spending limit", "billing", "usage limit")


def supports_structured_outputs(model: str) -> bool:
    return not model.startswith(NO_STRUCTURED_OUTPUT_PREFIXES)


def cost_usd(model: str, usage: Usage) -> float:
    """Cost of one call from ``settings.ANTHROPIC_PRICES`` (USD per million tokens), 0 for an
    unknown model. A prompt over ``long_context_tokens`` bills every rate times
    ``long_context_factor`` (Haiku 5.5: over 100K prompt tokens, 5x)."""
    prices = _prices(model)
    if prices is None:
        return 0.0
    total = (
        usage.input_tokens * prices["input"]
        + usage.output_tokens * prices["output"]
        + usage.cache_creation_tokens * prices["cache_write"]
        + usage.cache_read_tokens * prices["cache_read"]
    )
    prompt_tokens = usage.input_tokens + usage.cache_creation_tokens + usage.cache_read_tokens
    if prompt_tokens > prices.get("long_context_tokens", math.inf):
        total *= prices.get("long_context_factor", 1.0)
    return round(total / 1_000_000, 8)


def _prices(model: str) -> dict[str, float] | None:
    """The longest matching prefix wins, so "claude-haiku-4-5" does not price a dated id of
    another model that happens to share a shorter prefix."""
    names = sorted((n for n in settings.ANTHROPIC_PRICES if model.startswith(n)), key=len, reverse=True)
    return settings.ANTHROPIC_PRICES[names[0]] if names else None


class ClaudeExtractor:
    """Extracts with Claude; one SDK client (and its connection pool) per instance, thread-safe."""

    name = "claude"
    governed = True  # its calls count against the account's rate limits

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_tokens: int = 512,
        thinking: str = "disabled",
    ) -> None:
        if thinking not in THINKING_MODES:
            raise ValueError(f"thinking must be one of {THINKING_MODES}, not {thinking!r}")
        self.model = model
        self.max_tokens = max_tokens
        self.thinking = thinking
        self.structured = supports_structured_outputs(model)
        self.client = anthropic.Anthropic(
            api_key=api_key,
            base_url=base_url,
            max_retries=0,
            timeout=timeout,
            # Given explicitly, so no ANTHROPIC_OPEN_TELEMETRY_* variable can turn on the content
            # mode, which would put the transcript and the answer in the SDK's span.
            open_telemetry={"traces": {"enabled": True, "content_mode": "metadata_only"}},
        )
        if _prices(model) is None:
            logger.warning("no price for model; costs will be recorded as 0", extra={"model": model})

    @classmethod
    def from_settings(cls) -> ClaudeExtractor:
        return cls(
            api_key=settings.ANTHROPIC_API_KEY,
            model=settings.ANTHROPIC_MODEL,
            base_url=settings.ANTHROPIC_BASE_URL,
            timeout=settings.ANTHROPIC_TIMEOUT_SECONDS,
            max_tokens=settings.ANTHROPIC_MAX_TOKENS,
            thinking=settings.ANTHROPIC_THINKING,
        )

    def extract(self, messages: list[dict[str, str]]) -> ExtractionResult:
        started = time.monotonic()
        spent = _Spent()
        max_tokens = self.max_tokens
        retried_invalid = retried_truncated = False
        while True:
            response = self._call(messages, max_tokens, spent)
            spent.add(self.model, response.usage)
            usage = spent.usage
            stop_reason = response.stop_reason or ""
            if stop_reason == "refusal":
                raise self._fail("the model refused to answer", Category.REFUSAL, spent)
            if stop_reason == "model_context_window_exceeded":
                raise self._fail("transcript exceeds the context window", Category.TOO_LARGE, spent)
            if stop_reason == "max_tokens":
                if retried_truncated:
                    message = f"output truncated at max_tokens={max_tokens}"
                    raise self._fail(message, Category.MAX_TOKENS, spent)
                retried_truncated, max_tokens = True, max_tokens * 2
                logger.info("claude output truncated; retrying", extra={"max_tokens": max_tokens})
                continue
            try:
                raw = check_shape(self._parse(response))
            except InvalidOutput as error:
                if retried_invalid:
                    raise self._fail(
                        f"invalid output after retry: {error}", Category.INVALID_OUTPUT, spent
                    ) from error
                retried_invalid = True
                logger.info("claude output invalid; retrying", extra={"reason": str(error)})
                continue
            latency_ms = round((time.monotonic() - started) * 1000)
            result = ExtractionResult(
                data=guard(raw, messages),
                extractor=self.name,
                model=response.model or self.model,
                prompt_version=PROMPT_VERSION,
                usage=usage,
                cost_usd=spent.cost_usd,
                latency_ms=latency_ms,
                stop_reason=stop_reason,
                calls=spent.calls,
                rate_limits=spent.rate_limits,
            )
            logger.info(
                "claude extraction ok",
                extra={
                    "model": result.model,
                    "latency_ms": latency_ms,
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "cache_read_tokens": usage.cache_read_tokens,
                    "cache_creation_tokens": usage.cache_creation_tokens,
                },
            )
            return result

    def estimate(self, messages: list[dict[str, str]]) -> tuple[int, int]:
        """(input, output) tokens one call will count against the rate limits, before it is made:
        the prompt's characters / 4 (what the body sends; cache reads, which ITPM does not count,
        are not subtracted, so it errs high), and ``max_tokens`` for output, which is what the
        API itself reserves for OTPM until the answer is known."""
        params = self.request_params(messages, self.max_tokens)
        chars = len(SYSTEM_PROMPT) + len(params["messages"][0]["content"])
        if "tools" in params:
            chars += len(json.dumps(params["tools"]))
        return max(1, chars // 4), self.max_tokens

    def request_params(self, messages: list[dict[str, str]], max_tokens: int) -> dict[str, Any]:
        """The Messages API body: cached system block, transcript as data, schema-bound output."""
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_tokens,
            # The one cache mark: the system block is identical on every call. (Haiku 4.5 only
            # caches prefixes of 4096+ tokens; below that the mark is harmless.)
            "system": [{"type": "text", "text": SYSTEM_PROMPT, "cache_control": {"type": "ephemeral"}}],
            # No assistant prefill: current models reject it, and structured outputs replace it.
            "messages": [{"role": "user", "content": user_turn(messages)}],
        }
        if self.structured:
            params["output_config"] = {"format": {"type": "json_schema", "schema": OUTPUT_SCHEMA}}
            if self.thinking:
                params["thinking"] = {"type": self.thinking}
        else:
            # Models without structured outputs predate default-on thinking, and a forced tool
            # choice is refused when thinking is on: no thinking parameter here.
            params["tools"] = [
                {
                    "name": TOOL_NAME,
                    "description": "Record what the conversation reveals about the visitor.",
                    "input_schema": OUTPUT_SCHEMA,
                }
            ]
            params["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
        return params

    # --- Message Batches ---------------------------------------------------------------------
    def batch_create(self, requests: list[tuple[str, list[dict[str, str]]]]) -> Any:
        """Submit (custom_id, transcript) pairs as one batch; returns the SDK's MessageBatch.
        Raises ExtractionError (classified as a live call's) when the API refuses it."""
        body = [
            {"custom_id": custom_id, "params": self.request_params(messages, self.max_tokens)}
            for custom_id, messages in requests
        ]
        return self._batch_call(lambda: self.client.messages.batches.create(requests=body))  # type: ignore[arg-type]

    def batch_retrieve(self, batch_id: str) -> Any:
        return self._batch_call(lambda: self.client.messages.batches.retrieve(batch_id))

    def batch_cancel(self, batch_id: str) -> Any:
        return self._batch_call(lambda: self.client.messages.batches.cancel(batch_id))

    def batch_results(self, batch_id: str, transcripts: dict[str, list[dict[str, str]]]) -> Any:
        """Yield (custom_id, ExtractionResult | ExtractionError | "expired" | "canceled") for an
        ended batch; ``transcripts`` (by custom_id) is what the guard checks answers against."""
        for item in self._batch_call(lambda: self.client.messages.batches.results(batch_id)):
            result = item.result
            if result.type == "succeeded":
                yield item.custom_id, self._batch_result(result.message, transcripts.get(item.custom_id, []))
            elif result.type == "errored":
                error = result.error.error
                category = _ERROR_TYPE_CATEGORY.get(error.type, Category.SERVER_ERROR)
                if category is Category.BAD_REQUEST and any(
                    h in error.message.lower() for h in _SPEND_LIMIT_HINTS
                ):
                    category = Category.SPEND_LIMIT
                yield (
                    item.custom_id,
                    self._fail(f"batch item {error.type}: {error.message}", category, _Spent()),
                )
            else:
                yield item.custom_id, result.type

    def _batch_result(
        self, message: Any, messages: list[dict[str, str]]
    ) -> ExtractionResult | ExtractionError:
        spent = _Spent()
        spent.calls = 1
        spent.add(self.model, message.usage, factor=BATCH_PRICE_FACTOR)
        stop_reason = message.stop_reason or ""
        if stop_reason == "refusal":
            return self._fail("the model refused to answer", Category.REFUSAL, spent)
        if stop_reason in ("max_tokens", "model_context_window_exceeded"):
            category = Category.MAX_TOKENS if stop_reason == "max_tokens" else Category.TOO_LARGE
            return self._fail(f"batch answer stopped: {stop_reason}", category, spent)
        try:
            raw = check_shape(self._parse(message))
        except InvalidOutput as error:
            return self._fail(f"invalid output: {error}", Category.INVALID_OUTPUT, spent)
        return ExtractionResult(
            data=guard(raw, messages),
            extractor=self.name,
            model=message.model or self.model,
            prompt_version=PROMPT_VERSION,
            usage=spent.usage,
            cost_usd=spent.cost_usd,
            stop_reason=stop_reason,
            calls=1,
        )

    def _batch_call(self, call: Any) -> Any:
        spent = _Spent()
        try:
            return call()
        except anthropic.APIStatusError as error:
            raise self._classify_status(error, spent) from error
        except anthropic.APITimeoutError as error:
            raise self._fail("request timed out", Category.TIMEOUT, spent) from error
        except anthropic.APIConnectionError as error:
            raise self._fail("connection error", Category.CONNECTION, spent) from error

    def _call(self, messages: list[dict[str, str]], max_tokens: int, spent: _Spent) -> Any:
        # INTERNAL: the SDK's span under this one is the CLIENT side of the HTTP exchange. No
        # exception event: an API error message may quote the request.
        with tracer.start_as_current_span(
            f"chat {self.model}",
            kind=SpanKind.INTERNAL,
            attributes=self._span_request(max_tokens),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                response = self._create(messages, max_tokens, spent)
            except ExtractionError as failure:
                span.set_attribute("error.type", str(failure.category))
                span.set_attribute(ATTR_ERROR_CATEGORY, str(failure.category))
                span.set_status(StatusCode.ERROR, str(failure.category))
                raise
            _span_response(span, response)
            return response

    def _create(self, messages: list[dict[str, str]], max_tokens: int, spent: _Spent) -> Any:
        spent.calls += 1
        try:
            # The raw response, for its rate-limit headers; parse() is what create() returns.
            raw = self.client.messages.with_raw_response.create(**self.request_params(messages, max_tokens))
            spent.rate_limits = rate_limits(raw.headers)
            return raw.parse()
        except anthropic.APIStatusError as error:
            spent.rate_limits = rate_limits(error.response.headers)
            raise self._classify_status(error, spent) from error
        except anthropic.APITimeoutError as error:  # before APIConnectionError: it is a subclass
            raise self._fail("request timed out", Category.TIMEOUT, spent) from error
        except anthropic.APIConnectionError as error:
            raise self._fail("connection error", Category.CONNECTION, spent) from error
        except anthropic.APIResponseValidationError as error:
            raise self._fail(
                "response did not match the API's shape", Category.SERVER_ERROR, spent
            ) from error

    def _span_request(self, max_tokens: int) -> dict[str, Any]:
        return {
            "gen_ai.system": "anthropic",  # the older name, which most backends still read
            "gen_ai.provider.name": "anthropic",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": self.model,
            "gen_ai.request.max_tokens": max_tokens,
            "gen_ai.output.type": "json",
        }

    def _parse(self, response: Any) -> Any:
        for block in response.content:
            if self.structured and block.type == "text":
                try:
                    return json.loads(block.text)
                except ValueError as error:
                    raise InvalidOutput("output is not valid JSON") from error
            if not self.structured and block.type == "tool_use" and block.name == TOOL_NAME:
                return block.input
        raise InvalidOutput("no output block in the response")

    def _classify_status(self, error: anthropic.APIStatusError, spent: _Spent) -> ExtractionError:
        status = error.status_code
        api_message = error.api_message or ""
        message = f"HTTP {status} {error.type or ''}: {api_message}".strip()
        if status in (400, 402) and any(hint in api_message.lower() for hint in _SPEND_LIMIT_HINTS):
            category = Category.SPEND_LIMIT
        else:
            fallback = Category.SERVER_ERROR if status >= 500 else Category.BAD_REQUEST
            category = _STATUS_CATEGORY.get(status, fallback)
        # The far side's retry-after is honoured for the statuses that ask us to come back.
        asks_retry = status in _STATUS_CATEGORY and category.kind is FailureKind.TRANSIENT
        wait = retry_after(error.response.headers) if asks_retry else None
        return self._fail(message, category, spent, status, wait)

    def _fail(
        self,
        message: str,
        category: Category,
        spent: _Spent,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> ExtractionError:
        logger.warning(
            "claude extraction failed",
            extra={
                "model": self.model,
                "kind": str(category.kind),
                "category": str(category),
                "status": status,
                "retry_after": retry_after_s,
            },
        )
        return ExtractionError(
            message,
            category=category,
            retry_after=retry_after_s,
            usage=spent.usage,
            cost_usd=spent.cost_usd,
            model=self.model,
            calls=spent.calls,
            rate_limits=spent.rate_limits,
        )


def _span_response(span: Span, response: Any) -> None:
    """The GenAI response attributes: ids, model, tokens and the stop reason, never content."""
    usage = response.usage
    attributes: dict[str, Any] = {
        "gen_ai.response.id": response.id or "",
        "gen_ai.response.model": response.model or "",
        "gen_ai.response.finish_reasons": [response.stop_reason or ""],
    }
    if usage is not None:
        cache_read = usage.cache_read_input_tokens or 0
        cache_creation = usage.cache_creation_input_tokens or 0
        attributes.update(
            {
                # The conventions count every prompt token, cached ones included; the API's
                # input_tokens are only the uncached part.
                "gen_ai.usage.input_tokens": (usage.input_tokens or 0) + cache_read + cache_creation,
                "gen_ai.usage.output_tokens": usage.output_tokens or 0,
                "gen_ai.usage.cache_read.input_tokens": cache_read,
                "gen_ai.usage.cache_creation.input_tokens": cache_creation,
            }
        )
    span.set_attributes(attributes)


RATE_LIMIT_DIMENSIONS = ("requests", "input-tokens", "output-tokens")


def rate_limits(headers: Any) -> RateLimits | None:
    """The account's limits as a response reported them (``anthropic-ratelimit-<dimension>-
    limit / -remaining / -reset``, and ``retry-after`` on a 429); None when it said nothing.
    A header that does not parse is ignored, never trusted."""
    limits = {}
    for dimension in RATE_LIMIT_DIMENSIONS:
        prefix = f"anthropic-ratelimit-{dimension}"
        limit = _int_header(headers.get(f"{prefix}-limit"))
        remaining = _int_header(headers.get(f"{prefix}-remaining"))
        reset_at = _time_header(headers.get(f"{prefix}-reset"))
        if limit is not None or remaining is not None:
            limits[dimension] = Limit(limit=limit, remaining=remaining, reset_at=reset_at)
    wait = retry_after(headers) if headers.get("retry-after") or headers.get("retry-after-ms") else None
    if not limits and wait is None:
        return None
    return RateLimits(limits=limits, retry_after=wait)


def _int_header(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _time_header(value: str | None) -> float | None:
    """An RFC 3339 time (what the API sends) as epoch seconds."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds), if present and sane:
    positive and finite; a longer ask is clamped to ``RETRY_AFTER_MAX_SECONDS``."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            continue  # an HTTP date, or garbage: the pipeline's own backoff applies
        if 0 < seconds < math.inf:  # also false for NaN
            return min(seconds, RETRY_AFTER_MAX_SECONDS)
    return None


class _Spent:
    """Tokens and cost over the HTTP calls of one ``extract`` (at most two)."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.cost_usd = 0.0
        self.calls = 0
        self.rate_limits: RateLimits | None = None

    def add(self, model: str, usage: Any, factor: float = 1.0) -> None:
        if usage is None:
            return
        call = Usage(
            input_tokens=usage.input_tokens or 0,
            output_tokens=usage.output_tokens or 0,
            cache_creation_tokens=usage.cache_creation_input_tokens or 0,
            cache_read_tokens=usage.cache_read_input_tokens or 0,
        )
        self.usage = Usage(
            input_tokens=self.usage.input_tokens + call.input_tokens,
            output_tokens=self.usage.output_tokens + call.output_tokens,
            cache_creation_tokens=self.usage.cache_creation_tokens + call.cache_creation_tokens,
            cache_read_tokens=self.usage.cache_read_tokens + call.cache_read_tokens,
        )
        self.cost_usd = round(self.cost_usd + cost_usd(model, call) * factor, 8)
