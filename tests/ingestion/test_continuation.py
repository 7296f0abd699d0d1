"""One job per chat (SPEC §12 continuity): a transcript that strictly extends a recent job's
under another sessionId is that job's next revision, found in one indexed query."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from ingestion import selectors
from ingestion.models import Job, JobStatus, SessionAlias
from ingestion.services import Outcome, job_accept, prefix_hashes, transcript_hash
from prospects.models import Prospect
from tenants.directory import default_tenant_id
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

GREETING = {"role": "assistant", "content": "Le doy la bienvenida. ¿Por dónde quiere empezar?"}


def chat(*visitor_and_replies: str) -> list[dict[str, str]]:
    """The real widget's transcript: the assistant's greeting, then visitor/assistant turns."""
    roles = ["user", "assistant"]
    return [GREETING, *({"role": roles[i % 2], "content": c} for i, c in enumerate(visitor_and_replies))]


ONE = chat("Hola, me llamo Juan Pérez, soy ingeniero")
TWO = chat("Hola, me llamo Juan Pérez, soy ingeniero", "Mucho gusto, Juan.", "¿Cuánto cuesta empezar?")
THREE = chat(*[m["content"] for m in TWO[1:]], "Depende del paquete.", "Quiero el ESP-2")


def accept(messages, session_id, fingerprint="fp-juan"):
    return job_accept(session_id=session_id, fingerprint=fingerprint, messages=messages, metadata={})


def test_prefix_hashes_are_running_and_end_with_the_transcript_hash():
    hashes = prefix_hashes(THREE)

    assert len(hashes) == len(THREE)
    assert [transcript_hash(THREE[: i + 1]) for i in range(len(THREE))] == hashes
    assert hashes[-1] == transcript_hash(THREE)
    # The canonical turn cannot be forged by moving text across a role boundary.
    assert transcript_hash([{"role": "user", "content": 'a","b'}]) != transcript_hash(
        [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    )


def test_a_new_session_id_per_message_continues_the_chat():
    first = accept(ONE, "session_1764612345678")
    second = accept(TWO, "session_1764612399001")
    third = accept(THREE, "session_1764612455123")

    assert first.outcome is Outcome.CREATED and not first.continued
    assert (second.job_id, second.outcome, second.revision, second.continued) == (
        first.job_id,
        Outcome.REVISED,
        2,
        True,
    )
    assert (third.job_id, third.revision, third.continued) == (first.job_id, 3, True)
    job = Job.objects.get()
    assert (job.session_id, job.messages, job.status) == ("session_1764612345678", THREE, JobStatus.PENDING)


def test_a_resend_of_a_continued_post_is_its_duplicate():
    first = accept(ONE, "session_1")
    accept(TWO, "session_2")

    again = accept(TWO, "session_2")

    assert (again.job_id, again.outcome, again.continued) == (first.job_id, Outcome.DUPLICATE, True)
    assert Job.objects.get().revision == 2


def test_a_late_retry_of_a_continued_post_is_stale_on_the_same_job():
    first = accept(ONE, "session_1")
    accept(TWO, "session_2")
    accept(THREE, "session_3")

    late = accept(TWO, "session_2")  # the outbox retried message 2 after message 3 landed

    assert (late.job_id, late.outcome, late.continued) == (first.job_id, Outcome.STALE, True)
    job = Job.objects.get()
    assert (job.revision, job.messages) == (3, THREE)
    assert set(job.aliases.values_list("session_id", flat=True)) == {"session_2", "session_3"}


def test_erasing_a_job_takes_its_aliases():
    first = accept(ONE, "wa_573009998877")
    accept(TWO, "wa_573009998877-2")

    Job.objects.filter(id=first.job_id).delete()

    assert not SessionAlias.objects.exists()


def test_another_chat_with_the_same_greeting_does_not_continue():
    # The greeting alone is every chat's first turn: a prefix without a visitor turn.
    accept([GREETING, {"role": "user", "content": "Hola"}], "session_a", fingerprint="")
    other = chat("Buenas tardes", "Buenas tardes, ¿en qué le ayudo?", "Busco el catálogo")

    result = accept(other, "session_b", fingerprint="")

    assert result.outcome is Outcome.CREATED and not result.continued
    assert Job.objects.count() == 2


def test_an_assistant_only_prefix_never_looks_anything_up():
    accept([GREETING, {"role": "user", "content": "Hola"}], "session_a")
    Job.objects.update(messages=[GREETING], transcript_hash=transcript_hash([GREETING]), message_count=1)

    result = accept([GREETING, {"role": "user", "content": "Hola"}], "session_b")

    assert result.outcome is Outcome.CREATED and Job.objects.count() == 2


def test_another_fingerprint_does_not_continue():
    accept(ONE, "session_1", fingerprint="fp-juan")

    result = accept(TWO, "session_2", fingerprint="fp-otro")

    assert result.outcome is Outcome.CREATED and not result.continued


@pytest.mark.parametrize(("first_fp", "later_fp"), [("", "fp-juan"), ("fp-juan", "")])
def test_a_missing_fingerprint_on_either_side_continues_and_keeps_the_jobs(first_fp, later_fp):
    first = accept(ONE, "session_1", fingerprint=first_fp)

    result = accept(TWO, "session_2", fingerprint=later_fp)

    assert (result.job_id, result.continued) == (first.job_id, True)
    assert Job.objects.get().fingerprint == first_fp


def test_a_job_older_than_the_window_is_not_continued(settings):
    accept(ONE, "session_1")
    window = settings.NEXUS["CONTINUATION_WINDOW_HOURS"]
    Job.objects.update(revised_at=timezone.now() - timedelta(hours=window, minutes=1))

    result = accept(TWO, "session_2")

    assert result.outcome is Outcome.CREATED and Job.objects.count() == 2


def test_the_session_s_own_job_wins_over_a_continuation():
    accept(ONE, "session_1")
    own = accept(chat("Otra charla"), "session_2")

    result = accept(TWO, "session_2")

    assert (result.job_id, result.outcome, result.continued) == (own.job_id, Outcome.REVISED, False)


def test_the_longest_transcript_extended_is_continued():
    accept(ONE, "session_1", fingerprint="")
    longer = accept(TWO, "session_2", fingerprint="fp-x")  # continues session_1's job
    separate = accept(ONE, "session_3", fingerprint="fp-y")  # its own job, shorter
    assert separate.job_id != longer.job_id

    result = accept(THREE, "session_4", fingerprint="")

    assert result.job_id == longer.job_id


def test_the_lookup_is_one_query(django_assert_num_queries):
    accept(ONE, "session_1")
    accept(chat("Otra"), "session_x", fingerprint="fp-other")
    hashes = prefix_hashes(TWO)[1:]

    with django_assert_num_queries(1):
        found = selectors.job_for_post(
            tenant_id=default_tenant_id(),
            session_id="session_2",
            fingerprint="fp-juan",
            hashes=hashes,
            now=timezone.now(),
        )

    assert found is not None and found[1] == "session_1"


def test_the_lookup_uses_the_indexes():
    import psycopg
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the plan is PostgreSQL's")
    Job.objects.bulk_create(
        Job(
            tenant_id=default_tenant_id(),
            session_id=f"bulk-{i}",
            transcript_hash=f"{i:064x}",
            revised_at=timezone.now(),
        )
        for i in range(2000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE ingestion_job")
    seen = []

    def capture(execute, sql, params, many, context):
        seen.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        selectors.job_for_post(
            tenant_id=default_tenant_id(),
            session_id="session_2",
            fingerprint="fp-juan",
            hashes=prefix_hashes(TWO)[1:],
            now=timezone.now(),
        )
    ((sql, params),) = seen

    # The statement is bound server-side: EXPLAIN it the same way, with its parameters.
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as bound:
        bound.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in bound.fetchall())

    assert "Seq Scan on ingestion_job" not in plan, plan


@pytest.mark.redis
def test_a_growing_chat_under_new_session_ids_ends_as_one_job_and_one_prospect(api, celery_worker):
    stamps = iter(range(1764612345678, 1764612345678 + 10_000, 1111))
    transcripts = [ONE, TWO, THREE]
    answers = []
    for messages in transcripts:
        body = {
            "messages": messages,
            "sessionId": f"session_{next(stamps)}",
            "fingerprint": "a" * 64,
            "constructorId": "maria-lopez",
            "isReturningUser": False,
            "pageContext": "default",
        }
        response = api.post("/api/nexus/producer", body, format="json")
        assert response.status_code == 202, response.content
        answers.append(response.json())

    assert len({a["queueId"] for a in answers}) == 1
    assert [a["continued"] for a in answers] == [False, True, True]
    job = wait_for(
        lambda: Job.objects.filter(status=JobStatus.COMPLETED, processed_revision=3).first(), timeout=60
    )
    assert Job.objects.count() == 1 and job.messages == THREE
    prospect = wait_for(lambda: Prospect.objects.filter(nombre__isnull=False).first())
    assert Prospect.objects.count() == 1
    assert prospect.nombre == "Juan Pérez"
