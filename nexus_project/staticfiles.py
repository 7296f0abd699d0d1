"""Cache headers for the browser client (``/static/nexus/client.js``, SPEC §12).

Sites embed the client by one of two names. ``client.<hash>.js`` (the first 12 hex digits of
its SHA-256, a symlink to ``client.js`` kept honest by tests/ingestion/api/test_client_js.py)
never changes, so browsers and CDNs may keep it forever (whitenoise's immutable test, below).
``client.js`` follows the releases: a day's cache, so a fix reaches every visitor within a day
without costing a request per page view.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from django.conf import settings  # lazy: read when a file is served, not when settings load

# The versioned name: whitenoise sends it with "max-age=315360000, public, immutable".
CLIENT_IMMUTABLE = r"/nexus/client\.[0-9a-f]{12}\.js$"
CLIENT_LATEST_MAX_AGE = 24 * 3600


def client_cache_headers(headers: MutableMapping[str, str], path: str, url: str) -> None:
    """whitenoise's add-headers hook: the unversioned client gets a day, not whitenoise's 60 s
    (in development, where whitenoise caches nothing, an edited client.js shows at once)."""
    if url.endswith("/nexus/client.js") and not settings.DEBUG:
        headers["Cache-Control"] = f"max-age={CLIENT_LATEST_MAX_AGE}, public"
