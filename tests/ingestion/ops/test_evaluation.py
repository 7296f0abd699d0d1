"""``manage.py extraction_eval``: scores on the golden set, offline with no key, Claude against
the fake, two configurations side by side."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from prospects.vocabulary import FIELDS

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "golden"


def run(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("extraction_eval", *args, stdout=out)
    return json.loads(out.getvalue())


def test_offline_on_the_golden_set_needs_no_key_and_scores_every_field(settings):
    settings.ANTHROPIC_API_KEY = ""

    body = run("--extractor", "offline")

    assert body["overall_accuracy"] == 1.0
    assert body["fixtures"] == len(list(GOLDEN.glob("*.json")))
    assert set(body["fields"]) == set(FIELDS)
    assert body["per_fixture"]["es_cedula_is_not_a_phone"] == {"accuracy": 1.0, "exact": True}
    assert body["tokens"]["input"] == 0 and body["cost_usd"] == 0
    assert body["latency_ms"]["p95"] >= 0


def test_a_wrong_answer_lowers_the_fields_fixture_and_overall_accuracy(tmp_path):
    case = json.loads((GOLDEN / "es_name_and_occupation.json").read_text("utf-8"))
    (tmp_path / "right.json").write_text(json.dumps(case), "utf-8")
    case["expected"]["nombre"] = "Otra Persona"
    (tmp_path / "wrong.json").write_text(json.dumps(case), "utf-8")

    body = run("--fixtures", str(tmp_path))

    assert body["fields"]["nombre"] == 0.5
    assert body["per_fixture"]["wrong"]["mismatches"]["nombre"]["expected"] == "Otra Persona"
    assert body["overall_accuracy"] == pytest.approx(1 - 1 / (2 * len(FIELDS)), abs=1e-4)
    assert body["exact_match_rate"] == 0.5


def test_claude_against_the_fake_compared_with_offline(claude_settings, fake_claude):
    body = run("--extractor", "offline", "--compare", "claude:claude-haiku-4-5")

    other = body["compare"]["configuration"]
    assert (other["extractor"], other["model"]) == ("claude", "claude-haiku-4-5")
    assert other["tokens"]["input"] > 0 and other["cost_usd"] > 0
    assert 0 <= other["overall_accuracy"] <= 1
    differences = body["compare"]["differences"]
    assert differences["overall_accuracy"] == pytest.approx(
        other["overall_accuracy"] - body["overall_accuracy"]
    )
    assert set(differences["fields"]) == set(FIELDS)
    assert fake_claude.calls >= body["fixtures"]


def test_claude_without_a_key_is_refused_with_a_message(settings):
    settings.ANTHROPIC_API_KEY = ""

    with pytest.raises(CommandError, match="ANTHROPIC_API_KEY"):
        run("--extractor", "claude")


def test_an_empty_fixture_folder_is_refused(tmp_path):
    with pytest.raises(CommandError, match=r"no \*\.json fixtures"):
        run("--fixtures", str(tmp_path))
