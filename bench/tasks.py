"""The no-op reference task of figure 3: Celery's own per-task cost on the same worker."""

from __future__ import annotations

import os

from celery import shared_task
from django.core.cache import cache

# The runner counts completions here (one INCR is the whole task).
COUNTER_KEY = os.environ.get("BENCH_COUNTER_KEY", "bench:noop")


@shared_task(name="bench.noop", ignore_result=True)
def noop(*args: object) -> None:
    cache.incr(COUNTER_KEY)
