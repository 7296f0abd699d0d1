"""The browser client as a file: its size budget, its versioned name, its cache headers.

Its behaviour in a real browser against the real stack is tests/browser/test_client.py.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import rjsmin

from nexus_project.staticfiles import CLIENT_LATEST_MAX_AGE

STATIC = Path(__file__).resolve().parents[3] / "ingestion" / "static" / "nexus"
SOURCE = STATIC / "client.js"
BUDGET_BYTES = 3 * 1024  # the budget: minified and gzipped under 3 KB


def versioned() -> Path:
    (path,) = [p for p in STATIC.glob("client.*.js")]
    return path


def test_minified_and_gzipped_client_is_under_budget():
    source = SOURCE.read_bytes()
    minified = rjsmin.jsmin(source)
    packed = gzip.compress(minified, compresslevel=9, mtime=0)
    print(
        f"\nclient.js: {len(source)} B source, {len(minified)} B minified (rjsmin), {len(packed)} B gzip -9"
    )
    assert len(packed) < BUDGET_BYTES


def test_the_versioned_name_is_the_content_hash_of_client_js():
    path = versioned()
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    fix = f"cd {STATIC} && rm {path.name} && ln -s client.js client.{digest}.js"
    assert path.is_symlink() and path.readlink() == Path("client.js"), fix
    assert path.name == f"client.{digest}.js", f"client.js changed: give it its new name: {fix}"


def test_the_version_is_stated_once_in_the_file():
    text = SOURCE.read_text()
    (banner,) = re.findall(r"nexus-client (\d+\.\d+\.\d+)", text)
    assert f"var VERSION = '{banner}';" in text


def test_the_versioned_name_is_immutable_and_the_plain_name_cached_for_a_day(client):
    plain = client.get("/static/nexus/client.js")
    pinned = client.get(f"/static/nexus/{versioned().name}")

    assert plain.status_code == pinned.status_code == 200
    assert b"".join(plain.streaming_content) == b"".join(pinned.streaming_content) == SOURCE.read_bytes()
    assert plain["Content-Type"].startswith("text/javascript")
    assert plain["Cache-Control"] == f"max-age={CLIENT_LATEST_MAX_AGE}, public"
    assert pinned["Cache-Control"] == "max-age=315360000, public, immutable"
    # A page may load it with Subresource Integrity (crossorigin="anonymous"): whitenoise's CORS.
    assert pinned["Access-Control-Allow-Origin"] == "*"
