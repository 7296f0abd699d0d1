"""Benchmark settings: the production settings plus the bench-only reference routes and task.

Selected with DJANGO_SETTINGS_MODULE=bench.settings by `python -m bench`, so production code
carries no benchmark code.
"""

from nexus_project.settings import *  # noqa: F403
from nexus_project.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
ROOT_URLCONF = "bench.urls"
