"""Enrol a user's TOTP authenticator for the admin's second factor (django-otp).

    python manage.py enrol_totp USERNAME            # prints the otpauth:// URI and secret, once
    python manage.py enrol_totp USERNAME --confirm 123456

The new device is unconfirmed until a right code confirms it: ``--confirm`` here, or the first
admin login that gives one. ``--replace`` drops a confirmed device to enrol a new one (a lost
phone)."""

from __future__ import annotations

import base64
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.services import access_record


class Command(BaseCommand):
    help = "Enrol a TOTP authenticator for USERNAME (prints the otpauth:// URI once), or confirm it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--confirm", metavar="TOKEN", help="confirm the enrolled device with a code")
        parser.add_argument("--replace", action="store_true", help="replace a confirmed device")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = get_user_model().objects.get(**{get_user_model().USERNAME_FIELD: options["username"]})
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user {options['username']!r}") from None
        devices = TOTPDevice.objects.filter(user=user)
        token = options["confirm"]
        pending = devices.filter(confirmed=False).order_by("-pk").first()
        if token and pending is not None:
            if not pending.verify_token(token.strip()):
                raise CommandError("wrong code (or one already used): try the next one the app shows")
            pending.confirmed = True
            pending.save(update_fields=["confirmed"])
            access_record(action="enrol_totp", target=f"user:{user.pk}", filters={"confirmed": True})
            self.stdout.write(self.style.SUCCESS(f"confirmed: {user.get_username()} logs in with its codes"))
            return
        if token:
            raise CommandError("nothing to confirm: enrol first (enrol_totp USERNAME)")
        if devices.filter(confirmed=True).exists() and not options["replace"]:
            raise CommandError(f"{user.get_username()} has a confirmed device; --replace makes a new one")
        with transaction.atomic():
            devices.delete()
            device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
        access_record(action="enrol_totp", target=f"user:{user.pk}", filters={"replace": options["replace"]})
        secret = base64.b32encode(device.bin_key).decode()
        self.stdout.write(
            f"Add this to an authenticator app (shown once):\n{device.config_url}\n"
            f"secret (base32): {secret}\n"
            f"Then confirm: enrol_totp {user.get_username()} --confirm CODE, or log in to the admin "
            "with the code."
        )
