"""The client's IP address as the API throttles see it, for django-axes too.

DRF's ``get_ident`` with ``REST_FRAMEWORK['NUM_PROXIES']`` (``NEXUS_NUM_PROXIES``): 0 trusts
only the socket address, so a client-sent X-Forwarded-For is ignored; N takes the address the
N-th proxy from the right appended. One trust count for the lockout and the throttles."""

from __future__ import annotations

from typing import Any

from rest_framework.throttling import BaseThrottle


def client_ip(request: Any) -> str | None:
    """None when the request has no address (a test client's ``force_login``)."""
    ident = BaseThrottle().get_ident(request)
    return str(ident) if ident else None
