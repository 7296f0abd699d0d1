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
from tenants.models import Tenant
from tests.privacy.conftest import GROUPS

from .conftest import STAFF_PASSWORD

SCREENSHOT = Path("/work/notes/masked_contacts.png")

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")


def test_lockout_shows_its_message_and_refuses_the_right_password_until_unlocked(
    live_server, chromium, admin_log_in
):
    get_user_model().objects.create_user("vendedor", password=STAFF_PASSWORD, is_staff=True)
    page = chromium.new_page()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        admin_log_in(page, "vendedor", "wrong-password")
    sync_api.expect(page.locator("body")).to_contain_text(re.compile("locked", re.I))

    admin_log_in(page, "vendedor")
    sync_api.expect(page.locator("body")).to_contain_text(re.compile("locked", re.I))
    assert "/admin/login/" in page.url

    call_command("axes_reset_username", "vendedor", stdout=io.StringIO())  # the unlock
    admin_log_in(page, "vendedor")
    page.wait_for_url(f"{live_server.url}/admin/")
    sync_api.expect(page.locator("#user-tools")).to_contain_text("vendedor")


def test_contacts_are_masked_without_the_permission_and_clear_with_it(
    live_server, chromium, admin_log_in, staff_user
):
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
    staff_user("sales", ["Sales"], shop)
    staff_user("lead", ["Sales lead"], shop)
    lists = f"{live_server.url}/admin/prospects/prospect/"

    page = chromium.new_page(viewport={"width": 1440, "height": 900})
    admin_log_in(page, "sales", then="/admin/prospects/prospect/")
    row = page.locator("#result_list tbody tr", has_text="Ana Alfa")
    sync_api.expect(row).to_contain_text("+57 *** *** 4567")
    assert "+573001234567" not in page.content() and "ana@example.test" not in page.content()
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    page.goto(f"{lists}{ana.pk}/change/")
    sync_api.expect(page.locator("#content-main")).to_contain_text("+57 *** *** 4567")
    sync_api.expect(page.locator("#content-main")).to_contain_text("a***@example.test")
    assert "+573001234567" not in page.content()

    lead = chromium.new_page()
    admin_log_in(lead, "lead", then="/admin/prospects/prospect/")
    sync_api.expect(lead.locator("#result_list tbody tr", has_text="Ana Alfa")).to_contain_text(
        "+573001234567"
    )
    lead.goto(f"{lists}{ana.pk}/change/")
    sync_api.expect(lead.locator("#content-main")).to_contain_text("ana@example.test")
    assert SCREENSHOT.stat().st_size > 0


def test_a_totp_login(live_server, chromium, admin_log_in):
    get_user_model().objects.create_superuser("jefa", "jefa@example.test", STAFF_PASSWORD)
    call_command("enrol_totp", "jefa", stdout=io.StringIO())
    device = TOTPDevice.objects.get(user__username="jefa")
    device.confirmed = True  # as `enrol_totp jefa --confirm CODE` leaves it
    device.save()

    page = chromium.new_page()
    admin_log_in(page, "jefa")  # no code: refused
    sync_api.expect(page.locator("body")).to_contain_text("Enter the code from your authenticator app")
    token = f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"
    admin_log_in(page, "jefa", token=token)
    page.wait_for_url(f"{live_server.url}/admin/")
    sync_api.expect(page.locator("#user-tools")).to_contain_text("jefa")
