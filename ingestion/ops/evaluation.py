"""Extraction evaluation: run an extractor over golden conversations and score it.

A golden conversation is a JSON file ``{"description", "messages", "expected"}`` with the
expected answer in the schema's keys (``tests/fixtures/golden``). A field scores when the
extractor's value equals the expected one exactly (objeciones compared as sets). The report
is what an engineer reads before changing ``ANTHROPIC_MODEL`` or the prompt: accuracy overall,
per field and per fixture, and the tokens, cost and latency of getting there. It never touches
the database; a Claude run calls the API once per fixture, in sequence (a few dozen calls).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from prospects.vocabulary import FIELDS

from ..extraction.base import ExtractionError, Extractor


@dataclass(frozen=True)
class Configuration:
    extractor: str  # "claude" | "offline"
    model: str = ""  # for claude; empty = ANTHROPIC_MODEL

    @classmethod
    def parse(cls, text: str) -> Configuration:
        """``offline``, ``claude`` or ``claude:<model>``."""
        name, _, model = text.partition(":")
        if name not in ("claude", "offline"):
            raise ValueError(f"extractor must be 'claude' or 'offline', not {name!r}")
        if model and name != "claude":
            raise ValueError("only the claude extractor takes a model")
        return cls(name, model)


def golden_cases(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """The fixtures of ``directory``, by file name, each checked for the golden shape."""
    paths = sorted(directory.glob("*.json"))
    if not paths:
        raise ValueError(f"no *.json fixtures in {directory}")
    cases = []
    for path in paths:
        case = json.loads(path.read_text("utf-8"))
        if not isinstance(case.get("messages"), list) or not isinstance(case.get("expected"), dict):
            raise ValueError(f"{path.name}: a fixture needs 'messages' (a list) and 'expected' (an object)")
        cases.append((path.stem, case))
    return cases


def build_extractor(configuration: Configuration) -> Extractor:
    if configuration.extractor == "offline":
        from ..extraction.offline import OfflineExtractor

        return OfflineExtractor()
    if not settings.ANTHROPIC_API_KEY:
        raise ValueError("the claude extractor needs ANTHROPIC_API_KEY (the offline one needs none)")
    from ..extraction.claude import ClaudeExtractor

    return ClaudeExtractor(
        api_key=settings.ANTHROPIC_API_KEY,
        model=configuration.model or settings.ANTHROPIC_MODEL,
        base_url=settings.ANTHROPIC_BASE_URL,
        timeout=settings.ANTHROPIC_TIMEOUT_SECONDS,
        max_tokens=settings.ANTHROPIC_MAX_TOKENS,
        thinking=settings.ANTHROPIC_THINKING,
    )


def _matches(field: str, got: Any, expected: Any) -> bool:
    if field == "objeciones":
        return sorted(got or []) == sorted(expected or [])
    return bool(got == expected)


def evaluate(configuration: Configuration, cases: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Score one configuration over the cases."""
    extractor = build_extractor(configuration)
    per_field = dict.fromkeys(FIELDS, 0)
    per_fixture: dict[str, Any] = {}
    tokens = {"input": 0, "output": 0, "cache_creation": 0, "cache_read": 0}
    latencies: list[float] = []
    cost = 0.0
    model = prompt_version = ""
    failures = 0
    for name, case in cases:
        started = time.monotonic()
        try:
            result = extractor.extract(case["messages"])
        except ExtractionError as error:
            latencies.append((time.monotonic() - started) * 1000)
            failures += 1
            cost += error.cost_usd
            per_fixture[name] = {"accuracy": 0.0, "exact": False, "error": str(error.category)}
            continue
        latencies.append((time.monotonic() - started) * 1000)
        model, prompt_version = result.model, result.prompt_version
        usage = result.usage
        tokens["input"] += usage.input_tokens
        tokens["output"] += usage.output_tokens
        tokens["cache_creation"] += usage.cache_creation_tokens
        tokens["cache_read"] += usage.cache_read_tokens
        cost += result.cost_usd
        mismatches = {}
        for field in FIELDS:
            expected = case["expected"].get(field)
            if _matches(field, result.data.get(field), expected):
                per_field[field] += 1
            else:
                mismatches[field] = {"got": result.data.get(field), "expected": expected}
        score = (len(FIELDS) - len(mismatches)) / len(FIELDS)
        per_fixture[name] = {"accuracy": round(score, 4), "exact": not mismatches}
        if mismatches:
            per_fixture[name]["mismatches"] = mismatches
    total = len(cases)
    return {
        "extractor": configuration.extractor,
        "model": model or configuration.model or "",
        "prompt_version": prompt_version,
        "fixtures": total,
        "overall_accuracy": round(sum(per_field.values()) / (total * len(FIELDS)), 4),
        "exact_match_rate": round(sum(1 for f in per_fixture.values() if f["exact"]) / total, 4),
        "fields": {field: round(count / total, 4) for field, count in per_field.items()},
        "per_fixture": per_fixture,
        "failures": failures,
        "tokens": tokens,
        "cost_usd": round(cost, 6),
        "cost_per_fixture_usd": round(cost / total, 8),
        "latency_ms": _latency(latencies),
    }


def _latency(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 1)

    return {"p50": pick(0.5), "p95": pick(0.95), "mean": round(sum(ordered) / len(ordered), 1)}


def compare(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """What changes from ``first`` to ``second``: accuracy deltas and the fixtures that moved."""
    moved = {
        name: {"from": first["per_fixture"][name]["accuracy"], "to": entry["accuracy"]}
        for name, entry in second["per_fixture"].items()
        if entry["accuracy"] != first["per_fixture"][name]["accuracy"]
    }
    return {
        "overall_accuracy": round(second["overall_accuracy"] - first["overall_accuracy"], 4),
        "exact_match_rate": round(second["exact_match_rate"] - first["exact_match_rate"], 4),
        "fields": {f: round(second["fields"][f] - first["fields"][f], 4) for f in FIELDS},
        "fixtures_changed": moved,
        "cost_usd": round(second["cost_usd"] - first["cost_usd"], 6),
        "latency_p95_ms": round(second["latency_ms"]["p95"] - first["latency_ms"]["p95"], 1),
    }


def report(
    configuration: Configuration,
    cases: list[tuple[str, dict[str, Any]]],
    against: Configuration | None = None,
) -> dict[str, Any]:
    """The command's JSON: one configuration's scores at the top level; with ``against``, the
    second configuration's under ``compare`` and the differences (second minus first)."""
    body = evaluate(configuration, cases)
    if against is not None:
        other = evaluate(against, cases)
        body["compare"] = {"configuration": other, "differences": compare(body, other)}
    return body
