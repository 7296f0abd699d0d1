"""Score an extractor on golden conversations before changing the model or the prompt.

    python manage.py extraction_eval                          # offline, tests/fixtures/golden
    python manage.py extraction_eval --extractor claude --model claude-haiku-5-5
    python manage.py extraction_eval --extractor offline --compare claude:claude-haiku-5-5

Prints one JSON document (``overall_accuracy`` at the top; see ``ops/evaluation.py``).
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ingestion.ops.evaluation import Configuration, golden_cases, report


class Command(BaseCommand):
    help = (
        "Run an extractor over golden conversations and print its accuracy, tokens, cost and latency as JSON."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--extractor", choices=["claude", "offline"], default="offline")
        parser.add_argument("--model", default="", help="Claude model (default ANTHROPIC_MODEL)")
        parser.add_argument(
            "--fixtures",
            default=str(Path(settings.BASE_DIR) / "tests" / "fixtures" / "golden"),
            help="folder of golden conversations (the tests/fixtures/golden format)",
        )
        parser.add_argument(
            "--compare",
            default="",
            metavar="EXTRACTOR[:MODEL]",
            help="a second configuration to run side by side, e.g. claude:claude-haiku-4-5",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["model"] and options["extractor"] != "claude":
                raise ValueError("--model applies to --extractor claude")
            first = Configuration(options["extractor"], options["model"])
            second = Configuration.parse(options["compare"]) if options["compare"] else None
            cases = golden_cases(Path(options["fixtures"]))
            body = report(first, cases, second)
        except (ValueError, OSError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(json.dumps(body, indent=2, ensure_ascii=False))
