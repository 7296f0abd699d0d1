"""The README's quick start, followed to its end in a real browser: the seed POST to a live
server, a real worker extracts it, `make superuser`'s command makes the first login, and the
admin's prospect list shows the visitor by name. It saves a screenshot (path printed).

Drives Debian's chromium (`apt-get install chromium`; .ci/run installs it) through the
Playwright package; Playwright never downloads a browser of its own here."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command

from ingestion.models import Job, JobStatus
from tests.conftest import wait_for

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent


def readme_seed() -> dict:
    """The body of the README's quick-start curl, read from the README itself."""
    readme = (ROOT / "README.md").read_text("utf-8")
    match = re.search(r"curl -sS http://127\.0\.0\.1:8000/api/nexus/producer .*?-d '(\{.*?\})'", readme, re.S)
    assert match, "the README's quick start has no seed curl"
    return json.loads(match.group(1))


PASSWORD = "quickstart-password-not-a-secret"

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs the playwright package (requirements-dev.txt)"
)


# The lists that overflowed a 1,440 px window (issue 20).
LISTS = ("/admin/prospects/prospect/", "/admin/ingestion/extraction/")
# A second visitor with every column filled, so the width check sees a full row.
FULL = {
    "messages": [
        {"role": "user", "content": "Me llamo Lucía Fernández, tengo mi propio negocio"},
        {"role": "assistant", "content": "¡Qué bien, Lucía! ¿Cómo te contacto?"},
        {
            "role": "user",
            "content": "lucia.fernandez@correo.example y mi celular es 300 123 4567, quiero empezar",
        },
    ],
    "sessionId": "browser-full-1",
    "fingerprint": "browser-fp-full",
}


def table_width(page, url: str) -> tuple[int, int]:
    """The changelist table's full width and the width of its box (wider: a scrollbar)."""
    page.goto(url)
    width, box = page.evaluate(
        "(() => { const r = document.querySelector('#changelist .results');"
        " return [r.scrollWidth, r.clientWidth]; })()"
    )
    return int(width), int(box)


def post(base: str, body: dict) -> str:
    request = urllib.request.Request(
        f"{base}/api/nexus/producer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        return str(json.load(response)["queueId"])


def test_quick_start_ends_with_the_prospect_on_the_admin_list(
    live_server, celery_worker, monkeypatch, tmp_path
):
    queue_ids = [post(live_server.url, readme_seed()), post(live_server.url, FULL)]
    wait_for(
        lambda: Job.objects.filter(id__in=queue_ids, status=JobStatus.COMPLETED).count() == 2, timeout=60
    )
    # What `make superuser` runs, answered from the environment as the Makefile documents.
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", PASSWORD)
    call_command("createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.test")

    screenshot = tmp_path / "quickstart-prospect-list.png"
    with sync_api.sync_playwright() as playwright:
        # --no-sandbox: chromium refuses its sandbox as root, which CI containers are.
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"{live_server.url}/admin/prospects/prospect/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(re.compile(r"/admin/prospects/prospect/$"), timeout=30_000)
            row = page.locator("#result_list tbody tr", has_text="Juan Pérez")
            sync_api.expect(row).to_be_visible(timeout=30_000)
            row_text = row.inner_text()
            sync_api.expect(page.locator("#result_list")).to_contain_text("+573001234567")
            page.screenshot(path=str(screenshot), full_page=True)
            widths = {url: table_width(page, f"{live_server.url}{url}") for url in LISTS}
        finally:
            browser.close()

    print(f"\nquick-start screenshot: {screenshot}\nlist widths (table, box) at 1,440 px: {widths}")
    assert screenshot.stat().st_size > 0
    assert "caliente" in row_text.lower() and "7" in row_text  # Juan Pérez + "inversión" -> 7
    assert all(width <= box for width, box in widths.values()), f"a list is wider than its box: {widths}"
