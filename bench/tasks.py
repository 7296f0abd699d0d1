"""The no-op reference task of figure 3: Celery's own per-task cost on the same worker."""

from __future__ import annotations

import os

from celery import shared_task
from django.core.cache import cache

# The runner counts completions here (one INCR is the whole task).
COUNTER_KEY = os.environ.get("BENCH_COUNTER_KEY", "bench:noop")


@shared_task(name="bench.noop", ignore_result=True)
def noop(*args: object) -> None:
    cache.incr(COUNTER_KEY)


# Figure 3's same-work floor (issue 18): the job's statements as raw SQL on the worker's own
# psycopg connection, no ORM, no pipeline. The Claude call is left out (the fake at 0 s costs
# the real job an HTTP round trip and its JSON), so the floor is a little above the real work.
# The Prospect INSERT names every column, as the ORM's prospect_lock does: Django's defaults
# are not database defaults, so a NOT NULL column added to the model and left out here fails
# every floor task (the review desk's notes and review_status once did, and the floor drained
# 0 jobs in every round); tests/bench/test_same_work.py runs the task against the schema.
_CLAIM = """
    UPDATE ingestion_job SET status = 'processing', claim_token = gen_random_uuid(),
        lease_until = statement_timestamp() + interval '60 seconds', claims = claims + 1,
        dispatched_at = NULL, started_at = statement_timestamp(), updated_at = statement_timestamp()
    WHERE id = %s AND status = 'pending'
    RETURNING claim_token, revision, messages, session_id, tenant_id, fingerprint, created_at
"""
_FENCE = "SELECT revision, now() FROM ingestion_job WHERE id = %s AND claim_token = %s FOR UPDATE"
_UPSERT = """
    INSERT INTO prospects_prospect (key, fingerprint, nombre, email, telefono, ocupacion, nivel_interes,
        momento_optimo, arquetipo, objeciones, stage, constructor_id, page_context, channels, is_returning,
        consent_given, consent_at, review_status, owner_id, notes, contacted_at, first_seen_at,
        last_seen_at, session_count, created_at, updated_at, tenant_id)
    VALUES (%s, %s, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '[]', 'iniciar', NULL, '', '', NULL, NULL, NULL,
        'nuevo', NULL, '', NULL, %s, %s, 1, now(), now(), %s)
    ON CONFLICT (tenant_id, key) DO UPDATE SET key = EXCLUDED.key RETURNING id
"""
_FOLD = "SELECT id, extracted, revised_at FROM ingestion_job WHERE prospect_id = %s ORDER BY revised_at"
_DONE = """
    UPDATE ingestion_job SET status = 'completed', processed_at = now(), updated_at = now(),
        claim_token = NULL, lease_until = NULL, extracted = %s, processed_revision = %s,
        prospect_id = %s, last_error = '', error_category = '', next_attempt_at = NULL
    WHERE id = %s
"""
_MERGED = "UPDATE prospects_prospect SET nombre = %s, updated_at = now() WHERE id = %s"
_EXTRACTION = """
    INSERT INTO prospects_extraction (revision, trigger, outcome, error_category, extractor, model,
        prompt_version, stop_reason, input_tokens, output_tokens, cache_creation_tokens,
        cache_read_tokens, cost_usd, latency_ms, created_at, job_id, prospect_id, result, merged)
    VALUES (%s, 'live', 'ok', '', 'floor', 'floor', 'v1', 'end_turn', 0, 0, 0, 0, 0, 0, now(), %s, %s,
        %s, %s)
    ON CONFLICT DO NOTHING
"""


@shared_task(name="bench.same_work", ignore_result=True)
def same_work(job_id: str) -> None:
    from django.db import connection
    from psycopg.types.json import Jsonb

    connection.ensure_connection()
    conn = connection.connection  # the pool's psycopg connection, autocommit as Django keeps it
    with conn.cursor() as cur:
        row = cur.execute(_CLAIM, (job_id,)).fetchone()  # commit 1 (autocommit)
        if row is None:
            return
        token, revision, _messages, session_id, tenant_id, fingerprint, created = row
        data = Jsonb({"nombre": "Floor"})
        with conn.transaction():  # commit 2
            cur.execute(_FENCE, (job_id, token))
            (prospect_id,) = cur.execute(
                _UPSERT, (f"fp:{fingerprint}" if fingerprint else f"s:{session_id}", fingerprint, created,
                          created, tenant_id),
            ).fetchone()  # fmt: skip
            cur.execute(_DONE, (data, revision, prospect_id, job_id))
            cur.execute(_FOLD, (prospect_id,)).fetchall()
            cur.execute(_MERGED, ("Floor", prospect_id))
            cur.execute(_EXTRACTION, (revision, job_id, prospect_id, data, data))
