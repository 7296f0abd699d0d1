"""Test settings: the real settings with DJANGO_ENV=test and names private to this run.

Several test runs may share one Redis (CI, a developer's parallel runs): each run gets its
own Celery queue and cache prefix, so workers never take another run's tasks.
"""

import os
import uuid

os.environ["DJANGO_ENV"] = "test"
_run = uuid.uuid4().hex[:8]
os.environ.setdefault("CELERY_TASK_DEFAULT_QUEUE", f"nexus-test-{_run}")
os.environ.setdefault("CACHE_KEY_PREFIX", f"nexus-test-{_run}")

from .settings import *  # noqa: E402,F403
