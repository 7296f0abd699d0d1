"""The widget demo page: there in development, 404 in production. The browser drives it in
tests/browser/test_client.py."""

from __future__ import annotations

from django.test import override_settings

SNIPPET = "nexus.record(messages, {constructorId, pageContext})"  # README, "The browser client"


def test_demo_page_loads_the_client_and_uses_the_readme_snippet(client):
    response = client.get("/demo/widget/")

    assert response.status_code == 200
    page = response.content.decode()
    assert '<script src="/static/nexus/client.js"></script>' in page
    assert SNIPPET in page


@override_settings(PRODUCTION=True)
def test_demo_page_is_absent_in_production(client):
    assert client.get("/demo/widget/").status_code == 404
