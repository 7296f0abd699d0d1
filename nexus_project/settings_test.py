"""Test settings: the real settings with DJANGO_ENV=test and names private to this run.

Several test runs may share one Redis (CI, a developer's parallel runs): each run gets its
own Celery queue and cache prefix, so workers never take another run's tasks, and at the end
the run deletes the keys whose names carry TEST_RUN_NAME (tests/plugins/services.py).
"""

import os
import uuid

os.environ["DJANGO_ENV"] = "test"
TEST_RUN_NAME = f"nexus-test-{uuid.uuid4().hex[:8]}"
# In the environment, so the workers and servers a test starts inherit the same names.
os.environ.setdefault("CELERY_TASK_DEFAULT_QUEUE", TEST_RUN_NAME)
os.environ.setdefault("CACHE_KEY_PREFIX", TEST_RUN_NAME)

from .settings import *  # noqa: E402,F403
