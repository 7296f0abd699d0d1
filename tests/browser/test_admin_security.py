"""The admin's locks in a real browser (Debian's chromium driven by Playwright, against
pytest-django's live server): the login lockout and its unlock, contacts masked for a user
without prospects.view_contacts and in clear for one with it, and a TOTP login."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from prospects.models import Prospect
from tenants.models import Tenant, TenantMembership
from tests.privacy.conftest import GROUPS

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path("/work/notes/masked_contacts.png")
PASSWORD = "browser-pw-not-a-secret"

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; .ci/run installs it)",
    ),
    pytest.mark.timeout(180),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API keeps an event loop on this thread, which Django's async guard
    # takes for an async context; the test's own ORM calls are plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: chromium refuses its sandbox as root, which CI containers are.
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            launched.close()


def log_in(page, base: str, username: str, password: str, token: str | None = None, then: str = "/admin/"):
    page.goto(f"{base}/admin/login/?next={then}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    if token is not None:
        page.fill("#id_otp_token", token)
    page.click("#login-form input[type=submit]")
    page.wait_for_load_state()


def staff(name: str, groups: list[str], tenant: Tenant):
    user = get_user_model().objects.create_user(name, password=PASSWORD, is_staff=True)
    user.groups.set(Group.objects.filter(name__in=groups))
    TenantMembership.objects.create(user=user, tenant=tenant)
    return user


def test_lockout_shows_its_message_and_refuses_the_right_password_until_unlocked(live_server, browser):
    get_user_model().objects.create_user("vendedor", password=PASSWORD, is_staff=True)
    page = browser.new_page()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(page, live_server.url, "vendedor", "wrong-password")
    sync_api.expect(page.locator("body")).to_contain_text(re.compile("locked", re.I))

    log_in(page, live_server.url, "vendedor", PASSWORD)
    sync_api.expect(page.locator("body")).to_contain_text(re.compile("locked", re.I))
    assert "/admin/login/" in page.url

    call_command("axes_reset_username", "vendedor", stdout=io.StringIO())  # the unlock
    log_in(page, live_server.url, "vendedor", PASSWORD)
    page.wait_for_url(f"{live_server.url}/admin/")
    sync_api.expect(page.locator("#user-tools")).to_contain_text("vendedor")


def test_contacts_are_masked_without_the_permission_and_clear_with_it(live_server, browser):
    for name, codenames in GROUPS.items():  # a transactional test's flush dropped them
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="prospects", codename__in=codenames)
        )
    shop = Tenant.objects.create(slug="shop-a")
    now = timezone.now()
    ana = Prospect.objects.create(
        key="fp:ana", tenant=shop, first_seen_at=now, last_seen_at=now,
        nombre="Ana Alfa", email="ana@example.test", telefono="+573001234567",
    )  # fmt: skip
    staff("sales", ["Sales"], shop)
    staff("lead", ["Sales lead"], shop)
    lists = f"{live_server.url}/admin/prospects/prospect/"

    page = browser.new_page(viewport={"width": 1440, "height": 900})
    log_in(page, live_server.url, "sales", PASSWORD, then="/admin/prospects/prospect/")
    row = page.locator("#result_list tbody tr", has_text="Ana Alfa")
    sync_api.expect(row).to_contain_text("+57 *** *** 4567")
    assert "+573001234567" not in page.content() and "ana@example.test" not in page.content()
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    page.goto(f"{lists}{ana.pk}/change/")
    sync_api.expect(page.locator("#content-main")).to_contain_text("+57 *** *** 4567")
    sync_api.expect(page.locator("#content-main")).to_contain_text("a***@example.test")
    assert "+573001234567" not in page.content()

    lead = browser.new_page()
    log_in(lead, live_server.url, "lead", PASSWORD, then="/admin/prospects/prospect/")
    sync_api.expect(lead.locator("#result_list tbody tr", has_text="Ana Alfa")).to_contain_text(
        "+573001234567"
    )
    lead.goto(f"{lists}{ana.pk}/change/")
    sync_api.expect(lead.locator("#content-main")).to_contain_text("ana@example.test")
    assert SCREENSHOT.stat().st_size > 0


def test_a_totp_login(live_server, browser):
    get_user_model().objects.create_superuser("jefa", "jefa@example.test", PASSWORD)
    call_command("enrol_totp", "jefa", stdout=io.StringIO())
    device = TOTPDevice.objects.get(user__username="jefa")
    device.confirmed = True  # as `enrol_totp jefa --confirm CODE` leaves it
    device.save()

    page = browser.new_page()
    log_in(page, live_server.url, "jefa", PASSWORD)  # no code: refused
    sync_api.expect(page.locator("body")).to_contain_text("Enter the code from your authenticator app")
    token = f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"
    log_in(page, live_server.url, "jefa", PASSWORD, token=token)
    page.wait_for_url(f"{live_server.url}/admin/")
    sync_api.expect(page.locator("#user-tools")).to_contain_text("jefa")
