from __future__ import annotations

from typing import Any

import pytest

from ingestion.extraction.offline import OFFLINE_VERSION, OfflineExtractor
from prospects.vocabulary import FIELDS

from .conftest import load_golden

GOLDEN = load_golden()


def test_there_are_at_least_thirty_golden_conversations() -> None:
    assert len(GOLDEN) >= 30


@pytest.mark.parametrize(("name", "case"), GOLDEN, ids=[name for name, _ in GOLDEN])
def test_offline_extraction_matches_the_hand_written_golden(name: str, case: dict[str, Any]) -> None:
    data = OfflineExtractor().extract(case["messages"]).data
    assert set(data) == set(FIELDS)
    mismatches = {f: (data[f], case["expected"][f]) for f in FIELDS if data[f] != case["expected"][f]}
    assert not mismatches, f"{name}: {case['description']}: got/expected {mismatches}"


def test_offline_result_names_itself_and_measures_latency() -> None:
    result = OfflineExtractor().extract([{"role": "user", "content": "Hola, me llamo Juan Pérez"}])
    assert (result.extractor, result.model, result.prompt_version) == ("offline", "offline", OFFLINE_VERSION)
    assert result.latency_ms >= 0
    assert result.usage.input_tokens == 0


def test_offline_reads_only_the_visitor() -> None:
    messages = [
        {"role": "assistant", "content": "Soy Nexus, me llamo Asistente. Quiero ayudarte: nexus@example.com"},
        {"role": "user", "content": "hola"},
    ]
    data = OfflineExtractor().extract(messages).data
    assert data["nombre"] is None and data["email"] is None
    assert data["nivel_interes"] == 3
