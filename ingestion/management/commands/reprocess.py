"""Re-run extraction for the jobs a filter selects (SPEC §7).

    manage.py reprocess --status failed --since 2h --dry-run
    manage.py reprocess --prompt-version-not v3
    manage.py reprocess --all --yes
    manage.py reprocess --tenant ecommerce --status failed

Filters combine (AND). Each selected job goes through ``services.job_requeue`` with
``reextract=True``: a new Extraction record even for a revision already extracted. Jobs whose
transcript was purged by retention, and jobs being processed right now, are reported as skipped.
Requeued jobs run on the bulk lane. ``--batch`` submits them through the Message Batches API
instead (``worker/batches.py``: half price, folded in by beat).
"""

from __future__ import annotations

import re
from argparse import ArgumentParser, ArgumentTypeError
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from audit.services import access_record
from ingestion.extraction.base import ExtractionError
from ingestion.models import Extraction, ExtractionOutcome, Job, JobStatus
from ingestion.services import job_requeue
from ingestion.worker.batches import BatchesUnavailable, batch_submit

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def duration(value: str) -> timedelta:
    """``30m``, ``2h``, ``7d`` (also ``45s``) as a timedelta."""
    match = re.fullmatch(r"(\d+)([smhd])", value.strip())
    if not match:
        raise ArgumentTypeError(f"{value!r} is not a duration like 30m, 2h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def select_jobs(
    *,
    tenant: str | None = None,
    session: str | None = None,
    fingerprint: str | None = None,
    status: str | None = None,
    since: timedelta | None = None,
    prompt_version_not: str | None = None,
) -> QuerySet[Job]:
    """The jobs the filters select, oldest revision first."""
    jobs = (
        Job.objects.select_related("tenant").defer("messages", "metadata", "extracted").order_by("revised_at")
    )
    if tenant:
        jobs = jobs.filter(tenant__slug=tenant)
    if session:
        jobs = jobs.filter(session_id=session)
    if fingerprint:
        jobs = jobs.filter(fingerprint=fingerprint)
    if status:
        jobs = jobs.filter(status=status)
    if since:
        jobs = jobs.filter(revised_at__gte=timezone.now() - since)
    if prompt_version_not is not None:
        latest_ok = Extraction.objects.filter(job=OuterRef("pk"), outcome=ExtractionOutcome.OK).order_by(
            "-created_at", "-id"
        )
        # Jobs never extracted successfully have no prompt version to compare; --status picks them.
        jobs = (
            jobs.annotate(latest_prompt=Subquery(latest_ok.values("prompt_version")[:1]))
            .filter(latest_prompt__isnull=False)
            .exclude(latest_prompt=prompt_version_not)
        )
    return jobs


def _row(job: Job) -> str:
    return f"{job.id}  {job.tenant.slug}  {job.session_id}  {job.status}"


class Command(BaseCommand):
    help = "Re-queue jobs for re-extraction: by session, fingerprint, status, age or prompt version."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--tenant", help="only this tenant's jobs (combines with the other filters)")
        parser.add_argument("--session", help="one session id (with --tenant when several tenants have it)")
        parser.add_argument("--fingerprint", help="every session of one visitor")
        parser.add_argument("--status", choices=JobStatus.values, help="jobs in this status, e.g. failed")
        parser.add_argument(
            "--since", type=duration, help="jobs whose current revision arrived within, e.g. 2h"
        )
        parser.add_argument(
            "--prompt-version-not",
            metavar="VERSION",
            help="jobs whose latest successful extraction used another prompt version",
        )
        parser.add_argument("--all", action="store_true", help="every job (needs --yes)")
        parser.add_argument("--yes", action="store_true", help="confirm --all")
        parser.add_argument(
            "--dry-run", action="store_true", help="print what would be queued, queue nothing"
        )
        parser.add_argument(
            "--batch",
            action="store_true",
            help="submit through the Message Batches API (half price, results within 24 h; needs a key)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        filters = {
            key: options[key] for key in ("session", "fingerprint", "status", "since", "prompt_version_not")
        }
        tenant = options["tenant"]
        if options["all"]:
            if any(value is not None for value in filters.values()):
                raise CommandError("--all cannot be combined with filters")
            if not options["yes"] and not options["dry_run"]:
                raise CommandError(
                    "--all re-extracts every job (Claude calls cost money): add --yes to confirm"
                )
        elif all(value is None for value in filters.values()):
            raise CommandError(
                "choose jobs: --session, --fingerprint, --status, --since, --prompt-version-not or --all "
                "(--tenant narrows any of them)"
            )

        dry_run = options["dry_run"]
        if options["batch"] and not dry_run:
            self._batch(filters)
            return
        queued = purged = busy = 0
        verb = "would queue" if dry_run else "queued"
        for job in select_jobs(tenant=tenant, **filters).iterator(chunk_size=500):
            if job.purged_at is not None:
                purged += 1
                self.stdout.write(f"skipped  {_row(job)}  (transcript purged)")
                continue
            if job.status == JobStatus.PROCESSING or not (
                dry_run or job_requeue(job_id=job.id, reextract=True)
            ):
                busy += 1
                self.stdout.write(f"skipped  {_row(job)}  (being processed)")
                continue
            queued += 1
            # The category says why a failed job failed (last_error in full is in the admin).
            why = f"  {job.error_category}" if job.error_category else ""
            self.stdout.write(f"{verb}  {_row(job)}{why}")
        access_record(
            action="reprocess", target="reprocess", filters={**filters, "tenant": tenant, "dry_run": dry_run},
            row_count=queued,
        )  # fmt: skip
        summary = f"{verb} {queued} job(s)"
        if purged or busy:
            summary += f"; skipped {purged + busy} (purged: {purged}, processing: {busy})"
        self.stdout.write(self.style.SUCCESS(summary + ("  [dry run: nothing queued]" if dry_run else "")))

    def _batch(self, filters: dict[str, Any]) -> None:
        jobs = select_jobs(**filters).filter(purged_at__isnull=True).exclude(status=JobStatus.PROCESSING)
        try:
            created = batch_submit(job_ids=jobs.values_list("id", flat=True).iterator(chunk_size=2000))
        except (BatchesUnavailable, ExtractionError) as error:
            raise CommandError(f"batch not submitted: {error}") from error
        for batch in created:
            self.stdout.write(f"batch  {batch.id}  {batch.provider_id}  {batch.requests} job(s)")
        total = sum(b.requests for b in created)
        access_record(
            action="reprocess", target="reprocess", filters={**filters, "batch": True}, row_count=total
        )
        self.stdout.write(self.style.SUCCESS(f"submitted {total} job(s) in {len(created)} batch(es)"))
