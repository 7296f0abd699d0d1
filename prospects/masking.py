"""Contact details as a user without ``prospects.view_contacts`` sees them: enough to tell two
apart, never enough to reach the person."""

from __future__ import annotations

import phonenumbers

CONTACTS_PERMISSION = "prospects.view_contacts"
EXPORT_PERMISSION = "prospects.export_prospects"
CONTACT_FIELDS = ("email", "telefono")


def mask_email(value: str | None) -> str | None:
    """``juan@example.com`` → ``j***@example.com``."""
    if not value:
        return value
    local, at, domain = value.partition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(value: str | None) -> str | None:
    """``+573001234567`` → ``+57 *** *** 4567``: the country and the last four digits."""
    if not value:
        return value
    digits = "".join(c for c in value if c.isdigit())
    last = digits[-4:] if len(digits) > 4 else ""
    try:
        country = f"+{phonenumbers.parse(value, None).country_code} "
    except phonenumbers.NumberParseException:
        country = ""
    return f"{country}*** *** {last}".rstrip()
