"""`manage.py webhooks` and the webhook admin (issue 14 B)."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from prospects.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from tenants.models import Tenant

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("webhooks", *args, stdout=out)
    return out.getvalue()


def test_add_list_disable():
    Tenant.objects.create(slug="acme", name="Acme")
    out = run(
        "add",
        "https://hooks.example.test/in",
        "--events",
        "prospect.hot,prospect.stage_changed",
        "--tenant",
        "acme",
    )
    endpoint = WebhookEndpoint.objects.get()
    assert f"id {endpoint.pk}" in out and f"secret {endpoint.secret}" in out
    assert endpoint.secret.startswith("whsec_") and endpoint.tenant.slug == "acme"
    assert endpoint.events == ["prospect.hot", "prospect.stage_changed"]
    assert "active\tacme" in run("list")
    run("disable", str(endpoint.pk))
    assert not WebhookEndpoint.objects.get().active
    with pytest.raises(CommandError):
        run("disable", "999999")


def test_add_refuses_bad_input(settings):
    with pytest.raises(CommandError, match="unknown event types"):
        run("add", "https://hooks.example.test/in", "--events", "prospect.nope")
    with pytest.raises(CommandError, match="no tenant"):
        run("add", "https://hooks.example.test/in", "--events", "prospect.hot", "--tenant", "nobody")
    with pytest.raises(CommandError, match="whsec_"):
        run("add", "https://hooks.example.test/in", "--events", "prospect.hot", "--secret", "plain")
    settings.NEXUS = {**settings.NEXUS, "WEBHOOK_ALLOW_PRIVATE": False}
    with pytest.raises(CommandError, match="refused"):
        run("add", "http://127.0.0.1:9/in", "--events", "prospect.hot")
    with pytest.raises(CommandError, match="refused"):
        run("add", "http://169.254.169.254/latest", "--events", "prospect.hot")
    assert not WebhookEndpoint.objects.exists()


def test_admin_pages_and_redeliver(client):
    from ingestion.services import job_accept
    from ingestion.worker import pipeline
    from tests.conftest import transcript

    user = get_user_model().objects.create_superuser("ops", "ops@example.test", "pw")
    client.force_login(user)
    endpoint = WebhookEndpoint.objects.create(
        url="http://127.0.0.1:9/in", events=["prospect.created"], secret="whsec_dGVzdHRlc3R0ZXN0dGVzdA=="
    )
    accepted = job_accept(session_id="s-adm", fingerprint="a" * 64, messages=transcript("Hola"), metadata={})
    pipeline.job_process(job_id=accepted.job_id)
    event = Event.objects.get(type="prospect.created")
    delivery = Delivery.objects.create(event=event, endpoint=endpoint, status="failed", attempts=8)
    DeliveryAttempt.objects.create(delivery=delivery, status_code=500, latency_ms=12, response_excerpt="oops")
    assert client.get("/admin/prospects/webhookendpoint/").status_code == 200
    page = client.get(f"/admin/prospects/delivery/{delivery.pk}/change/")
    assert page.status_code == 200 and b"oops" in page.content
    response = client.post(
        "/admin/prospects/delivery/", {"action": "redeliver", "_selected_action": [delivery.pk]}
    )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempts == 0
    # send test event: port 9 answers nothing; the admin says so instead of failing
    response = client.post(
        "/admin/prospects/webhookendpoint/",
        {"action": "send_test_event", "_selected_action": [endpoint.pk]},
        follow=True,
    )
    assert b"no answer" in response.content
