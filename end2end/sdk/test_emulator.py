"""The official `anthropic` SDK, unchanged, against the standalone emulator (`ai-batch emulator`).

Shapes on the wire are checked against Anthropic's OpenAPI description (anthropic-openapi.json,
copied from the provider's published file).
"""

import json
import os
import pathlib
import re
import subprocess
import time
import urllib.request

import anthropic
import jsonschema
import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BIN = os.environ.get("AI_BATCH_BIN", str(ROOT / "target" / "debug" / "ai-batch"))
MODEL = "claude-sonnet-4-5"
SPEC = json.loads((HERE / "anthropic-openapi.json").read_text())

TOOL_SCHEMA = {
    "type": "object",
    "required": ["ticker", "sentiment", "score"],
    "properties": {
        "ticker": {"type": "string"},
        "sentiment": {"type": "string", "enum": ["negative", "neutral", "positive"]},
        "score": {"type": "number", "minimum": -1, "maximum": 1},
        "drivers": {"type": "array", "items": {"type": "string"}},
    },
}


def start_emulator(delay_secs):
    proc = subprocess.Popen(
        [BIN, "emulator", "--addr", "127.0.0.1:0", "--emulator-delay-secs", str(delay_secs),
         "--prices", str(ROOT / "config" / "prices.toml")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "RUST_LOG": "warn"},
    )
    line = proc.stdout.readline()
    match = re.search(r"http://\S+", line)
    assert match, f"the emulator did not say where it listens: {line!r}"
    return proc, match.group(0)


