"""What the browser tests share: Debian's Chromium driven by Playwright's Python package (it
never downloads a browser of its own), staff users, and a login to the admin.

A test module that needs neither Chromium nor Playwright still collects without them: the
``chromium`` fixture skips the tests that ask for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from tenants.models import Tenant, TenantMembership

CHROMIUM = Path("/usr/bin/chromium")
STAFF_PASSWORD = "browser-pw-not-a-secret"

LogIn = Callable[..., None]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the module; ``chromium.new_page()`` opens a page in a fresh
    context (its own cookies and storage), so tests sharing it do not share a login."""
    if not CHROMIUM.exists():
        pytest.skip(
            "needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; .ci/run installs it)"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="needs the playwright package (requirements-dev.txt)"
    )
    with pytest.MonkeyPatch.context() as env, sync_api.sync_playwright() as playwright:
        # Playwright's sync API keeps an event loop on this thread, which Django's async guard
        # takes for an async context; the tests' own ORM calls are plain synchronous ones.
        env.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        # --no-sandbox: chromium refuses its sandbox as root, which CI containers are.
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def staff_user() -> Callable[..., Any]:
    """Makes a staff user with ``STAFF_PASSWORD``, in the named groups, member of ``tenant``."""

    def make(username: str, groups: list[str], tenant: Tenant) -> Any:
        user = get_user_model().objects.create_user(username, password=STAFF_PASSWORD, is_staff=True)
        user.groups.set(Group.objects.filter(name__in=groups))
        TenantMembership.objects.create(user=user, tenant=tenant)
        return user

    return make


@pytest.fixture
def admin_log_in(live_server: Any) -> LogIn:
    """Submits the admin's login form on the live server:
    ``admin_log_in(page, username, password=STAFF_PASSWORD, token=None, then="/admin/")``."""

    def log_in(
        page: Any,
        username: str,
        password: str = STAFF_PASSWORD,
        token: str | None = None,
        then: str = "/admin/",
    ) -> None:
        page.goto(f"{live_server.url}/admin/login/?next={then}")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        if token is not None:
            page.fill("#id_otp_token", token)
        page.click("#login-form input[type=submit]")
        page.wait_for_load_state()

    return log_in
