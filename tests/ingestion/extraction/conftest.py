"""Fixtures for the extraction tests: a started FakeClaude and settings pointing at it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "golden"


def load_golden() -> list[tuple[str, dict[str, Any]]]:
    return [(path.stem, json.loads(path.read_text("utf-8"))) for path in sorted(GOLDEN_DIR.glob("*.json"))]
