"""CORS for the tenants' domains, beside ``CORS_ALLOWED_ORIGINS``.

django-cors-headers asks its ``check_request_enabled`` signal about an origin its own lists
do not hold; this answers yes for a tenant domain's origin (``tenancy.origin_tenant``: https,
or http for localhost outside production) on the API's paths. The domains come from the
tenants' per-process cache, so a domain added in the admin is allowed within
``NEXUS_TENANT_CACHE_SECONDS``, without a restart, and without a query per request.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from .tenancy import origin_tenant


def allow_tenant_origins(sender: Any, request: HttpRequest, **kwargs: Any) -> bool:
    # The signal also decides whether CORS applies to a path at all: only the API's.
    if not re.match(settings.CORS_URLS_REGEX, request.path_info):
        return False
    origin = request.headers.get("origin") or ""
    return bool(origin) and origin_tenant(origin) is not None
