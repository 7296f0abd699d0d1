"""The webhook receiver's counts over HTTP (bench figure 11 reads them from its own process)."""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from tests.fakes.webhook_receiver import Receiver

BODY = json.dumps({"type": "prospect.created", "data": {"prospectId": 7, "sequence": 1}}).encode()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver("whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()).start()
    yield receiver
    receiver.stop()


def _request(
    receiver: Receiver, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{receiver.port}{path}"
    request = urllib.request.Request(
        url, data=body, headers=headers or {}, method="GET" if body is None else "POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _signed(receiver: Receiver, msg_id: str) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(receiver.secret).sign(msg_id, now, BODY.decode()),
    }


def _stats(receiver: Receiver) -> Any:
    status, body = _request(receiver, "/_stats")
    assert status == 200
    return json.loads(body)


def test_stats_count_verified_bad_and_repeated_ids(receiver: Receiver) -> None:
    assert _request(receiver, "/hook", BODY, _signed(receiver, "msg_1"))[0] == 200
    assert _request(receiver, "/hook", BODY, _signed(receiver, "msg_1"))[0] == 200
    assert _request(receiver, "/hook", BODY, _signed(receiver, "msg_2"))[0] == 200
    forged = {**_signed(receiver, "msg_3"), "webhook-signature": "v1,AAAA"}
    assert _request(receiver, "/hook", BODY, forged)[0] == 400

    assert _stats(receiver) == {
        "received": 4,
        "verified": 3,
        "bad_signature": 1,
        "distinct_ids": 2,
        "repeated_ids": 1,
    }


def test_reset_forgets_what_came_and_tries_start_again(receiver: Receiver) -> None:
    receiver.fail_first = 1
    assert _request(receiver, "/hook", BODY, _signed(receiver, "msg_1"))[0] == 500

    status, body = _request(receiver, "/_reset", b"{}")

    assert status == 200
    assert json.loads(body)["received"] == 0
    assert receiver.snapshot() == []
    # The id's tries were forgotten too: its next try meets the 500 again.
    assert _request(receiver, "/hook", BODY, _signed(receiver, "msg_1"))[0] == 500


def test_other_get_paths_are_not_found(receiver: Receiver) -> None:
    assert _request(receiver, "/hook")[0] == 404
