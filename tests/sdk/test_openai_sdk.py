"""The official OpenAI Python SDK against the gateway: chat, streamed chat, models, errors."""

import os

import openai
import pytest

BASE = os.environ["APIPROXY_URL"]


@pytest.fixture
def client():
    # dGltZWxpbmU= is the Base64 form of the default gateway token "timeline".
    return openai.OpenAI(base_url=f"{BASE}/v1", api_key="dGltZWxpbmU=", max_retries=0)


def test_chat_completion(client):
    reply = client.chat.completions.create(
        model="chat-model", messages=[{"role": "user", "content": "Hello there"}]
    )
    assert reply.choices[0].message.content.startswith("Hello from openai-mock!")
    assert "Hello there" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens > 0


def test_streamed_chat_completion(client):
    stream = client.chat.completions.create(
        model="chat-model",
        messages=[{"role": "user", "content": "Stream it"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, usage = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text.startswith("Hello from openai-mock!") and "Stream it" in text
    assert finish == "stop"
    assert usage is not None and usage.total_tokens > 0


def test_models_are_listed(client):
    ids = {model.id for model in client.models.list()}
    assert {"chat-model", "gpt-mock"} <= ids


def test_an_unknown_model_raises_not_found(client):
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert raised.value.code == "model_not_found"


def test_a_wrong_token_raises_authentication_error():
    bad = openai.OpenAI(base_url=f"{BASE}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
