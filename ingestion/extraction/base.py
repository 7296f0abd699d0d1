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


class ExtractionError(Exception):
    """Raised by an extractor; ``category`` is the short public label (``rate_limited``,
    ``timeout``, ``overloaded``, ``server_error``, ``connection``, ``auth``, ``spend_limit``,
    ``bad_request``, ``refusal``, ``invalid_output``, ``max_tokens``, ...)."""

    def __init__(
        self,
        message: str,
        *,
        kind: FailureKind,
        category: str,
        retry_after: float | None = None,
        usage: Usage | None = None,
        cost_usd: float = 0.0,
        model: str = "",
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.category = category
        self.retry_after = retry_after  # seconds the far side asked us to wait, if any
        # What the failed run was billed (an invalid or truncated answer still costs tokens).
        self.usage = usage or Usage()
        self.cost_usd = cost_usd
        self.model = model


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0


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


class Extractor(Protocol):
    name: str

    def extract(self, messages: list[dict[str, str]]) -> ExtractionResult:
        """Read ``messages`` ([{role, content}, ...]) and return the visitor's data.

        Raises ExtractionError for every failure it can classify; anything else is a bug.
        """
        ...
