"""Manage webhook endpoints: add, list, disable (issue 14)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from prospects import webhooks
from prospects.models import EventType, WebhookEndpoint
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Webhook endpoints: add URL --events …, list, disable ID."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="add an endpoint; prints its id and secret")
        add.add_argument("url")
        add.add_argument("--events", required=True, help="comma-separated: " + ",".join(EventType.values))
        add.add_argument("--tenant", default=None, help="a tenant slug (default: every tenant)")
        add.add_argument("--secret", default=None, help="whsec_… (default: a new one)")
        sub.add_parser("list", help="list the endpoints")
        disable = sub.add_parser("disable", help="disable an endpoint")
        disable.add_argument("id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "add":
            events = [e.strip() for e in options["events"].split(",") if e.strip()]
            unknown = sorted(set(events) - set(EventType.values))
            if unknown or not events:
                raise CommandError(f"unknown event types: {','.join(unknown) or '(none given)'}")
            try:
                webhooks.endpoint_check(options["url"])
            except webhooks.EndpointRefused as error:
                raise CommandError(f"endpoint refused: {error}") from error
            tenant = None
            if options["tenant"]:
                tenant = Tenant.objects.filter(slug=options["tenant"]).first()
                if tenant is None:
                    raise CommandError(f"no tenant {options['tenant']!r}")
            secret = options["secret"] or webhooks.secret_new()
            if not secret.startswith("whsec_"):
                raise CommandError("a secret starts with whsec_")
            endpoint = WebhookEndpoint.objects.create(
                url=options["url"], events=events, tenant=tenant, secret=secret
            )
            self.stdout.write(f"id {endpoint.pk}\nsecret {secret}")
        elif action == "list":
            for endpoint in WebhookEndpoint.objects.select_related("tenant").order_by("pk"):
                state = "active" if endpoint.active else f"disabled {endpoint.disabled_reason}".strip()
                scope = endpoint.tenant.slug if endpoint.tenant else "*"
                self.stdout.write(
                    f"{endpoint.pk}\t{state}\t{scope}\t{','.join(endpoint.events)}\t{endpoint.url}"
                )
        else:
            if not WebhookEndpoint.objects.filter(pk=options["id"]).update(
                active=False, disabled_reason="disabled"
            ):
                raise CommandError(f"no endpoint {options['id']}")
            self.stdout.write(f"disabled {options['id']}")
