"""The review desk in a real browser (issue 14): a "Sales" user logs in to a live server, sees
the hot lead nobody has contacted first, assigns it to themself, marks it contacted, and the
list shows the new status. It saves a screenshot (path printed, and a copy in
/work/notes/review_desk.png when that directory exists).

Drives Debian's chromium through the Playwright package, as tests/test_quickstart_browser.py."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from prospects.models import Prospect, ReviewStatus
from tenants.models import Tenant
from tests.privacy.conftest import sales_groups  # noqa: F401 - autouse: the Sales groups

NOTES = Path("/work/notes")
LIST = "/admin/prospects/prospect/"

pytestmark = [pytest.mark.django_db(transaction=True)]
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs the playwright package (requirements-dev.txt)"
)


def lead(key: str, tenant: Tenant, minutes_ago: int, **fields) -> Prospect:
    seen = timezone.now() - timedelta(minutes=minutes_ago)
    return Prospect.objects.create(key=key, tenant=tenant, first_seen_at=seen, last_seen_at=seen, **fields)


def test_a_sales_user_works_the_hot_lead(live_server, tmp_path, chromium, admin_log_in, staff_user):
    shop = Tenant.objects.create(slug="tienda")
    # More recent and hotter leads that are not "hot and not contacted" come after it.
    lead("fp:cold", shop, 0, nombre="Carlos Frío", nivel_interes=2, momento_optimo="frio")
    done = lead("fp:done", shop, 1, nombre="Diana Hecha", nivel_interes=10, momento_optimo="caliente")
    Prospect.objects.filter(pk=done.pk).update(review_status=ReviewStatus.CONTACTADO)
    hot = lead(
        "fp:hot", shop, 45, nombre="Lucía Caliente", email="lucia@example.test",
        telefono="+573001234567", nivel_interes=8, momento_optimo="caliente",
    )  # fmt: skip
    user = staff_user("vendedora", ["Sales"], shop)

    screenshot = tmp_path / "review_desk.png"
    page = chromium.new_page(viewport={"width": 1440, "height": 900})
    admin_log_in(page, "vendedora", then=LIST)
    page.wait_for_url(re.compile(r"/admin/prospects/prospect/$"), timeout=30_000)

    rows = page.locator("#result_list tbody tr")
    sync_api.expect(rows.first).to_contain_text("Lucía Caliente", timeout=30_000)
    first_before = rows.first.inner_text()

    def run(action: str, message: str) -> None:
        row = page.locator("#result_list tbody tr", has_text="Lucía Caliente")
        row.locator("input.action-select").check()
        page.select_option("select[name=action]", action)
        page.click("button[name=index]")
        sync_api.expect(page.locator(".messagelist")).to_contain_text(message, timeout=30_000)

    run("assign_to_me", "1 prospect(s) assigned to you.")
    run("mark_contacted", "1 prospect(s) marked contacted.")

    row = page.locator("#result_list tbody tr", has_text="Lucía Caliente")
    sync_api.expect(row).to_contain_text("Contactado")
    sync_api.expect(row).to_contain_text("vendedora")
    row_after = row.inner_text()
    # A Sales user sees the contact masked, without links.
    assert "+57 *** *** 4567" in row_after and row.locator("a[href^='https://wa.me/']").count() == 0
    page.screenshot(path=str(screenshot), full_page=True)

    page.goto(f"{live_server.url}{LIST}{hot.pk}/history/")
    history = page.locator("#change-history").inner_text()

    copy = ""
    if NOTES.is_dir():
        shutil.copyfile(screenshot, NOTES / "review_desk.png")
        copy = f" (copy: {NOTES / 'review_desk.png'})"
    print(f"\nreview desk screenshot: {screenshot}{copy}")

    assert screenshot.stat().st_size > 0
    assert "Nuevo" in first_before and "nobody" in first_before
    hot.refresh_from_db()
    assert (hot.review_status, hot.owner_id) == (ReviewStatus.CONTACTADO, user.pk)
    assert hot.contacted_at is not None
    assert "Changed Owner." in history and "Changed Review status and Contacted at." in history
