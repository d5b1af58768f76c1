"""The official `openai` SDK, unchanged, against the standalone emulator's OpenAI side.

Upload, create, retrieve, list, cancel, output and error files; the objects on the wire are
checked against OpenAI's OpenAPI description (openai-openapi.json, from openai/openai-openapi,
unmodified).
"""

import io
import json
import pathlib
import time
import urllib.error
import urllib.request

import jsonschema
import openai
import pytest

# The same standalone emulator fixtures as the Anthropic SDK's tests.
from test_emulator import emulator, slow_emulator  # noqa: F401

HERE = pathlib.Path(__file__).resolve().parent
SPEC = json.loads((HERE / "openai-openapi.json").read_text())
MODEL = "gpt-4.1-mini"

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["ticker", "sentiment", "score"],
    "properties": {
        "ticker": {"type": "string"},
        "sentiment": {"type": "string", "enum": ["negative", "neutral", "positive"]},
        "score": {"type": "number", "minimum": -1, "maximum": 1},
    },
}


def validate(instance, schema_name):
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": SPEC["components"]}
    jsonschema.Draft202012Validator(schema).validate(instance)


def sdk(url):
    return openai.OpenAI(api_key="test-key", base_url=url + "/v1", max_retries=0)


def line(custom_id, model=MODEL, structured=True):
    body = {
        "model": model,
        "max_completion_tokens": 200,
        "messages": [
            {"role": "system", "content": "You are an analyst."},
            {"role": "user", "content": 'Rate the sentiment.\n\nInput data (JSON):\n{"ticker": "NVDA"}'},
        ],
    }
    if structured:
        body["response_format"] = {"type": "json_schema", "json_schema": {
            "name": "record_sentiment", "strict": True, "schema": SCHEMA}}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def upload(client, lines):
    data = "".join(json.dumps(item) + "\n" for item in lines).encode()
    return client.files.create(file=("requests.jsonl", io.BytesIO(data)), purpose="batch")


def wait_until_final(client, batch_id):
    for _ in range(100):
        batch = client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return batch
        time.sleep(0.1)
    raise AssertionError(f"{batch_id} did not end")


def jsonl(client, file_id):
    return [json.loads(text) for text in client.files.content(file_id).text.splitlines() if text]


def test_upload_create_retrieve_and_read_the_output_and_error_files(emulator):
    client = sdk(emulator)
    file = upload(client, [line("ok-1"), line("ok-2", structured=False), line("bad-1", model="no-such-model")])
    assert file.purpose == "batch" and file.bytes > 0
    validate(file.model_dump(exclude_none=True), "OpenAIFile")

    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions",
                                  completion_window="24h", metadata={"ai_batch_id": "local-1"})
    assert batch.id.startswith("batch_") and batch.status == "in_progress"
    assert batch.metadata == {"ai_batch_id": "local-1"}
    validate(batch.model_dump(exclude_none=True), "Batch")

    ended = wait_until_final(client, batch.id)
    assert ended.status == "completed"
    assert (ended.request_counts.total, ended.request_counts.completed, ended.request_counts.failed) == (3, 2, 1)
    validate(ended.model_dump(exclude_none=True), "Batch")

    output = {item["custom_id"]: item for item in jsonl(client, ended.output_file_id)}
    assert set(output) == {"ok-1", "ok-2"}
    structured = output["ok-1"]["response"]
    assert structured["status_code"] == 200
    completion = structured["body"]
    validate(completion, "CreateChatCompletionResponse")
    answer = json.loads(completion["choices"][0]["message"]["content"])
    jsonschema.validate(answer, SCHEMA)
    assert answer["ticker"] == "NVDA", "values come from the request's data"
    usage = completion["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert "NVDA" in output["ok-2"]["response"]["body"]["choices"][0]["message"]["content"]

    errors = jsonl(client, ended.error_file_id)
    assert [item["custom_id"] for item in errors] == ["bad-1"]
    assert errors[0]["response"]["status_code"] == 400


def test_list_and_cancel(slow_emulator):
    client = sdk(slow_emulator)
    file = upload(client, [line("a"), line("b")])
    first = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    second = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions",
                                   completion_window="24h")
    listed = [b.id for b in client.batches.list(limit=1)]  # the SDK pages through
    assert listed.index(second.id) < listed.index(first.id), "newest first"

    cancelling = client.batches.cancel(second.id)
    assert cancelling.status in ("cancelling", "cancelled")
    ended = wait_until_final(client, second.id)
    assert ended.status == "cancelled" and ended.output_file_id is None
    errors = jsonl(client, ended.error_file_id)
    assert {item["error"]["code"] for item in errors} == {"batch_cancelled"}

    deleted = client.files.delete(file.id)
    assert deleted.deleted and deleted.id == file.id
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(file.id)


def test_a_file_of_bad_lines_makes_a_failed_batch(emulator):
    client = sdk(emulator)
    file = upload(client, [line("same"), line("same")])
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    assert batch.status == "failed"
    assert batch.errors.data[0].code == "duplicate_custom_id"


def test_errors_are_the_sdks_own(emulator):
    client = sdk(emulator)
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_doesnotexist")
    set_faults(emulator, fail_next=[{"status": 429, "retry_after_secs": 1}])
    with pytest.raises(openai.RateLimitError):
        client.batches.list()
    # No key: OpenAI's 401 and error body.
    request = urllib.request.Request(emulator + "/v1/batches")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 401
    assert "error" in json.loads(refused.value.read())


def set_faults(url, **faults):
    request = urllib.request.Request(url + "/_emulator/openai/faults", data=json.dumps(faults).encode(),
                                     method="PUT", headers={"content-type": "application/json"})
    urllib.request.urlopen(request).read()
