"""A second oracle for the golden fixtures (issue 22): every answer-side fixture, the vendors' and
the gateway's own, is parsed by the official SDK's own types. The translation tests check the
gateway's output against fixtures written by the same hands as the translators; here the SDKs
say whether each fixture is a shape their clients can read."""

import json
import pathlib

import anthropic.types as anthropic_types
import openai.types.chat as openai_chat
import pydantic
import pytest
from google.genai import types as genai_types

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures"


def files(pattern):
    found = sorted(FIXTURES.glob(pattern))
    assert found, f"no fixtures match {pattern}"
    return found


def sse_payloads(path):
    """The JSON payload of every `data:` line but [DONE]."""
    text = path.read_text().replace("\r\n", "\n")
    payloads = []
    for event in text.split("\n\n"):
        data = "\n".join(line[5:].strip() for line in event.splitlines() if line.startswith("data:"))
        if data and data != "[DONE]":
            payloads.append(json.loads(data))
    assert payloads, f"{path.name} holds no events"
    return payloads


# Answers in Anthropic's shape: upstream answers the gateway reads, and answers it writes.
@pytest.mark.parametrize("path", files("anthropic/response_*.anthropic.json") + files("anthropic/ingress_response_*.messages.json"),
                         ids=lambda p: p.name)
def test_anthropic_messages_parse_as_the_sdks_message(path):
    message = anthropic_types.Message.model_validate(json.loads(path.read_text()))
    assert message.type == "message" and message.role == "assistant"


# Published vendor examples the SDK's types do not accept: (file, event type, content block type)
# -> (the SDK's event class, the missing field). See tests/fixtures/SOURCES.md. The test asserts
# the SDK rejects the event for that missing field, so a corrected example or a laxer SDK shows.
SDK_REJECTS = {
    # Anthropic's "Streaming request with extended thinking" example is abbreviated: no usage in
    # message_start or message_delta, no signature in the thinking block's start (the SDK requires
    # all three; the translator must cope with their absence, see the golden test).
    ("stream_thinking_example.anthropic.sse", "message_start", None): ("RawMessageStartEvent", ("message", "usage")),
    ("stream_thinking_example.anthropic.sse", "content_block_start", "thinking"):
        ("RawContentBlockStartEvent", ("content_block", "ThinkingBlock", "signature")),
    ("stream_thinking_example.anthropic.sse", "message_delta", None): ("RawMessageDeltaEvent", ("usage",)),
}


@pytest.mark.parametrize("path", files("anthropic/*stream*.anthropic.sse") + files("anthropic/ingress_stream_*.messages.sse"),
                         ids=lambda p: p.name)
def test_anthropic_stream_events_parse_as_the_sdks_events(path):
    adapter = pydantic.TypeAdapter(anthropic_types.RawMessageStreamEvent)
    for payload in sse_payloads(path):
        if payload.get("type") == "error":
            assert payload["error"]["message"]
            continue
        if payload.get("type") == "ping":
            # The SDK's stream reader skips pings before validating events.
            assert payload == {"type": "ping"}
            continue
        block_type = (payload.get("content_block") or {}).get("type")
        rejected = SDK_REJECTS.get((path.name, payload.get("type"), block_type))
        if rejected is None:
            adapter.validate_python(payload)
            continue
        event_class, field = rejected
        with pytest.raises(pydantic.ValidationError) as failure:
            adapter.validate_python(payload)
        missing = [e["loc"][1:] for e in failure.value.errors()
                   if e["loc"][0] == event_class and e["type"] == "missing"]
        assert field in missing, failure.value.errors()


# Answers in OpenAI's shape: what the gateway writes for chat clients, and what it reads.
@pytest.mark.parametrize("path", files("anthropic/response_*.chat.json") + files("anthropic/ingress_response_*.chat.json")
                         + [p for p in files("gemini/response/*.chat.json")], ids=lambda p: p.name)
def test_chat_completions_parse_as_the_sdks_chat_completion(path):
    completion = openai_chat.ChatCompletion.model_validate(json.loads(path.read_text()))
    assert completion.object == "chat.completion" and completion.choices


@pytest.mark.parametrize("path", files("anthropic/*stream*.chat.sse"), ids=lambda p: p.name)
def test_chat_chunks_parse_as_the_sdks_chunks(path):
    for payload in sse_payloads(path):
        if "error" in payload:
            assert payload["error"]["message"]
            continue
        chunk = openai_chat.ChatCompletionChunk.model_validate(payload)
        assert chunk.object == "chat.completion.chunk"


# Gemini's answers as the gateway reads them.
@pytest.mark.parametrize("path", files("gemini/response/*.gemini.json"), ids=lambda p: p.name)
def test_gemini_answers_parse_as_the_sdks_response(path):
    response = genai_types.GenerateContentResponse.model_validate(json.loads(path.read_text()))
    assert response.candidates is not None or response.prompt_feedback is not None


def test_chunks_translated_from_a_gemini_stream_parse_as_the_sdks_chunks():
    chunks = json.loads((FIXTURES / "gemini/stream/function_call.chunks.json").read_text())
    assert chunks[-1] == "[DONE]"
    for chunk in chunks[:-1]:
        openai_chat.ChatCompletionChunk.model_validate(chunk)
