"""The admin site with a second factor (django-otp, TOTP).

- A staff user with a confirmed TOTP device must give its code at login (the login form asks
  for it; a wrong code is a failed login for django-axes' lockout).
- A device made by ``manage.py enrol_totp`` and not yet confirmed is confirmed by the first
  login that gives a right code.
- With ``NEXUS_ADMIN_REQUIRE_2FA`` on (production's default) a superuser without a verified
  device cannot use the admin: the login page says how to enrol instead. Other staff may
  enrol, or not.

Installed as the default admin site (``nexus_project.admin_apps``), so every ``@admin.register``
lands here.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django_otp import devices_for_user, user_has_device
from django_otp.forms import OTPAuthenticationFormMixin
from django_otp.plugins.otp_totp.models import TOTPDevice


def two_factor_required(user: Any) -> bool:
    """Whether ``user`` may use the admin only after a second factor."""
    return bool(settings.NEXUS_ADMIN_REQUIRE_2FA and getattr(user, "is_superuser", False))


class NexusLoginForm(OTPAuthenticationFormMixin, AdminAuthenticationForm):  # type: ignore[misc]
    """Username, password and, for a user with a TOTP device, its current code."""

    otp_token = forms.CharField(
        required=False,
        label="Authenticator code",
        help_text="The 6 digits your authenticator app shows (only if you enrolled).",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        user: Any = self.get_user()
        if user is None:
            return cleaned
        user.otp_device = None
        token = (cleaned.get("otp_token") or "").strip()
        error = None
        # One transaction, as django-otp's own form: the device row is locked while its code is
        # checked, and a failure's throttle count is kept (the error leaves after the commit).
        with transaction.atomic():
            device = next(iter(devices_for_user(user, confirmed=True, for_verify=True)), None)
            pending = None
            if device is None:
                pending = (
                    TOTPDevice.objects.select_for_update()
                    .filter(user=user, confirmed=False).order_by("-pk").first()
                )  # fmt: skip
                if pending is None or not token:
                    return cleaned  # not enrolled (or enrolment not confirmed): password only
                device = pending
            try:
                if not token:
                    raise forms.ValidationError(
                        "Enter the code from your authenticator app.", code="token_required"
                    )
                user.otp_device = self._verify_token(user, token, device)
            except forms.ValidationError as e:
                error = e
            else:
                if pending is not None:
                    pending.confirmed = True
                    pending.save(update_fields=["confirmed"])
        if error is not None:
            # A wrong second factor is a failed login: django-axes counts it toward the lockout.
            user_login_failed.send(
                sender=type(self), credentials={"username": cleaned.get("username")}, request=self.request
            )
            raise error
        return cleaned


class NexusAdminSite(admin.AdminSite):
    login_form = NexusLoginForm
    login_template = "admin/nexus_login.html"

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request):
            return False
        if request.path == reverse("admin:logout", current_app=self.name):
            return True  # an unverified user may still log out
        user: Any = request.user
        if user.is_verified():
            return True
        if user_has_device(user):
            return False  # enrolled: only with the code (the login page asks for it)
        return not two_factor_required(user)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        user: Any = request.user
        if (
            request.method == "GET"
            and user.is_authenticated
            and user.is_active
            and user.is_staff
            and not user.is_verified()
            and not user_has_device(user)
            and two_factor_required(user)
        ):
            context = {
                **self.each_context(request),
                "title": "Two-factor authentication required",
                "username": user.get_username(),
                "pending": TOTPDevice.objects.filter(user=user, confirmed=False).exists(),
            }
            return TemplateResponse(request, "admin/nexus_enrol_required.html", context, status=403)
        return super().login(request, extra_context)
