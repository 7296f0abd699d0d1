"""Erasure of one person's data, for erasure requests (``manage.py forget``).

A person is found by the browser fingerprint the widget sent, or by the e-mail address the
extraction found. Everything that holds their data goes: the Prospect(s), every job (the
transcripts) and every Extraction (results and merged snapshots). Jobs whose extraction or
transcript contains the e-mail address go too, even when not linked to a prospect yet.
A fingerprint is a visitor within one tenant (a Prospect is per (tenant, key)): without a
tenant the request reaches every tenant's visitor with that fingerprint, erring on erasing.
A worker mid-run on an erased job finds its row gone and discards its result.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q, QuerySet

from prospects.models import Prospect
from prospects.services import prospect_key

from ..models import Extraction, Job

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Erasure:
    prospects: int
    jobs: int
    extractions: int
    dry_run: bool

    @property
    def found(self) -> bool:
        return bool(self.prospects or self.jobs or self.extractions)


def _targets(
    fingerprint: str, email: str, tenant: str, phone: str = ""
) -> tuple[QuerySet[Prospect], QuerySet[Job], QuerySet[Extraction]]:
    if fingerprint:
        prospect_q = Q(fingerprint=fingerprint) | Q(key=prospect_key(fingerprint=fingerprint))
        job_q = Q(fingerprint=fingerprint)
    elif phone:
        prospect_q = Q(telefono=phone)
        job_q = Q(extracted__telefono=phone)
    else:
        prospect_q = Q(email__iexact=email)
        job_q = Q(extracted__email__iexact=email) | Q(messages__icontains=email)
    all_prospects, all_jobs = Prospect.objects.all(), Job.objects.all()
    if tenant:
        all_prospects = all_prospects.filter(tenant__slug=tenant)
        all_jobs = all_jobs.filter(tenant__slug=tenant)
    prospects = all_prospects.filter(prospect_q)
    # The person's other sessions: the fingerprints of their prospects tie them together.
    fingerprints = [fp for fp in prospects.values_list("fingerprint", flat=True) if fp]
    jobs = all_jobs.filter(job_q | Q(prospect__in=prospects) | Q(fingerprint__in=fingerprints))
    prospects = all_prospects.filter(prospect_q | Q(fingerprint__in=fingerprints))
    extractions = Extraction.objects.filter(Q(job__in=jobs) | Q(prospect__in=prospects))
    return prospects, jobs, extractions


def person_forget(
    *, fingerprint: str = "", email: str = "", tenant: str = "", dry_run: bool = False
) -> Erasure:
    """Delete (or, with ``dry_run``, count) everything held about one person (in one tenant,
    or in all when ``tenant`` is empty)."""
    fingerprint, email = fingerprint.strip(), email.strip().lower()
    if bool(fingerprint) == bool(email):
        raise ValueError("give exactly one of fingerprint or email")
    with transaction.atomic():
        prospects, jobs, extractions = _targets(fingerprint, email, tenant.strip())
        # Ids first: the querysets refer to each other, so deleting one changes the others.
        prospect_ids = list(prospects.select_for_update().values_list("id", flat=True))
        job_ids = list(jobs.select_for_update().values_list("id", flat=True))
        extraction_ids = list(extractions.values_list("id", flat=True))
        result = Erasure(len(prospect_ids), len(job_ids), len(extraction_ids), dry_run)
        if not dry_run:
            Extraction.objects.filter(id__in=extraction_ids).delete()
            Job.objects.filter(id__in=job_ids).delete()
            Prospect.objects.filter(id__in=prospect_ids).delete()
    # Counts only: the log must not keep what was just erased.
    logger.warning(
        "person data erased" if not dry_run else "person data erasure (dry run)",
        extra={"by": "fingerprint" if fingerprint else "email", "tenant": tenant or "*", **result.__dict__},
    )
    return result


def person_export(
    *, fingerprint: str = "", email: str = "", phone: str = "", tenant: str = ""
) -> dict[str, Any]:
    """Everything held on one person (the subject-access request), as JSON-ready data: their
    prospects, their jobs (transcripts not yet purged included) and the extractions. The same
    person as ``person_forget`` finds; ``phone`` in E.164, as stored."""
    given = [v for v in (fingerprint.strip(), email.strip(), phone.strip()) if v]
    if len(given) != 1:
        raise ValueError("give exactly one of fingerprint, email or phone")
    prospects, jobs, extractions = _targets(
        fingerprint.strip(), email.strip().lower(), tenant.strip(), phone=phone.strip()
    )

    def rows(queryset: QuerySet[Any]) -> list[dict[str, Any]]:
        return [
            {"id": row["pk"], **row["fields"]}
            for row in serializers.serialize("python", queryset.order_by("pk"))
        ]

    data = {
        "prospects": rows(prospects),
        "jobs": rows(jobs),
        "extractions": rows(extractions),
    }
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))
