"""Fixtures for the extraction tests: a started FakeClaude and settings pointing at it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingestion.extraction import reset_extractor
from ingestion.extraction.fake_server import FakeClaude

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "golden"


def load_golden() -> list[tuple[str, dict[str, Any]]]:
    return [(path.stem, json.loads(path.read_text("utf-8"))) for path in sorted(GOLDEN_DIR.glob("*.json"))]


@pytest.fixture
def fake_claude() -> Iterator[FakeClaude]:
    with FakeClaude() as fake:
        yield fake


@pytest.fixture
def claude_settings(settings: Any, fake_claude: FakeClaude) -> Iterator[Any]:
    """Settings that make get_extractor() a ClaudeExtractor talking to the fake."""
    settings.EXTRACTOR = "claude"
    settings.ANTHROPIC_API_KEY = "test-key"
    settings.ANTHROPIC_BASE_URL = fake_claude.url
    settings.ANTHROPIC_MODEL = "claude-haiku-4-5"
    settings.ANTHROPIC_TIMEOUT_SECONDS = 5.0
    reset_extractor()
    yield settings
    reset_extractor()
