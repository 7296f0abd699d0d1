"""``manage.py export_person --fingerprint FP | --email ADDRESS | --phone NUMBER [--tenant SLUG]``:
print as JSON everything held on one person (a subject-access request), and log that it was
done (the access log, with the person as a hash)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.services import access_record
from ingestion.extraction.guard import normalise_email, normalise_phone
from ingestion.ops.erasure import person_export


class Command(BaseCommand):
    help = "Print as JSON everything held on one person: prospects, jobs (transcripts), extractions."

    def add_arguments(self, parser: CommandParser) -> None:
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--fingerprint", help="The browser fingerprint the widget sent.")
        who.add_argument("--email", help="The e-mail address extracted for the person.")
        who.add_argument("--phone", help="The phone, in any form (normalised to E.164 as stored).")
        parser.add_argument("--tenant", default="", help="Only this tenant's data (default: every tenant).")

    def handle(self, *args: Any, **options: Any) -> None:
        email = phone = ""
        if options["email"]:
            email = normalise_email(options["email"]) or ""
            if not email:
                raise CommandError("--email is not an e-mail address")
        if options["phone"]:
            phone = normalise_phone(options["phone"]) or ""
            if not phone:
                raise CommandError("--phone is not a valid phone number")
        data = person_export(
            fingerprint=options["fingerprint"] or "", email=email, phone=phone, tenant=options["tenant"]
        )
        rows = sum(len(v) for v in data.values())
        access_record(
            action="export_person",
            target="export_person",
            filters={"fingerprint": options["fingerprint"], "email": email, "phone": phone,
                     "tenant": options["tenant"]},
            row_count=rows,
        )  # fmt: skip
        self.stdout.write(json.dumps(data, ensure_ascii=False, indent=2))
