"""The fake is as strict as the real API on what NEXUS could get wrong, and drivable over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, cast

import pytest

from ingestion.extraction.schema import OUTPUT_SCHEMA
from tests.fakes.claude_api import FakeClaude

HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01", "content-type": "application/json"}


def _body(**overrides: Any) -> dict[str, Any]:
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 256,
        "system": [{"type": "text", "text": "You extract.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": '<transcript><message role="user">me llamo Ana</message></transcript>',
            }
        ],
        "output_config": {"format": {"type": "json_schema", "schema": OUTPUT_SCHEMA}},
    }
    body.update(overrides)
    return body


def _post(url: str, payload: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers=HEADERS if headers is None else headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _assert_api_error(status: int, body: dict[str, Any], expected_status: int, error_type: str) -> None:
    assert status == expected_status
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert body["error"]["message"]


def test_ok_answer_fits_the_schema(fake_claude: FakeClaude) -> None:
    status, body = _post(f"{fake_claude.url}/v1/messages", _body())
    assert status == 200
    data = json.loads(body["content"][0]["text"])
    assert set(data) == set(OUTPUT_SCHEMA["properties"])
    assert data["nombre"] == "Ana"
    assert body["usage"]["input_tokens"] > 0


def test_assistant_prefill_is_rejected(fake_claude: FakeClaude) -> None:
    messages = [{"role": "user", "content": "hola"}, {"role": "assistant", "content": "{"}]
    status, body = _post(f"{fake_claude.url}/v1/messages", _body(messages=messages))
    _assert_api_error(status, body, 400, "invalid_request_error")
    assert "prefill" in body["error"]["message"]


def test_missing_anthropic_version_is_rejected(fake_claude: FakeClaude) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != "anthropic-version"}
    status, body = _post(f"{fake_claude.url}/v1/messages", _body(), headers)
    _assert_api_error(status, body, 400, "invalid_request_error")


def test_missing_api_key_is_rejected_like_the_real_api(fake_claude: FakeClaude) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != "x-api-key"}
    status, body = _post(f"{fake_claude.url}/v1/messages", _body(), headers)
    _assert_api_error(status, body, 401, "authentication_error")


def test_more_than_four_cache_marks_are_rejected(fake_claude: FakeClaude) -> None:
    mark = {"cache_control": {"type": "ephemeral"}}
    system = [{"type": "text", "text": f"part {i}", **mark} for i in range(5)]
    status, body = _post(f"{fake_claude.url}/v1/messages", _body(system=system))
    _assert_api_error(status, body, 400, "invalid_request_error")
    assert "Found 5" in body["error"]["message"]


def _with(field: str, keyword: dict[str, Any]) -> dict[str, Any]:
    schema = json.loads(json.dumps(OUTPUT_SCHEMA))
    target = schema["properties"][field]
    (target["anyOf"][0] if "anyOf" in target else target).update(keyword)
    return _body(output_config={"format": {"type": "json_schema", "schema": schema}})


@pytest.mark.parametrize(
    ("field", "keyword"),
    [
        ("nivel_interes", {"minimum": 0}),
        ("nivel_interes", {"maximum": 10}),
        ("nivel_interes", {"multipleOf": 1}),
        ("nombre", {"minLength": 1}),
        ("nombre", {"maxLength": 80}),
        ("objeciones", {"maxItems": 4}),
        ("objeciones", {"minItems": 2}),
        ("objeciones", {"uniqueItems": True}),
        ("telefono", {"format": "phone"}),
        ("telefono", {"pattern": "^(\\d)\\1+$"}),  # backreference
        ("email", {"pattern": "^(?!admin).*$"}),  # lookahead
    ],
)
def test_unsupported_schema_keywords_are_rejected(
    fake_claude: FakeClaude, field: str, keyword: dict[str, Any]
) -> None:
    status, answer = _post(f"{fake_claude.url}/v1/messages", _with(field, keyword))
    _assert_api_error(status, answer, 400, "invalid_request_error")


@pytest.mark.parametrize(
    ("field", "keyword"),
    [
        ("email", {"format": "email"}),
        ("telefono", {"pattern": "^\\+?[0-9 ]+$"}),
        ("objeciones", {"minItems": 0}),
        ("nombre", {"description": "the visitor's own name"}),
    ],
)
def test_keywords_structured_outputs_support_are_accepted(
    fake_claude: FakeClaude, field: str, keyword: dict[str, Any]
) -> None:
    assert _post(f"{fake_claude.url}/v1/messages", _with(field, keyword))[0] == 200


def test_cache_usage_appears_only_for_a_long_enough_marked_prefix(fake_claude: FakeClaude) -> None:
    long_system = [{"type": "text", "text": "x" * 4 * 4200, "cache_control": {"type": "ephemeral"}}]
    _, first = _post(f"{fake_claude.url}/v1/messages", _body(system=long_system))
    _, second = _post(f"{fake_claude.url}/v1/messages", _body(system=long_system))
    _, short = _post(f"{fake_claude.url}/v1/messages", _body())
    assert first["usage"]["cache_creation_input_tokens"] >= 4096
    assert first["usage"]["cache_read_input_tokens"] == 0
    assert second["usage"]["cache_read_input_tokens"] == first["usage"]["cache_creation_input_tokens"]
    assert short["usage"]["cache_creation_input_tokens"] == short["usage"]["cache_read_input_tokens"] == 0


def test_control_endpoint_scripts_failures_and_reports_stats(fake_claude: FakeClaude) -> None:
    url = fake_claude.url
    assert _post(f"{url}/_fake/script", ["529", ["429", 2]])[0] == 200
    status, body = _post(f"{url}/v1/messages", _body())
    _assert_api_error(status, body, 529, "overloaded_error")
    assert _post(f"{url}/v1/messages", _body())[0] == 429
    assert _post(f"{url}/v1/messages", _body())[0] == 200
    stats = _get(f"{url}/_fake/stats")
    assert stats["calls"] == 3
    assert stats["by_status"] == {"529": 1, "429": 1, "200": 1}
    assert stats["injected"] == {"529": 1, "429": 1}
    assert stats["input_tokens_total"] > 0
    _post(f"{url}/_fake/reset", {})
    assert _get(f"{url}/_fake/stats")["calls"] == 0


def test_failure_rate_is_seeded_and_reproducible(fake_claude: FakeClaude) -> None:
    def run() -> list[int]:
        _post(f"{fake_claude.url}/_fake/reset", {})
        _post(f"{fake_claude.url}/_fake/failure_rate", {"rate": 0.5, "statuses": [500, 529], "seed": 7})
        return [_post(f"{fake_claude.url}/v1/messages", _body())[0] for _ in range(20)]

    first = run()
    assert first == run()
    assert {200, 500, 529} >= set(first) and 200 in first and len(set(first)) > 1


def test_keys_endpoint_switches_401_on_and_off(fake_claude: FakeClaude) -> None:
    _post(f"{fake_claude.url}/_fake/keys", {"accept": ["good"]})
    status, body = _post(f"{fake_claude.url}/v1/messages", _body())
    _assert_api_error(status, body, 401, "authentication_error")
    _post(f"{fake_claude.url}/_fake/keys", {"any": True})
    assert _post(f"{fake_claude.url}/v1/messages", _body())[0] == 200


def test_in_flight_counters_track_concurrency(fake_claude: FakeClaude) -> None:
    import threading

    fake_claude.set_latency(0.2)
    threads = [
        threading.Thread(target=_post, args=(f"{fake_claude.url}/v1/messages", _body())) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert fake_claude.calls == 4
    assert fake_claude.in_flight == 0
    assert fake_claude.max_in_flight >= 2


def test_cache_minimum_follows_the_model(fake_claude: FakeClaude) -> None:
    # ~600 tokens: above Haiku 5.5's 512-token minimum, far below Haiku 4.5's 4,096.
    system = [{"type": "text", "text": "y" * 4 * 600, "cache_control": {"type": "ephemeral"}}]
    _, haiku_5_5 = _post(f"{fake_claude.url}/v1/messages", _body(model="claude-haiku-5-5", system=system))
    _, haiku_4_5 = _post(f"{fake_claude.url}/v1/messages", _body(model="claude-haiku-4-5", system=system))
    assert haiku_5_5["usage"]["cache_creation_input_tokens"] >= 512
    assert haiku_4_5["usage"]["cache_creation_input_tokens"] == 0


@pytest.mark.parametrize("param", [{"temperature": 0}, {"top_p": 0.9}, {"top_k": 5}])
def test_sampling_parameters_are_rejected_by_current_models(
    fake_claude: FakeClaude, param: dict[str, Any]
) -> None:
    status, body = _post(f"{fake_claude.url}/v1/messages", _body(model="claude-haiku-5-5", **param))
    _assert_api_error(status, body, 400, "invalid_request_error")
    assert _post(f"{fake_claude.url}/v1/messages", _body(model="claude-haiku-4-5", **param))[0] == 200


def test_budget_thinking_is_rejected_by_claude_5_models(fake_claude: FakeClaude) -> None:
    thinking = {"type": "enabled", "budget_tokens": 1024}
    status, body = _post(
        f"{fake_claude.url}/v1/messages", _body(model="claude-haiku-5-5", max_tokens=2048, thinking=thinking)
    )
    _assert_api_error(status, body, 400, "invalid_request_error")


def test_haiku_5_5_thinks_by_default_and_bills_it(fake_claude: FakeClaude) -> None:
    _, default = _post(f"{fake_claude.url}/v1/messages", _body(model="claude-haiku-5-5"))
    _, disabled = _post(
        f"{fake_claude.url}/v1/messages", _body(model="claude-haiku-5-5", thinking={"type": "disabled"})
    )
    assert [block["type"] for block in default["content"]] == ["thinking", "text"]
    assert default["usage"]["output_tokens_details"]["thinking_tokens"] > 0
    assert [block["type"] for block in disabled["content"]] == ["text"]
    assert default["usage"]["output_tokens"] > disabled["usage"]["output_tokens"]


def test_thinking_counts_against_max_tokens(fake_claude: FakeClaude) -> None:
    _, body = _post(f"{fake_claude.url}/v1/messages", _body(model="claude-haiku-5-5", max_tokens=100))
    assert body["stop_reason"] == "max_tokens"
    assert body["usage"]["output_tokens"] == 100


def test_a_forced_tool_with_thinking_on_is_rejected(fake_claude: FakeClaude) -> None:
    tool = {"name": "record", "input_schema": OUTPUT_SCHEMA}
    forced = {"tools": [tool], "tool_choice": {"type": "tool", "name": "record"}, "output_config": None}
    status, body = _post(f"{fake_claude.url}/v1/messages", _body(model="claude-haiku-5-5", **forced))
    _assert_api_error(status, body, 400, "invalid_request_error")
    status, _ = _post(
        f"{fake_claude.url}/v1/messages",
        _body(model="claude-haiku-5-5", thinking={"type": "disabled"}, **forced),
    )
    assert status == 200


def _conversation(first_message: str) -> dict[str, Any]:
    transcript = f'<transcript><message role="user">{first_message}</message></transcript>'
    return _body(messages=[{"role": "user", "content": transcript}])


def test_overlapping_calls_for_one_conversation_are_counted(fake_claude: FakeClaude) -> None:
    import threading

    fake_claude.set_latency(0.3)
    url = f"{fake_claude.url}/v1/messages"

    def together(*bodies: dict[str, Any]) -> None:
        threads = [threading.Thread(target=_post, args=(url, body)) for body in bodies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    together(_conversation("hola, soy Ana"), _conversation("hola, soy Luis"))
    assert fake_claude.stats()["same_conversation_overlaps"] == 0
    together(_conversation("hola, soy Ana"), _conversation("hola, soy Ana"))
    assert fake_claude.stats()["same_conversation_overlaps"] == 1


def test_a_hung_call_does_not_count_as_an_overlap(fake_claude: FakeClaude) -> None:
    fake_claude.script([["hang", 1.0]])
    url = f"{fake_claude.url}/v1/messages"
    request = urllib.request.Request(url, data=json.dumps(_conversation("hola")).encode(), headers=HEADERS)
    with pytest.raises(TimeoutError):  # the client gives up, as the SDK does on its timeout
        urllib.request.urlopen(request, timeout=0.2)

    assert _post(url, _conversation("hola"))[0] == 200
    stats = fake_claude.stats()
    assert stats["injected"] == {"hang": 1}
    assert stats["same_conversation_overlaps"] == 0


def _post_with_headers(url: str, payload: Any) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), headers=HEADERS, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}


def test_an_rpm_limit_is_enforced_with_429s_and_rate_limit_headers(fake_claude: FakeClaude) -> None:
    fake_claude.set_rate_limits(rpm=3)
    answers = [_post_with_headers(f"{fake_claude.url}/v1/messages", _body()) for _ in range(4)]

    assert [status for status, _ in answers] == [200, 200, 200, 429]
    first, refused = answers[0][1], answers[3][1]
    assert first["anthropic-ratelimit-requests-limit"] == "3"
    assert first["anthropic-ratelimit-requests-remaining"] == "2"
    assert first["anthropic-ratelimit-requests-reset"].endswith("Z")
    assert refused["anthropic-ratelimit-requests-remaining"] == "0"
    assert 1 <= int(refused["retry-after"]) <= 20  # one request frees every 20 s
    assert fake_claude.stats()["rate_limited"] == 1


def test_an_itpm_limit_counts_the_prompts_input_tokens(fake_claude: FakeClaude) -> None:
    fake_claude.set_rate_limits(itpm=100)
    big = _body(messages=[{"role": "user", "content": "x" * 300}])  # ~80 tokens with the system

    assert _post_with_headers(f"{fake_claude.url}/v1/messages", big)[0] == 200
    status, headers = _post_with_headers(f"{fake_claude.url}/v1/messages", big)

    assert status == 429
    assert int(headers["anthropic-ratelimit-input-tokens-remaining"]) < 30


def test_message_batches_through_the_sdk_create_retrieve_results_and_cancel(fake_claude: FakeClaude) -> None:
    import anthropic

    client = anthropic.Anthropic(api_key="k", base_url=fake_claude.url, max_retries=0)
    params: Any = _body()
    fake_claude.set_batches(seconds=30)
    slow = client.messages.batches.create(requests=[{"custom_id": "a-1", "params": params}])
    assert slow.processing_status == "in_progress" and slow.request_counts.processing == 1
    fake_claude.set_batches(seconds=0)
    fake_claude.script(["ok", "400"])
    batch = client.messages.batches.create(
        requests=[{"custom_id": "b-1", "params": params}, {"custom_id": "b-2", "params": params}]
    )

    ended = client.messages.batches.retrieve(batch.id)
    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}

    assert ended.processing_status == "ended" and ended.request_counts.succeeded == 1
    assert results["b-1"].type == "succeeded" and results["b-1"].message.usage.input_tokens > 0
    assert results["b-2"].type == "errored" and results["b-2"].error.error.type == "invalid_request_error"
    canceled = client.messages.batches.cancel(slow.id)
    assert canceled.cancel_initiated_at is not None
    assert [r.result.type for r in client.messages.batches.results(slow.id)] == ["canceled"]


def test_an_expiring_batch_expires_every_request(fake_claude: FakeClaude) -> None:
    import anthropic

    client = anthropic.Anthropic(api_key="k", base_url=fake_claude.url, max_retries=0)
    fake_claude.set_batches(expire=True)
    batch = client.messages.batches.create(requests=[{"custom_id": "x", "params": cast(Any, _body())}])

    assert client.messages.batches.retrieve(batch.id).request_counts.expired == 1
    assert [r.result.type for r in client.messages.batches.results(batch.id)] == ["expired"]
