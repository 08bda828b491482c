"""The official OpenAI Python SDK against the gateway: chat, streamed chat, models, errors."""

import os

import openai
import pytest

BASE = os.environ["APIPROXY_URL"]
# chat-model is served by an OpenAI-vendor mock, claude-model by an Anthropic-vendor mock (translated).
MODELS = [("chat-model", "openai-mock"), ("claude-model", "claude-mock")]


@pytest.fixture
def client():
    # dGltZWxpbmU= is the Base64 form of the default gateway token "timeline".
    return openai.OpenAI(base_url=f"{BASE}/v1", api_key="dGltZWxpbmU=", max_retries=0)


@pytest.mark.parametrize("model,mock", MODELS)
def test_chat_completion(client, model, mock):
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hello there"}]
    )
    assert reply.choices[0].message.content.startswith(f"Hello from {mock}!")
    assert "Hello there" in reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.total_tokens > 0


@pytest.mark.parametrize("model,mock", MODELS)
def test_streamed_chat_completion(client, model, mock):
    stream = client.chat.completions.create(
        model=model,
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
    assert text.startswith(f"Hello from {mock}!") and "Stream it" in text
    assert finish == "stop"
    assert usage is not None and usage.total_tokens > 0


def test_models_are_listed(client):
    ids = {model.id for model in client.models.list()}
    assert {"chat-model", "claude-model", "gpt-mock"} <= ids


def test_an_unknown_model_raises_not_found(client):
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert raised.value.code == "model_not_found"


def test_a_wrong_token_raises_authentication_error():
    bad = openai.OpenAI(base_url=f"{BASE}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


TOOLS_CHAT = [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
TOOLS_RESPONSES = [{"type": "function", "name": "get_weather", "description": "Weather by city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]


@pytest.mark.parametrize("model,mock", MODELS)
def test_chat_tool_call_round_trip(client, model, mock):
    first = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Weather in Paris?"}], tools=TOOLS_CHAT
    )
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and call.function.arguments == '{"city":"Paris"}'
    second = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "18 degrees"},
        ],
        tools=TOOLS_CHAT,
    )
    assert "18 degrees" in second.choices[0].message.content


@pytest.mark.parametrize("model,mock", MODELS)
def test_responses_create(client, model, mock):
    response = client.responses.create(model=model, instructions="Be brief.", input="Hello responses")
    assert response.status == "completed"
    assert response.output_text.startswith(f"Hello from {mock}!") and "Hello responses" in response.output_text
    assert response.usage.total_tokens > 0


@pytest.mark.parametrize("model,mock", MODELS)
def test_responses_stream(client, model, mock):
    with client.responses.stream(
        model=model, input=[{"role": "user", "content": [{"type": "input_text", "text": "Stream it"}]}]
    ) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed"
    assert "".join(deltas) == final.output_text and "Stream it" in final.output_text


@pytest.mark.parametrize("model,mock", MODELS)
def test_responses_custom_and_namespace_tools_come_back_as_declared(client, model, mock):
    # Codex's tools (SPEC 4.8): a custom (free-form) tool and a namespace of function tools; the
    # mock calls the first tool it is offered, and the SDK parses the items in the declared shapes.
    custom = {"type": "custom", "name": "apply_patch", "description": "Patch files."}
    namespace = {"type": "namespace", "name": "multi_agent_v1", "description": "Agents.",
                 "tools": [{"type": "function", "name": "spawn_agent", "parameters": {"type": "object", "properties": {}}}]}
    first = client.responses.create(model=model, input="Patch it", tools=[custom, namespace, {"type": "web_search"}])
    call = first.output[0]
    assert call.type == "custom_tool_call" and call.name == "apply_patch"
    assert isinstance(call.input, str) and call.call_id
    streamed = client.responses.create(model=model, input="Spawn one", tools=[namespace], stream=True)
    done = [e.item for e in streamed if e.type == "response.output_item.done"]
    assert done[0].type == "function_call" and done[0].name == "spawn_agent"
    assert getattr(done[0], "namespace", None) == "multi_agent_v1"


@pytest.mark.parametrize("model,mock", MODELS)
def test_responses_function_call_round_trip(client, model, mock):
    first = client.responses.create(model=model, input="Weather in Paris?", tools=TOOLS_RESPONSES)
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and call.arguments == '{"city":"Paris"}'
    second = client.responses.create(
        model=model,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "18 degrees"},
        ],
        tools=TOOLS_RESPONSES,
    )
    assert "18 degrees" in second.output_text
