"""The official google-genai Python SDK against the gateway's Gemini endpoints (/v1beta/models/...),
served by a Gemini-vendor upstream (passed through natively) and by OpenAI- and Anthropic-vendor
upstreams (translated)."""

import os

import pytest
from google import genai
from google.genai import errors, types

BASE = os.environ["APIPROXY_URL"]
# gemini-model: a Gemini-vendor mock; chat-model: an OpenAI-vendor mock; claude-model: an
# Anthropic-vendor mock.
MODELS = [("gemini-model", "gemini-mock"), ("chat-model", "openai-mock"), ("claude-model", "claude-mock")]
WEATHER = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather", description="Weather by city",
    parameters=types.Schema(type="OBJECT", properties={"city": types.Schema(type="STRING")}, required=["city"]),
)])


@pytest.fixture
def client():
    # The SDK sends the key as x-goog-api-key; the gateway accepts its token there (plain or Base64).
    return genai.Client(api_key="timeline", http_options=types.HttpOptions(base_url=BASE))


@pytest.mark.parametrize("model,mock", MODELS)
def test_generate_content(client, model, mock):
    response = client.models.generate_content(
        model=model, contents="Hello Gemini",
        config=types.GenerateContentConfig(system_instruction="Be brief.", temperature=0.2),
    )
    assert response.text.startswith(f"Hello from {mock}!") and "Hello Gemini" in response.text
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.usage_metadata.total_token_count > 0


@pytest.mark.parametrize("model,mock", MODELS)
def test_generate_content_stream(client, model, mock):
    chunks = list(client.models.generate_content_stream(model=model, contents="Stream please"))
    text = "".join(chunk.text or "" for chunk in chunks)
    assert len(chunks) > 1
    assert text.startswith(f"Hello from {mock}!") and "Stream please" in text
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP


@pytest.mark.parametrize("model,mock", MODELS)
def test_function_calling_round_trip(client, model, mock):
    config = types.GenerateContentConfig(
        tools=[WEATHER], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    question = types.Content(role="user", parts=[types.Part.from_text(text="Weather in Paris?")])
    first = client.models.generate_content(model=model, contents=[question], config=config)
    call = first.function_calls[0]
    assert call.name == "get_weather" and call.args == {"city": "Paris"}
    answer = types.Part.from_function_response(name="get_weather", response={"content": "18 degrees"})
    second = client.models.generate_content(
        model=model, config=config,
        contents=[question, first.candidates[0].content, types.Content(role="user", parts=[answer])],
    )
    assert "18 degrees" in second.text


@pytest.mark.parametrize("model,counted", [("gemini-model", True), ("claude-model", True), ("chat-model", False)])
def test_count_tokens(client, model, counted):
    # Gemini and Anthropic providers count (the mocks answer 4242); OpenAI has no counter: estimated.
    response = client.models.count_tokens(model=model, contents="How many tokens is this?")
    assert response.total_tokens > 0
    assert (response.total_tokens == 4242) == counted


def test_unknown_model_is_a_404_the_sdk_raises(client):
    with pytest.raises(errors.ClientError) as raised:
        client.models.generate_content(model="no-such-model", contents="hi")
    assert raised.value.code == 404 and raised.value.status == "NOT_FOUND"


def test_models_list_in_geminis_shape(client):
    names = [model.name for model in client.models.list()]
    assert "models/gemini-model" in names and "models/chat-model" in names
