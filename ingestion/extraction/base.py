"""The extractor seam: what every extractor takes, returns and raises.

An extractor reads a transcript and returns what it reveals about the visitor, in the
domain's Spanish keys (see ``schema.py``). It never touches the database. Failures are
classified once, here, so the pipeline can decide: retry later, fail the revision, or pause
all extraction (circuit breaker).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol


class FailureKind(enum.StrEnum):
    TRANSIENT = "transient"  # retry with backoff (429, 5xx, 529, timeouts, connection errors)
    PERMANENT = "permanent"  # this revision cannot succeed (400, 404, 413, 422, refusal, bad output)
    ACCOUNT = "account"  # every call will fail until a person acts (401/403, spend limit)


class Category(enum.StrEnum):
    """The short public label of a failure (the jobs endpoint and metrics show it), each with
    the one kind that decides what the pipeline does about it."""

    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    CONNECTION = "connection"
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    TOO_LARGE = "too_large"
    UNPROCESSABLE = "unprocessable"
    REFUSAL = "refusal"
    INVALID_OUTPUT = "invalid_output"
    MAX_TOKENS = "max_tokens"
    AUTH = "auth"
    SPEND_LIMIT = "spend_limit"

    @property
    def kind(self) -> FailureKind:
        return _KINDS[self]


_KINDS = {
    **dict.fromkeys(
        [
            Category.RATE_LIMITED,
            Category.TIMEOUT,
            Category.OVERLOADED,
            Category.SERVER_ERROR,
            Category.CONNECTION,
        ],
        FailureKind.TRANSIENT,
    ),
    **dict.fromkeys([Category.AUTH, Category.SPEND_LIMIT], FailureKind.ACCOUNT),
}
for _category in Category:
    _KINDS.setdefault(_category, FailureKind.PERMANENT)

# The categories whose failed calls are retried with backoff (metrics count them as retries).
TRANSIENT_CATEGORIES = frozenset(c.value for c in Category if c.kind is FailureKind.TRANSIENT)


class ExtractionError(Exception):
    """Raised by an extractor: ``category`` says what failed, and its ``kind`` what to do."""

    def __init__(
        self,
        message: str,
        *,
        category: Category,
        retry_after: float | None = None,
        usage: Usage | None = None,
        cost_usd: float = 0.0,
        model: str = "",
        calls: int = 0,
        rate_limits: RateLimits | None = None,
    ) -> None:
        super().__init__(message)
        self.category = category
        self.kind = category.kind
        self.retry_after = retry_after  # seconds the far side asked us to wait, if any
        # What the failed run was billed (an invalid or truncated answer still costs tokens).
        self.usage = usage or Usage()
        self.cost_usd = cost_usd
        self.model = model
        self.calls = calls  # HTTP calls made (what the rate governor settles)
        self.rate_limits = rate_limits  # what the far side said about the account's limits


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0


@dataclass(frozen=True)
class Limit:
    """One dimension of the account's rate limit as a response reported it."""

    limit: int | None  # per minute
    remaining: int | None
    reset_at: float | None  # epoch seconds when the bucket is full again


@dataclass(frozen=True)
class RateLimits:
    """What a response said about the account's limits (``anthropic-ratelimit-*`` headers and
    ``retry-after``), keyed by dimension: "requests", "input-tokens", "output-tokens"."""

    limits: dict[str, Limit] = field(default_factory=dict)
    retry_after: float | None = None  # seconds, on a 429


@dataclass(frozen=True)
class ExtractionResult:
    """``data`` holds exactly the keys of ``schema.FIELDS``, already normalised and guarded."""

    data: dict[str, Any]
    extractor: str  # "offline" | "claude"
    model: str = ""
    prompt_version: str = ""
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_ms: int = 0
    stop_reason: str = ""
    calls: int = 1  # HTTP calls made (0 for an extractor that calls nothing)
    rate_limits: RateLimits | None = None


class Extractor(Protocol):
    name: str

    def extract(self, messages: list[dict[str, str]]) -> ExtractionResult:
        """Read ``messages`` ([{role, content}, ...]) and return the visitor's data.

        Raises ExtractionError for every failure it can classify; anything else is a bug.
        """
        ...
