"""Logins that resist guessing: django-axes locks a username from an IP out after
NEXUS_LOGIN_FAILURE_LIMIT failures, with a clear message; a superuser unlocks it."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


def attempt(client: Client, password: str):
    return client.post(LOGIN, {"username": "vendedor", "password": password})


def test_repeated_failures_lock_the_user_out_even_with_the_right_password():
    get_user_model().objects.create_user("vendedor", password="right-pw", is_staff=True)
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, "wrong").status_code == 200  # the form again
    locked = attempt(client, "wrong")
    assert locked.status_code == 429
    assert "locked" in locked.content.decode().lower()
    assert attempt(client, "right-pw").status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_superuser_unlocks_by_deleting_the_attempt():
    get_user_model().objects.create_user("vendedor", password="right-pw", is_staff=True)
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, "wrong")
    assert attempt(client, "right-pw").status_code == 429

    AccessAttempt.objects.filter(username="vendedor").delete()  # Axes → Access attempts → delete
    assert attempt(client, "right-pw").status_code == 302


def test_a_success_before_the_limit_resets_the_count():
    get_user_model().objects.create_user("vendedor", password="right-pw", is_staff=True)
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt(client, "wrong")
    assert attempt(client, "right-pw").status_code == 302


def test_the_session_lasts_the_configured_age():
    assert settings.SESSION_COOKIE_AGE == 12 * 3600
    assert settings.NEXUS_ADMIN_URL == "admin/"


def test_production_takes_the_admin_path_and_session_age_and_check_deploy_stays_clean():
    from tests.nexus_project.test_settings import manage, production_env

    env = production_env(NEXUS_ADMIN_URL="/desk-7f3a/", NEXUS_SESSION_COOKIE_AGE="3600")
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    shown = manage(
        "shell", "-c",
        "from django.conf import settings; from django.urls import reverse; "
        "print(reverse('admin:index'), settings.SESSION_COOKIE_AGE, settings.SESSION_COOKIE_SECURE)",
        env=env,
    )  # fmt: skip
    assert shown.stdout.split()[-3:] == ["/desk-7f3a/", "3600", "True"], shown.stdout + shown.stderr


def _locked_from(client: Client, forwarded_for: str) -> bool:
    """Whether a right password, sent with this X-Forwarded-For, meets the lockout."""
    answer = client.post(
        LOGIN, {"username": "vendedor", "password": "right-pw"}, HTTP_X_FORWARDED_FOR=forwarded_for
    )
    return answer.status_code == 429


def _fail_from(client: Client, forwarded_for: str) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(LOGIN, {"username": "vendedor", "password": "wrong"}, HTTP_X_FORWARDED_FOR=forwarded_for)


def test_behind_one_trusted_proxy_two_clients_are_locked_separately(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    get_user_model().objects.create_user("vendedor", password="right-pw", is_staff=True)
    client = Client(REMOTE_ADDR="10.0.0.2")  # the proxy
    _fail_from(client, "198.51.100.7")
    assert _locked_from(client, "198.51.100.7")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.7"}
    # Another client through the same proxy is not locked out.
    assert not _locked_from(client, "203.0.113.9")


def test_without_trusted_proxies_a_forwarded_for_is_ignored(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 0}
    get_user_model().objects.create_user("vendedor", password="right-pw", is_staff=True)
    client = Client(REMOTE_ADDR="192.0.2.50")
    _fail_from(client, "198.51.100.7")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"192.0.2.50"}
    # A forged X-Forwarded-For does not dodge the lockout of the socket's address.
    assert _locked_from(client, "203.0.113.9")
