"""Virtual keys (docs/keys.md) with the official SDKs, unchanged: a key created with POST /keys is
the SDK's api_key; its model list, rpm and budget refusals arrive as the SDKs' own exception types.
The gateway runs without an admin token, so the gateway token creates the keys; chat-model costs
0.001 USD per token (COST_INPUT/COST_OUTPUT in run.sh)."""

import json
import os
import urllib.request

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors, types

BASE = os.environ["APIPROXY_URL"]
TOKEN = "dGltZWxpbmU="


def create_key(**spec):
    request = urllib.request.Request(
        f"{BASE}/keys", data=json.dumps(spec).encode(), method="POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        assert response.status == 201
        return json.load(response)


def test_each_sdk_works_with_a_key_and_sees_only_its_models():
    key = create_key(name="sdk", models=["chat-model", "claude-*", "gemini-model"])["key"]
    oai = openai.OpenAI(base_url=f"{BASE}/v1", api_key=key, max_retries=0)
    reply = oai.chat.completions.create(model="chat-model", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content.startswith("Hello from openai-mock!")
    ids = {m.id for m in oai.models.list()}
    # `claude-*` also matches the model the Anthropic provider lists.
    assert ids == {"chat-model", "claude-model", "claude-mock", "gemini-model"}, ids
    with pytest.raises(openai.PermissionDeniedError) as denied:
        oai.chat.completions.create(model="gpt-mock", messages=[{"role": "user", "content": "hi"}])
    assert denied.value.code == "model_not_allowed"

    claude = anthropic.Anthropic(base_url=BASE, api_key=key, max_retries=0)
    message = claude.messages.create(model="claude-model", max_tokens=50,
                                     messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text.startswith("Hello from claude-mock!")
    with pytest.raises(anthropic.PermissionDeniedError):
        claude.messages.create(model="demo", max_tokens=50, messages=[{"role": "user", "content": "hi"}])

    gem = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=BASE))
    response = gem.models.generate_content(model="gemini-model", contents="hi")
    assert response.text.startswith("Hello from gemini-mock!")


def test_a_stream_without_include_usage_has_no_usage_chunk_but_the_key_is_charged():
    created = create_key(name="stream", budget_usd=100)
    oai = openai.OpenAI(base_url=f"{BASE}/v1", api_key=created["key"], max_retries=0)
    chunks = list(oai.chat.completions.create(
        model="chat-model", messages=[{"role": "user", "content": "stream"}], stream=True))
    assert chunks and all(chunk.choices for chunk in chunks), "a usage-only chunk reached the client"
    assert all(chunk.usage is None for chunk in chunks)
    request = urllib.request.Request(f"{BASE}/v1/usage", headers={"Authorization": f"Bearer {created['key']}"})
    with urllib.request.urlopen(request) as response:
        mine = json.load(response)
    assert mine["requests"] == 1 and mine["spent_usd"] > 0, mine


def test_rpm_and_budget_refusals_are_the_sdks_rate_limit_errors():
    limited = create_key(name="rpm", rpm=1)["key"]
    oai = openai.OpenAI(base_url=f"{BASE}/v1", api_key=limited, max_retries=0)
    oai.chat.completions.create(model="chat-model", messages=[{"role": "user", "content": "one"}])
    with pytest.raises(openai.RateLimitError) as raised:
        oai.chat.completions.create(model="chat-model", messages=[{"role": "user", "content": "two"}])
    assert raised.value.code == "rate_limit_exceeded"
    assert int(raised.value.response.headers["retry-after"]) >= 1
    assert raised.value.response.headers["x-ratelimit-limit-requests"] == "1"

    # A budget smaller than one request's reservation: refused before any upstream is asked.
    broke = create_key(name="broke", budget_usd=0.001)["key"]
    oai = openai.OpenAI(base_url=f"{BASE}/v1", api_key=broke, max_retries=0)
    with pytest.raises(openai.RateLimitError) as raised:
        oai.chat.completions.create(model="chat-model", max_tokens=50,
                                    messages=[{"role": "user", "content": "x"}])
    assert raised.value.code == "insufficient_quota"
    claude = anthropic.Anthropic(base_url=BASE, api_key=broke, max_retries=0)
    with pytest.raises(anthropic.RateLimitError):
        claude.messages.create(model="chat-model", max_tokens=50, messages=[{"role": "user", "content": "x"}])
    gem = genai.Client(api_key=broke, http_options=types.HttpOptions(base_url=BASE))
    with pytest.raises(errors.ClientError) as raised:
        gem.models.generate_content(model="chat-model", contents="x")
    assert raised.value.code == 429
