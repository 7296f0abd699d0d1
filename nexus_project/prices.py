"""Claude prices, in US dollars per million tokens, from Anthropic's public price list.

Data, not configuration: ``settings.ANTHROPIC_PRICES`` is this table (a test or deployment may
replace it). Keys per model: ``input``, ``output``, ``cache_write`` (5-minute cache writes),
``cache_read``; optional ``long_context_tokens`` / ``long_context_factor``: a prompt (input +
cache tokens) over that many tokens bills every rate times the factor. A model is matched by
the longest listed prefix, so dated ids match; a model not listed is recorded at cost 0 with a
warning.
"""

from __future__ import annotations

ANTHROPIC_PRICES: dict[str, dict[str, float]] = {
    "claude-haiku-5-5": {
        "input": 0.10,
        "output": 0.50,
        "cache_write": 0.125,
        "cache_read": 0.01,
        "long_context_tokens": 100_000,
        "long_context_factor": 5.0,
    },
    "claude-haiku-4-5": {"input": 1.0, "output": 5.0, "cache_write": 1.25, "cache_read": 0.10},
    "claude-sonnet-4-5": {"input": 3.0, "output": 15.0, "cache_write": 3.75, "cache_read": 0.30},
    "claude-opus-4-5": {"input": 5.0, "output": 25.0, "cache_write": 6.25, "cache_read": 0.50},
}
