"""The Celery app, configured from Django settings under the CELERY_ namespace; tracing is set
up in each process that runs tasks or beat (nexus_project/tracing.py), after any fork."""

import os
from typing import Any

from celery import Celery, signals
from celery.concurrency import get_implementation
from celery.concurrency.prefork import TaskPool as PreforkPool

from nexus_project import tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nexus_project.settings")

app = Celery("nexus_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_process_init.connect
def _trace_pool_process(**_: Any) -> None:
    # A prefork child: its own provider, since the parent's export thread stayed behind.
    tracing.tracing_setup("worker")


@signals.worker_process_shutdown.connect
def _flush_pool_process(**_: Any) -> None:
    tracing.tracing_shutdown()


@signals.worker_init.connect
def _trace_single_process_worker(sender: Any = None, **_: Any) -> None:
    # The threads and solo pools run tasks in the worker's own process, which forks no child.
    pool = get_implementation(getattr(sender, "pool_cls", None) or app.conf.worker_pool)
    if not (isinstance(pool, type) and issubclass(pool, PreforkPool)):
        tracing.tracing_setup("worker")


@signals.beat_init.connect
def _trace_beat(**_: Any) -> None:
    tracing.tracing_setup("beat")