@pytest.fixture(scope="module")
def emulator():
    proc, url = start_emulator(delay_secs=1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def slow_emulator():
    proc, url = start_emulator(delay_secs=600)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def sdk(url):
    return anthropic.Anthropic(api_key="test-key", base_url=url, max_retries=0)


def raw(url, path, method="GET", body=None):
    """The emulator's answer as bytes on the wire, for schema checks."""
    request = urllib.request.Request(url + path, method=method, data=body,
                                     headers={"x-api-key": "k", "anthropic-version": "2023-06-01",
                                              "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def validate(instance, schema_name):
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": SPEC["components"]}
    jsonschema.Draft202012Validator(schema).validate(instance)


def set_faults(url, **faults):
    body = json.dumps(faults).encode()
    request = urllib.request.Request(url + "/_emulator/faults", data=body, method="PUT",
                                     headers={"content-type": "application/json"})
    urllib.request.urlopen(request).read()


def wait_until_ended(client, batch_id):
    for _ in range(100):
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        time.sleep(0.1)
    raise AssertionError(f"{batch_id} did not end")


def requests_plain_tool_invalid():
    return [
        {"custom_id": "plain-1", "params": {"model": MODEL, "max_tokens": 64,
                                            "messages": [{"role": "user", "content": "Summarise AAPL's quarter."}]}},
        {"custom_id": "tool-1", "params": {
            "model": MODEL, "max_tokens": 256,
            "system": "You are an analyst.",
            "messages": [{"role": "user", "content": 'Rate the sentiment.\n\nInput data (JSON):\n{"ticker": "NVDA", "headlines": ["Beats estimates"]}'}],
            "tools": [{"name": "record_sentiment", "description": "Record it.", "input_schema": TOOL_SCHEMA}],
            "tool_choice": {"type": "tool", "name": "record_sentiment"},
        }},
        {"custom_id": "invalid-1", "params": {"model": MODEL, "max_tokens": 64, "messages": []}},
    ]


def test_create_retrieve_and_results(emulator):
    client = sdk(emulator)
    batch = client.messages.batches.create(requests=requests_plain_tool_invalid())
    assert batch.id.startswith("msgbatch_")
    assert batch.processing_status == "in_progress"
    assert batch.request_counts.processing == 3 and batch.request_counts.succeeded == 0

    ended = wait_until_ended(client, batch.id)
    assert (ended.request_counts.succeeded, ended.request_counts.errored) == (2, 1)
    assert ended.results_url.startswith("http://")

    results = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    plain = results["plain-1"]
    assert plain.type == "succeeded"
    assert plain.message.content[0].type == "text" and "AAPL" in plain.message.content[0].text
    assert plain.message.usage.input_tokens > 0 and plain.message.usage.output_tokens > 0

    tool = results["tool-1"]
    assert tool.type == "succeeded" and tool.message.stop_reason == "tool_use"
    block = tool.message.content[0]
    assert block.type == "tool_use" and block.name == "record_sentiment"
    jsonschema.validate(block.input, TOOL_SCHEMA)
    assert block.input["ticker"] == "NVDA", "values come from the request's data"

    invalid = results["invalid-1"]
    assert invalid.type == "errored"
    assert invalid.error.error.type == "invalid_request_error"


def test_list_cancel_delete(slow_emulator):
    client = sdk(slow_emulator)
    first = client.messages.batches.create(requests=requests_plain_tool_invalid()[:1])
    second = client.messages.batches.create(requests=requests_plain_tool_invalid()[:2])
    listed = [b.id for b in client.messages.batches.list(limit=1)]  # the SDK pages through
    assert listed.index(second.id) < listed.index(first.id), "newest first"

    canceling = client.messages.batches.cancel(second.id)
    assert canceling.processing_status == "canceling"
    ended = wait_until_ended(client, second.id)
    assert ended.request_counts.canceled == 2
    assert all(r.result.type == "canceled" for r in client.messages.batches.results(second.id))

    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(first.id)  # still in progress
    deleted = client.messages.batches.delete(second.id)
    assert (deleted.id, deleted.type) == (second.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(second.id)


def test_a_65_character_custom_id_is_a_400(emulator):
    request = {"custom_id": "x" * 65, "params": {"model": MODEL, "max_tokens": 8,
                                                 "messages": [{"role": "user", "content": "hi"}]}}
    with pytest.raises(anthropic.BadRequestError) as raised:
        sdk(emulator).messages.batches.create(requests=[request])
    assert raised.value.status_code == 400
    assert raised.value.body["error"]["type"] == "invalid_request_error"


def test_an_unknown_batch_is_a_404(emulator):
    with pytest.raises(anthropic.NotFoundError):
        sdk(emulator).messages.batches.retrieve("msgbatch_doesnotexist")


def test_an_injected_429_is_a_rate_limit_error(emulator):
    set_faults(emulator, fail_next=[{"status": 429, "retry_after_secs": 1}])
    with pytest.raises(anthropic.RateLimitError) as raised:
        sdk(emulator).messages.batches.list()
    assert raised.value.response.headers["retry-after"] == "1"
    # With its own retries the SDK waits and succeeds.
    set_faults(emulator, fail_next=[{"status": 429, "retry_after_secs": 1}])
    retrying = anthropic.Anthropic(api_key="k", base_url=emulator, max_retries=2)
    assert retrying.messages.batches.list().data is not None


def test_wire_shapes_match_the_openapi_schemas(emulator):
    status, body = raw(emulator, "/v1/messages/batches", "POST",
                       json.dumps({"requests": requests_plain_tool_invalid()}).encode())
    assert status == 200
    batch = json.loads(body)
    validate(batch, "BetaMessageBatch")
    time.sleep(1.2)
    status, body = raw(emulator, f"/v1/messages/batches/{batch['id']}")
    ended = json.loads(body)
    assert ended["processing_status"] == "ended"
    validate(ended, "BetaMessageBatch")
    status, body = raw(emulator, "/v1/messages/batches?limit=2")
    validate(json.loads(body), "BetaListResponse_MessageBatch_")
    status, body = raw(emulator, f"/v1/messages/batches/{batch['id']}/results")
    lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
    assert len(lines) == 3
    for line in lines:
        validate(line, "BetaMessageBatchIndividualResponse")
    status, body = raw(emulator, "/v1/messages/batches/msgbatch_nope")
    assert status == 404
    validate(json.loads(body), "BetaErrorResponse")


def test_our_templates_are_valid_requests_and_their_answers_fit_the_schemas(emulator):
    """Each job type's request, rendered for its example payload by `ai-batch templates`."""
    rendered = json.loads(subprocess.run([BIN, "templates", "--prices", str(ROOT / "config" / "prices.toml")],
                                         check=True, capture_output=True, text=True).stdout)
    assert len(rendered) == 6
    requests = []
    for i, item in enumerate(rendered):
        request = item["request"]
        validate(request, "BetaMessageBatchIndividualRequestParams")
        request["custom_id"] = f"template-{i}"
        requests.append(request)
    client = sdk(emulator)
    batch = client.messages.batches.create(requests=requests)
    wait_until_ended(client, batch.id)
    for result in client.messages.batches.results(batch.id):
        item = rendered[int(result.custom_id.split("-")[1])]
        assert result.result.type == "succeeded", result
        block = result.result.message.content[0]
        jsonschema.validate(block.input, item["request"]["params"]["tools"][0]["input_schema"])
        usage = result.result.message.usage
        assert usage.input_tokens + usage.output_tokens <= item["estimated_tokens"]


def spec_with_ttl():
    """Anthropic's schemas as published (late 2024), with the `ttl` that `cache_control` has
    taken since (reference/README.md): the file forbids extra properties, so it is extended,
    not dropped."""
    components = json.loads(json.dumps(SPEC["components"]))
    for name, schema in components["schemas"].items():
        if name.endswith("CacheControlEphemeral"):
            schema.setdefault("properties", {})["ttl"] = {"type": "string", "enum": ["5m", "1h"]}
    return components


def test_cache_shaped_requests_are_valid_and_a_later_batch_reads_what_an_earlier_wrote():
    """Each job type rendered with a 6,000-token shared context, marked for an hour's cache;
    the emulator reads every possible prefix (hit rate 1)."""
    proc = subprocess.Popen(
        [BIN, "emulator", "--addr", "127.0.0.1:0", "--emulator-delay-secs", "1",
         "--emulator-cache-hit-rate", "1", "--prices", str(ROOT / "config" / "prices.toml")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "RUST_LOG": "warn"},
    )
    try:
        url = re.search(r"http://\S+", proc.stdout.readline()).group(0)
        rendered = json.loads(subprocess.run(
            [BIN, "templates", "--prices", str(ROOT / "config" / "prices.toml"),
             "--context-tokens", "6000", "--cache-ttl", "1h"],
            check=True, capture_output=True, text=True).stdout)
        components = spec_with_ttl()
        schema = {"$ref": "#/components/schemas/BetaMessageBatchIndividualRequestParams",
                  "components": components}
        marked = 0
        for item in rendered:
            jsonschema.Draft202012Validator(schema).validate(item["request"])
            system = item["request"]["params"]["system"]
            marks = [b for b in system if "cache_control" in b]
            marked += len(marks)
            for block in marks:
                assert block["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
        # Haiku caches from 4,096 tokens, the others from 1,024: all reach it here.
        assert marked == len(rendered)
        client = sdk(url)

        def run(prefix):
            requests = []
            for i, item in enumerate(rendered):
                request = dict(item["request"], custom_id=f"{prefix}-{i}")
                requests.append(request)
            batch = client.messages.batches.create(requests=requests)
            wait_until_ended(client, batch.id)
            return [r.result.message.usage for r in client.messages.batches.results(batch.id)]

        first = run("first")
        assert all(u.cache_creation_input_tokens > 6000 and u.cache_read_input_tokens == 0 for u in first)
        assert all(u.cache_creation.ephemeral_1h_input_tokens == u.cache_creation_input_tokens for u in first)
        second = run("second")
        assert all(u.cache_read_input_tokens > 6000 and u.cache_creation_input_tokens == 0 for u in second)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
