"""The official Anthropic Python SDK against the gateway's /v1/messages, served by an OpenAI-vendor
upstream (translated) and by an Anthropic-vendor upstream (passed through natively)."""

import os

import anthropic
import pytest

BASE = os.environ["APIPROXY_URL"]
# chat-model is served by an OpenAI-vendor mock, claude-model by an Anthropic-vendor mock.
MODELS = [("chat-model", "openai-mock"), ("claude-model", "claude-mock")]
TOOLS = [{"name": "get_weather", "description": "Weather by city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]


@pytest.fixture
def client():
    # The SDK sends the key as X-API-Key; the gateway accepts its token there (Base64 or plain).
    return anthropic.Anthropic(base_url=BASE, api_key="dGltZWxpbmU=", max_retries=0)


@pytest.mark.parametrize("model,mock", MODELS)
def test_messages_create(client, model, mock):
    message = client.messages.create(
        model=model, max_tokens=100, system="Be brief.", messages=[{"role": "user", "content": "Hello Claude"}]
    )
    assert message.type == "message" and message.role == "assistant"
    text = "".join(block.text for block in message.content if block.type == "text")
    assert text.startswith(f"Hello from {mock}!") and "Hello Claude" in text
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0


@pytest.mark.parametrize("model,mock", MODELS)
def test_messages_stream(client, model, mock):
    with client.messages.stream(
        model=model, max_tokens=100, messages=[{"role": "user", "content": "Stream please"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith(f"Hello from {mock}!") and "Stream please" in text
    assert final.stop_reason == "end_turn"
    assert "".join(b.text for b in final.content if b.type == "text") == text


@pytest.mark.parametrize("model,mock", MODELS)
def test_messages_tool_use_round_trip(client, model, mock):
    first = client.messages.create(
        model=model, max_tokens=100, tools=TOOLS, messages=[{"role": "user", "content": "Weather in Paris?"}]
    )
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "get_weather" and call.input == {"city": "Paris"}
    second = client.messages.create(
        model=model,
        max_tokens=100,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 degrees"}]},
        ],
    )
    assert "18 degrees" in "".join(b.text for b in second.content if b.type == "text")


@pytest.mark.parametrize("model,mock", MODELS)
def test_messages_stream_tool_use(client, model, mock):
    with client.messages.stream(
        model=model, max_tokens=100, tools=TOOLS, messages=[{"role": "user", "content": "Weather in Paris?"}]
    ) as stream:
        final = stream.get_final_message()
    call = next(block for block in final.content if block.type == "tool_use")
    assert call.input == {"city": "Paris"} and final.stop_reason == "tool_use"


def test_an_unknown_model_raises_not_found(client):
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}])


@pytest.mark.parametrize("model,how,expected", [("chat-model", "estimated", None), ("claude-model", "counted", 4242)])
def test_count_tokens(client, model, how, expected):
    # An OpenAI-vendor upstream has no counter: the gateway estimates; the Anthropic-vendor mock counts
    # (it answers 4242 for any request).
    raw = client.messages.with_raw_response.count_tokens(
        model=model, system="Be brief.", tools=TOOLS, messages=[{"role": "user", "content": "How long is this?"}]
    )
    count = raw.parse()
    assert raw.headers["x-apiproxy-token-count"] == how
    assert count.input_tokens > 0
    if expected is not None:
        assert count.input_tokens == expected


def test_claude_code_shaped_request_to_a_translated_vendor(client):
    # What Claude Code sends (SPEC 4.8), streamed as it does: a system-role message between turns,
    # adaptive thinking and beta-only fields; the translated vendor answers instead of refusing them.
    with client.messages.stream(
        model="chat-model",
        max_tokens=32000,
        system=[{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {"role": "user", "content": "Hello agent"},
            {"role": "system", "content": "Working directory: /tmp"},
        ],
        extra_body={"thinking": {"type": "adaptive"}, "context_management": {"edits": []},
                    "output_config": {"effort": "high"}},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.stop_reason == "end_turn"
    assert "Hello agent" in text
