"""Print the queue metrics (the same JSON as GET /api/nexus/metrics) for a terminal."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from ingestion import selectors


class Command(BaseCommand):
    help = "Print the queue metrics from the ledger as JSON."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(json.dumps(selectors.queue_metrics(), indent=2, ensure_ascii=False))
