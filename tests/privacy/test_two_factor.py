"""The admin's second factor (django-otp, TOTP): enrolment by command, the code at login, a
wrong code counted by the lockout, and superusers kept out without one when
NEXUS_ADMIN_REQUIRE_2FA is on."""

from __future__ import annotations

import io
import re

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AccessLogEntry

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"
PASSWORD = "right-pw"


def code(device: TOTPDevice, ahead: int = 0) -> str:
    """The device's current code (``ahead`` steps later: within its tolerance of one)."""
    device.refresh_from_db()
    value = totp(device.bin_key, device.step, device.t0, device.digits, device.drift + ahead)
    return f"{value:0{device.digits}d}"


def user(name: str = "jefa", superuser: bool = True):
    model = get_user_model()
    if superuser:
        return model.objects.create_superuser(name, f"{name}@example.test", PASSWORD)
    return model.objects.create_user(name, password=PASSWORD, is_staff=True)


def enrol(name: str) -> tuple[TOTPDevice, str]:
    out = io.StringIO()
    call_command("enrol_totp", name, stdout=out)
    return TOTPDevice.objects.get(user__username=name), out.getvalue()


def confirmed(name: str) -> TOTPDevice:
    device, _ = enrol(name)
    call_command("enrol_totp", name, "--confirm", code(device), stdout=io.StringIO())
    device.refresh_from_db()
    assert device.confirmed
    return device


def login(client: Client, name: str, token: str = "", password: str = PASSWORD):
    return client.post(LOGIN, {"username": name, "password": password, "otp_token": token})


@override_settings(OTP_TOTP_THROTTLE_FACTOR=0)  # django-otp's pause after a wrong code
def test_enrol_prints_the_uri_and_secret_once_and_confirm_needs_a_right_code():
    user("jefa")
    device, out = enrol("jefa")
    assert not device.confirmed
    uri = re.search(r"otpauth://totp/\S+", out).group(0)
    secret = re.search(r"secret \(base32\): ([A-Z2-7=]+)", out).group(1)
    assert f"secret={secret.rstrip('=')}" in uri and "issuer=NEXUS" in uri
    with pytest.raises(CommandError, match="wrong code"):
        call_command("enrol_totp", "jefa", "--confirm", "000000" if code(device) != "000000" else "111111")
    call_command("enrol_totp", "jefa", "--confirm", code(device), stdout=io.StringIO())
    device.refresh_from_db()
    assert device.confirmed
    with pytest.raises(CommandError, match="--replace"):
        call_command("enrol_totp", "jefa", stdout=io.StringIO())
    assert AccessLogEntry.objects.filter(action="enrol_totp").count() == 2


def test_login_with_the_right_code_reaches_the_admin():
    user("jefa")
    device = confirmed("jefa")
    client = Client()
    assert login(client, "jefa", code(device, ahead=1)).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_wrong_or_missing_code_is_refused():
    user("jefa")
    device = confirmed("jefa")
    client = Client()
    missing = login(client, "jefa")
    assert (
        missing.status_code == 200
        and "Enter the code from your authenticator app" in missing.content.decode()
    )
    wrong = str((int(code(device, ahead=1)) + 1) % 10**6).zfill(6)
    refused = login(client, "jefa", wrong)
    assert refused.status_code == 200 and "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302  # to the login


def test_wrong_codes_count_toward_the_lockout():
    user("jefa")
    confirmed("jefa")
    client = Client()
    answers = [login(client, "jefa", "000000").status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert answers[-1] == 429, answers
    assert "locked" in login(client, "jefa", "000000").content.decode().lower()


def test_the_first_login_with_a_code_confirms_an_enrolment():
    user("jefa")
    device, _ = enrol("jefa")
    client = Client()
    assert login(client, "jefa", code(device)).status_code == 302
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/admin/").status_code == 200


@override_settings(NEXUS_ADMIN_REQUIRE_2FA=True)
def test_required_a_superuser_without_a_device_gets_the_enrol_page_not_the_admin():
    user("jefa")
    client = Client()
    assert login(client, "jefa").status_code == 302  # the password is right...
    index = client.get("/admin/", follow=True)
    assert index.status_code == 403  # ...but the admin is not open
    page = index.content.decode()
    assert "Two-factor authentication is required" in page and "manage.py enrol_totp jefa" in page
    assert client.get("/admin/prospects/prospect/").status_code == 302
    # Enrolled and logged in with the code, the admin opens.
    device = confirmed("jefa")
    assert login(client, "jefa", code(device, ahead=1)).status_code == 302
    assert client.get("/admin/").status_code == 200


@override_settings(NEXUS_ADMIN_REQUIRE_2FA=True)
def test_required_other_staff_may_still_log_in_without_a_device():
    user("vendedor", superuser=False)
    client = Client()
    assert login(client, "vendedor").status_code == 302
    assert client.get("/admin/").status_code == 200


@override_settings(NEXUS_ADMIN_REQUIRE_2FA=False)
def test_not_required_a_superuser_without_a_device_uses_the_admin():
    user("jefa")
    client = Client()
    assert login(client, "jefa").status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_session_without_the_code_does_not_open_an_enrolled_users_admin():
    jefa = user("jefa")
    confirmed("jefa")
    client = Client()
    client.force_login(jefa)  # a session from before the enrolment, say
    assert client.get("/admin/").status_code == 302


def test_development_and_test_default_off():
    assert settings.NEXUS_ADMIN_REQUIRE_2FA is False
