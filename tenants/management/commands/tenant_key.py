"""``manage.py tenant_key create SLUG [--label TEXT] | list [--tenant SLUG] | revoke ID``.

A server-to-server producer (the WhatsApp webhook) sends ``Authorization: Bearer <key>``;
the key names its tenant. ``create`` prints the key once, on the last line of its output.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.models import Tenant, TenantKey
from tenants.services import tenant_key_create, tenant_key_revoke


class Command(BaseCommand):
    help = "Create, list or revoke the keys server-side producers authenticate with."

    def add_arguments(self, parser: CommandParser) -> None:
        verbs = parser.add_subparsers(dest="verb", required=True)
        create = verbs.add_parser("create", help="a new key for a tenant, printed once")
        create.add_argument("slug", help="the tenant's slug")
        create.add_argument("--label", default="", help="what the key is for, e.g. whatsapp webhook")
        listing = verbs.add_parser("list", help="keys, live and revoked (never the secrets)")
        listing.add_argument("--tenant", help="only this tenant's keys")
        revoke = verbs.add_parser("revoke", help="revoke a key by its id")
        revoke.add_argument("id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"_{options['verb']}")(options)

    def _create(self, options: dict[str, Any]) -> None:
        try:
            new = tenant_key_create(slug=options["slug"], label=options["label"])
        except Tenant.DoesNotExist:
            raise CommandError(f"no tenant {options['slug']!r} (see the admin, or NEXUS_TENANTS)") from None
        self.stdout.write(f"Key {new.id} for tenant {new.tenant}. It is shown once; store it now:")
        self.stdout.write(new.key)

    def _list(self, options: dict[str, Any]) -> None:
        keys = TenantKey.objects.select_related("tenant")
        if options["tenant"]:
            keys = keys.filter(tenant__slug=options["tenant"])
        for key in keys:
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "live"
            self.stdout.write(
                f"{key.id}  {key.tenant.slug}  {key.prefix}…  {state}  {key.created_at:%Y-%m-%d}  {key.label}"
            )

    def _revoke(self, options: dict[str, Any]) -> None:
        if not tenant_key_revoke(key_id=options["id"]):
            raise CommandError(f"no live key {options['id']}")
        self.stdout.write(self.style.SUCCESS(f"Revoked key {options['id']}."))
