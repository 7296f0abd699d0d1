"""WSGI entry point (gunicorn nexus_project.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nexus_project.settings")
application = get_wsgi_application()
