"""Tracing as deployed: gunicorn (gunicorn.conf.py) and a prefork Celery worker, each process
with its own provider, export one POST's trace over OTLP/HTTP to a real receiver; the worker
asks the fake Messages API through the real SDK. One trace joins the request, the publish, the
task, the job's spans and the Claude call, and no span carries the visitor's contact data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from ingestion.models import Job, JobStatus
from nexus_project import tracing
from tests.conftest import producer_body, transcript, wait_for
from tests.fakes.claude_api import FakeClaude
from tests.fakes.otlp_receiver import OtlpReceiver, trace_tree
from tests.test_gunicorn_conf import database_url, free_port, post

ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent

# Invented visitor: every piece below must stay out of every span.
EMAIL = "marta.quiroga@example.org"
PHONE = "+34 612 345 678"
MESSAGES = transcript(
    "Hola, soy Marta Quiroga y busco invertir en un piso en Valencia",
    "Encantado, Marta. ¿Cómo puedo contactarte?",
    f"Mi correo es {EMAIL} y mi teléfono {PHONE}",
)
PRIVATE = [EMAIL, PHONE, "612 345 678", "612345678", "Marta Quiroga", "piso en Valencia", "Mi correo es"]


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


def stack_env(tmp_path: Path, receiver: OtlpReceiver, fake: FakeClaude) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PROMETHEUS_MULTIPROC_DIR"))}
    env.update(
        DJANGO_ENV="development",
        DJANGO_SETTINGS_MODULE="nexus_project.settings",
        DJANGO_SECRET_KEY="tracing-test-key-not-a-secret",
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        CELERY_TASK_DEFAULT_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        CACHE_KEY_PREFIX=settings.CACHES["default"]["KEY_PREFIX"],
        NEXUS_VAR_DIR=str(tmp_path),
        NEXUS_THROTTLE_IP_RATE="off",
        NEXUS_THROTTLE_SESSION_RATE="off",
        LOG_LEVEL="INFO",
        EXTRACTOR="claude",
        ANTHROPIC_API_KEY="test-key",
        ANTHROPIC_BASE_URL=fake.url,
        ANTHROPIC_MODEL="claude-haiku-5-5",
        # The standard variables only; a short batch delay so the test need not wait 5 s.
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_RESOURCE_ATTRIBUTES="service.namespace=nexus,deployment.environment.name=test",
    )
    return env


class Stack:
    """gunicorn (two sync workers) and a Celery worker (prefork with one child, or the threads
    pool of the compose file), logs in tmp_path."""

    def __init__(self, tmp_path: Path, env: dict[str, str], pool: str) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        web = [str(BIN / "gunicorn"), "nexus_project.wsgi:application", "-c", "gunicorn.conf.py"]
        worker = [
            *(
                str(BIN / "celery"),
                "-A",
                "nexus_project",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "1",
            ),
            *("--loglevel", "INFO", "-n", f"tracing-{os.getpid()}@%h"),
            *("--without-mingle", "--without-gossip"),
        ]
        for name, argv, extra in [
            ("web", web, {"GUNICORN_BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": "2"}),
            ("worker", worker, {}),
        ]:
            log = (tmp_path / f"{name}.log").open("wb")
            self.processes[name] = subprocess.Popen(
                argv, cwd=ROOT, env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT
            )

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def wait_ready(self) -> None:
        def ready() -> bool:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    pytest.fail(f"{name} exited:\n{self.log(name)[-3000:]}")
            try:
                urllib.request.urlopen(f"{self.base}/healthz", timeout=2)
            except OSError:
                return False
            return " ready." in self.log("worker")

        wait_for(ready, timeout=90, interval=0.2)

    def stop(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(params=["prefork", "threads"])
def stack(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    receiver: OtlpReceiver,
    fake_claude: FakeClaude,
    redis_client: Any,
) -> Iterator[Stack]:
    redis_client.delete(settings.CELERY_TASK_DEFAULT_QUEUE)
    stack = Stack(tmp_path, stack_env(tmp_path, receiver, fake_claude), request.param)
    try:
        stack.wait_ready()
        yield stack
    finally:
        stack.stop()


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings_in(item)


def joined_trace(receiver: OtlpReceiver) -> tuple[str, list[dict[str, Any]]] | None:
    """The POST's trace once it holds the web request, the publish, the task, the job's spans
    and the Claude call (spans arrive in batches from three processes)."""
    spans = receiver.spans()
    posts = [s for s in spans if s["kind"] == "SERVER" and s["name"] == "POST api/nexus/producer"]
    if not posts:
        return None
    trace_id = posts[0]["trace_id"]
    own = [s for s in spans if s["trace_id"] == trace_id]
    names = {s["name"] for s in own}
    wanted = {
        "nexus.job",
        "nexus.job.claim",
        "nexus.job.extract",
        "nexus.job.record",
        "chat claude-haiku-5-5",
    }
    if not wanted <= names or not any(s["kind"] == "CONSUMER" for s in own):
        return None
    return trace_id, own


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_one_trace_joins_the_post_the_task_and_the_claude_call_without_personal_data(
    stack, receiver, fake_claude
):
    body = producer_body(MESSAGES)
    assert post(stack.base, body) == 202
    wait_for(
        lambda: Job.objects.filter(session_id=body["sessionId"], status=JobStatus.COMPLETED).exists(),
        timeout=60,
        interval=0.2,
    )
    try:
        trace_id, spans = wait_for(lambda: joined_trace(receiver), timeout=60, interval=0.2)
    except AssertionError:
        seen = sorted({(s["service"], s["trace_id"][:8], s["kind"], s["name"]) for s in receiver.spans()})
        pytest.fail(f"no joined trace; spans seen: {seen}\nworker log:\n{stack.log('worker')[-3000:]}")
    print("\n" + trace_tree(receiver.spans(), trace_id))

    by_name = {s["name"]: s for s in spans}
    services = {s["service"] for s in spans}
    assert services == {"web", "worker"}
    assert all(s["resource"].get("service.namespace") == "nexus" for s in spans)
    (web,) = [s for s in spans if s["kind"] == "SERVER"]
    assert web["attributes"]["http.route"] == "api/nexus/producer"
    assert not {"client.address", "net.peer.ip", "http.client_ip"} & set(web["attributes"]), (
        "the visitor's IP"
    )
    publish = next(s for s in spans if s["kind"] == "PRODUCER")
    task = next(s for s in spans if s["kind"] == "CONSUMER")
    assert (web["service"], publish["service"], task["service"]) == ("web", "web", "worker")
    assert task["parent_span_id"] == publish["span_id"], "the context crossed the broker"
    job_span = by_name["nexus.job"]
    assert job_span["parent_span_id"] == task["span_id"]
    job = Job.objects.get(session_id=body["sessionId"])
    assert job_span["attributes"]["nexus.job.id"] == str(job.id)
    assert job_span["attributes"]["nexus.job.revision"] == 1
    assert job_span["attributes"]["nexus.job.outcome"] == "completed"
    for step in ("nexus.job.claim", "nexus.job.extract", "nexus.job.record"):
        assert by_name[step]["parent_span_id"] == job_span["span_id"]
        assert by_name[step]["attributes"]["nexus.job.id"] == str(job.id)
    assert by_name["nexus.job.record"]["attributes"]["nexus.job.outcome"] == "completed"

    chat = by_name["chat claude-haiku-5-5"]
    assert chat["parent_span_id"] == by_name["nexus.job.extract"]["span_id"]
    extraction = job.extractions.get()
    gen_ai = chat["attributes"]
    assert gen_ai["gen_ai.system"] == gen_ai["gen_ai.provider.name"] == "anthropic"
    assert gen_ai["gen_ai.operation.name"] == "chat"
    assert gen_ai["gen_ai.request.model"] == "claude-haiku-5-5"
    assert gen_ai["gen_ai.response.model"] == extraction.model
    prompt_tokens = extraction.input_tokens + extraction.cache_read_tokens + extraction.cache_creation_tokens
    assert gen_ai["gen_ai.usage.input_tokens"] == prompt_tokens > extraction.input_tokens > 0
    assert gen_ai["gen_ai.usage.output_tokens"] == extraction.output_tokens > 0
    assert gen_ai["gen_ai.usage.cache_read.input_tokens"] == extraction.cache_read_tokens
    assert gen_ai["gen_ai.usage.cache_creation.input_tokens"] == extraction.cache_creation_tokens
    assert gen_ai["gen_ai.response.finish_reasons"] == [extraction.stop_reason]
    # The SDK's own client span under ours, with the trace context sent on to the API.
    sdk = [s for s in spans if s["parent_span_id"] == chat["span_id"]]
    assert [s["kind"] for s in sdk] == ["CLIENT"]
    # The database and Redis are traced too, by their instrumentations.
    assert any(
        s["attributes"].get("db.system.name", s["attributes"].get("db.system")) == "postgresql" for s in spans
    )
    assert any(
        s["attributes"].get("db.system.name", s["attributes"].get("db.system")) == "redis" for s in spans
    )

    # Redis commands outside any trace (the broker's polling, Celery's events) are not exported.
    redis_scope = "opentelemetry.instrumentation.redis"
    assert not [s for s in receiver.spans() if s["scope"] == redis_scope and not s["parent_span_id"]]

    # A permanent failure: the Claude span and the job's carry the category, the job fails.
    fake_claude.script(["400"])
    failing = producer_body(transcript("Hola, quiero información sobre la preventa"))
    assert post(stack.base, failing) == 202
    wait_for(
        lambda: Job.objects.filter(session_id=failing["sessionId"], status=JobStatus.FAILED).exists(),
        timeout=60,
        interval=0.2,
    )
    failed_job = Job.objects.get(session_id=failing["sessionId"])

    def failed_trace() -> list[dict[str, Any]] | None:
        spans = receiver.spans()
        jobs = [s for s in spans if s["attributes"].get("nexus.job.id") == str(failed_job.id)]
        named = {s["name"]: s for s in spans if jobs and s["trace_id"] == jobs[0]["trace_id"]}
        wanted = {"nexus.job", "nexus.job.extract", "nexus.job.record", "chat claude-haiku-5-5"}
        return list(named.values()) if wanted <= set(named) else None

    failed = {s["name"]: s for s in wait_for(failed_trace, timeout=60, interval=0.2)}
    print(trace_tree(receiver.spans(), failed["nexus.job"]["trace_id"]))
    assert failed["chat claude-haiku-5-5"]["attributes"]["error.type"] == "bad_request"
    assert failed["chat claude-haiku-5-5"]["status"]["code"] == 2  # ERROR
    for name in ("nexus.job", "nexus.job.extract", "nexus.job.record"):
        assert failed[name]["attributes"]["nexus.error.category"] == "bad_request"
    assert failed["nexus.job"]["attributes"]["nexus.job.outcome"] == "failed"
    assert failed["nexus.job.record"]["attributes"]["nexus.job.outcome"] == "failed"

    # The worker's JSON log lines inside the job carry the trace.
    lines = [json.loads(line) for line in stack.log("worker").splitlines() if line.startswith("{")]
    claimed = [
        line for line in lines if line.get("message") == "job claimed" and line.get("job_id") == str(job.id)
    ]
    assert claimed and claimed[0]["trace_id"] == trace_id
    assert claimed[0]["span_id"] == by_name["nexus.job.claim"]["span_id"]
    assert_no_personal_data(receiver.spans())


def assert_no_personal_data(spans: list[dict[str, Any]]) -> None:
    for span in spans:
        for text in strings_in([span["name"], span["attributes"], span["events"], span["status"]]):
            for secret in PRIVATE:
                assert secret not in text, f"{secret!r} in span {span['name']}: {text[:200]}"


def test_tracing_is_off_without_the_otel_variables():
    assert not tracing.tracing_enabled({})
    assert not tracing.tracing_enabled({"OTEL_SERVICE_NAME": "web"})
    assert not tracing.tracing_enabled(
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}
    )
    assert not tracing.tracing_enabled(
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}
    )
    assert tracing.tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert tracing.tracing_enabled({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
    assert tracing.tracing_enabled({"OTEL_TRACES_EXPORTER": "console"})


def test_setup_does_nothing_when_off_and_knows_its_three_services(monkeypatch):
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    assert tracing.tracing_setup("web") is False
    with pytest.raises(ValueError, match="service must be one of"):
        tracing.tracing_setup("flower")


def test_an_unknown_exporter_stops_the_process_naming_the_variable():
    code = "from nexus_project import tracing; tracing.tracing_setup('beat')"
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "zipkin_typo",
        "DJANGO_SETTINGS_MODULE": "nexus_project.settings",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "OTEL_TRACES_EXPORTER: unknown span exporter 'zipkin_typo'" in done.stderr


def test_beat_exports_under_its_own_service_name(receiver):
    code = (
        "from nexus_project import tracing; from opentelemetry import trace; "
        "assert tracing.tracing_setup('beat'); "
        "trace.get_tracer('t').start_span('tick').end(); tracing.tracing_shutdown()"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "DJANGO_SETTINGS_MODULE": "nexus_project.settings",
    }
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
    assert [(s["service"], s["name"]) for s in receiver.spans()] == [("beat", "tick")]


def test_the_exporter_redacts_contact_data_and_drops_url_queries_and_visitor_addresses(receiver):
    code = (
        "from nexus_project import tracing; from opentelemetry import trace; "
        "tracing.tracing_setup('worker'); "
        "from opentelemetry.trace import SpanKind; "
        "s = trace.get_tracer('t').start_span('search', kind=SpanKind.SERVER, attributes={"
        f"'url.full': 'http://h/admin/?q={EMAIL}', 'url.query': 'q=juan%40example.com', 'note': 'call {PHONE}', "
        "'client.address': '203.0.113.7', 'network.peer.address': '203.0.113.7'}); "
        f"s.add_event('exception', {{'exception.message': 'Key (email)=({EMAIL}) exists'}}); "
        "s.end(); "
        "c = trace.get_tracer('t').start_span('SELECT', kind=SpanKind.CLIENT, "
        "attributes={'network.peer.address': '127.0.0.1'}); c.end(); "
        "tracing.tracing_shutdown()"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "DJANGO_SETTINGS_MODULE": "nexus_project.settings",
    }
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
    span, client = sorted(receiver.spans(), key=lambda s: s["start"])
    # The visitor's address goes from the request's span; our database's stays on a client span.
    assert span["attributes"] == {"url.full": "http://h/admin/", "note": "call [phone]"}
    assert span["events"][0]["attributes"] == {"exception.message": "Key (email)=([email]) exists"}
    assert client["attributes"] == {"network.peer.address": "127.0.0.1"}
