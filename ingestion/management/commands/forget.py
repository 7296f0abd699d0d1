"""``manage.py forget --fingerprint FP | --email ADDRESS [--tenant SLUG] [--dry-run]``: erase one
person (in every tenant unless --tenant narrows it)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.services import access_record
from ingestion.ops.erasure import person_forget


class Command(BaseCommand):
    help = "Erase a person's prospect(s), jobs (transcripts) and extractions, for an erasure request."

    def add_arguments(self, parser: CommandParser) -> None:
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--fingerprint", help="The browser fingerprint the widget sent.")
        who.add_argument("--email", help="The e-mail address extracted for the person.")
        parser.add_argument("--tenant", default="", help="Only this tenant's data (default: every tenant).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be erased; erase nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        erasure = person_forget(
            fingerprint=options["fingerprint"] or "",
            email=options["email"] or "",
            tenant=options["tenant"],
            dry_run=options["dry_run"],
        )
        # The proof that the erasure happened (or was looked at), without the person: the
        # fingerprint or e-mail as its hash. The erasure itself leaves this entry alone.
        access_record(
            action="forget",
            target="forget",
            filters={key: options[key] for key in ("fingerprint", "email", "tenant", "dry_run")},
            row_count=erasure.prospects + erasure.jobs + erasure.extractions,
        )
        counts = (
            f"{erasure.prospects} prospect(s), {erasure.jobs} job(s), {erasure.extractions} extraction(s)"
        )
        if not erasure.found:
            self.stdout.write("Nothing found for that person; nothing erased.")
        elif erasure.dry_run:
            self.stdout.write(f"Dry run: would erase {counts}.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Erased {counts}."))
