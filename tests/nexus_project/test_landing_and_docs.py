"""What a newcomer opens first: the landing page, the API docs (offline), and the API's 404s."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


def test_landing_page_lists_the_parts_in_development(client, settings):
    settings.DEBUG = True
    page = client.get("/").content.decode()
    for url in (
        "/admin/",
        "/admin/prospects/prospect/",
        "/demo/widget/",
        "/api/docs/",
        "/api/nexus/producer",
        ":5555/",
    ):
        assert url in page


def test_no_landing_page_outside_development(client, settings):
    settings.DEBUG, settings.DJANGO_ENV = False, "production"
    assert client.get("/").status_code == 404


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("path", ["/api/nexus/jobs", "/api/nexus/jobs/not-a-uuid", "/api/nope"])
def test_unknown_api_paths_answer_json_404(client, settings, debug, path):
    settings.DEBUG = debug
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_docs_reference_no_external_url_and_their_assets_are_served_here(client, page):
    html = client.get(page).content.decode()
    assert not re.search(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", html), "an asset from another host"
    assert "cdn" not in html.lower()
    assets = re.findall(r"""(?:src|href)\s*=\s*["'](/static/[^"']+)["']""", html)
    assert any(asset.endswith(".js") for asset in assets)
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200, asset
        b"".join(response.streaming_content if response.streaming else [response.content])


def test_each_operation_has_its_own_description_for_the_apis_user(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operations = [op for item in schema["paths"].values() for op in item.values() if isinstance(op, dict)]
    descriptions = [op.get("description", "") for op in operations]
    assert all(len(d) > 60 for d in descriptions)
    assert len(set(descriptions)) == len(descriptions)  # the health GET no longer repeats the POST's
    health = schema["paths"]["/api/nexus/producer"]["get"]["description"]
    assert "load balancer" in health and "sessionId" not in health
