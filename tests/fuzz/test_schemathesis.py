"""Schemathesis against the served OpenAPI schema, through the real WSGI app, database and
broker: generated requests for the producer (valid by the schema, and deliberately invalid).

Asserted: no 5xx; every 4xx is the JSON error shape; no row exists except those of accepted
requests; the share of 2xx among schema-valid requests stays above a floor, so a schema (or
validation) that rejects everything cannot pass. The counts are printed for the record.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode

from ingestion.models import Job
from tests.fuzz.conftest import REPORT

pytestmark = [pytest.mark.fuzz, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

PRODUCER = "/api/nexus/producer"
# Requests per mode: together over 1,000 for the producer, in well under a minute.
EXAMPLES = {GenerationMode.POSITIVE: 700, GenerationMode.NEGATIVE: 500}
JOB_EXAMPLES = 100
# Schema-valid requests may meet a 409: generated sessionIds repeat (which also exercises the
# duplicate/stale/revision paths) with another fingerprint. Every other schema-valid request
# must be accepted; and overall a fair share must be 2xx, or the run proved nothing.
MIN_VALID_ACCEPTED_SHARE = 0.98
MIN_OVERALL_2XX_SHARE = 0.25


@pytest.fixture
def schema(settings: Any) -> Any:
    settings.NEXUS_PUBLIC_DOCS = True
    # The API refuses NUL anywhere (PostgreSQL cannot store it) and the schema says so in
    # words; schema-valid generation leaves it out. The hostile cases send it on purpose.
    config = schemathesis.Config.from_dict({"generation": {"allow-x00": False}})
    return schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(), config=config)


def run(
    operation: Any, mode: GenerationMode, statuses: Counter[int], accepted: set[str], examples: int
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],  # no shrinking: every failure is asserted with its request
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Any) -> None:
        response = case.call()
        statuses[response.status_code] += 1
        request = f"{case.method} {case.path} body={str(case.body)[:300]!r}"
        assert response.status_code < 500, f"{response.status_code} for {request}: {response.text[:300]}"
        if 200 <= response.status_code < 300 and case.method == "POST":
            accepted.add(response.json()["queueId"])
        elif response.status_code >= 400:
            body = json.loads(response.content)
            assert body.get("error") and body.get("message"), f"bad error body for {request}: {body}"
            if mode is GenerationMode.POSITIVE and response.status_code != 409:
                REFUSED_VALID[(response.status_code, body.get("field", "")[:20], body["message"][:50])] += 1

    send()


REFUSED_VALID: Counter[tuple[int, str, str]] = Counter()


def report(label: str, statuses: Counter[int]) -> float:
    total = sum(statuses.values())
    ok = sum(n for code, n in statuses.items() if 200 <= code < 300)
    share = ok / total if total else 0.0
    counts = dict(sorted(statuses.items()))
    line = f"[fuzz] {label}: {total} requests, statuses {counts}, 2xx share {share:.1%}"
    print(line)
    REPORT.append(line)
    return share


def test_producer_survives_generated_requests(schema: Any) -> None:
    operation = schema[PRODUCER]["POST"]
    accepted: set[str] = set()
    positive: Counter[int] = Counter()
    negative: Counter[int] = Counter()

    run(operation, GenerationMode.POSITIVE, positive, accepted, EXAMPLES[GenerationMode.POSITIVE])
    run(operation, GenerationMode.NEGATIVE, negative, accepted, EXAMPLES[GenerationMode.NEGATIVE])

    report("schema-valid", positive)
    report("schema-invalid", negative)
    overall_share = report("all", positive + negative)
    print(f"[fuzz] schema-valid requests refused other than 409: {dict(REFUSED_VALID)}")
    assert sum(positive.values()) + sum(negative.values()) >= 1000
    without_conflicts = sum(positive.values()) - positive[409]
    accepted_valid = sum(n for code, n in positive.items() if 200 <= code < 300)
    assert accepted_valid >= MIN_VALID_ACCEPTED_SHARE * without_conflicts, REFUSED_VALID
    assert overall_share >= MIN_OVERALL_2XX_SHARE
    # The schema-invalid requests were all refused: the schema is no looser than the API.
    assert not any(200 <= code < 300 for code in negative), negative
    # Rejected requests left nothing behind: every row belongs to an accepted request.
    assert set(map(str, Job.objects.values_list("id", flat=True))) == accepted


def test_job_endpoint_survives_generated_requests(schema: Any) -> None:
    statuses: Counter[int] = Counter()

    run(schema["/api/nexus/jobs/{queue_id}"]["GET"], GenerationMode.POSITIVE, statuses, set(), JOB_EXAMPLES)

    report("jobs endpoint", statuses)
    assert set(statuses) == {404}  # random queueIds: a JSON 404, never a 5xx
