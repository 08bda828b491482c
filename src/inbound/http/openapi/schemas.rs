//! Wire schemas for the OpenAPI document (documentation types: the handlers work on raw JSON).
//!
//! Every named schema of the document is a Rust type deriving salvo-oapi's `ToSchema`, named after
//! the component it becomes (`#[salvo(schema(name = ...))]` pins the name, so the namer's
//! path-based default never shows). Helper types for nested objects and `oneOf`s are `inline`: they
//! never become components of their own. Doc comments are the schemas' descriptions, word for
//! word, so they are single lines; notes for Rust readers are plain `//` comments.
//!
//! What the derive cannot say (salvo-oapi 1.1):
//! - `const`: said by `schema_with` functions that write the keyword as a schema extension
//!   (extensions are flattened into the schema, so it comes out as a plain `const`);
//! - a string enum that admits `null` (`type: [string, null]`, `null` among the values): said by
//!   `schema_with` functions too;
//! - `Circuit`'s `oneOf` with a `discriminator`: `ToSchema` is written by hand;
//! - `additionalProperties: true` (a `#[serde(flatten)]` map does not compile in this version) and
//!   `ChatCompletionRequest`'s top-level `anyOf`: added by [`all`] to the registered components.
//!
//! [`all`] registers every schema, so the document lists them even when no operation uses one.

use indexmap::IndexMap;
use salvo::oapi::naming::{NameRule, assign_name};
use salvo::oapi::schema::{
    AdditionalProperties, ArrayItems, BasicType, Discriminator, Object, OneOf, Schema, SchemaType,
};
use salvo::oapi::{Components, ComposeSchema, Ref, RefOr, ToSchema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Registers every schema of the document under its component name, then completes them with
/// what their derives cannot say (`additionalProperties: true`, `ChatCompletionRequest`'s `anyOf`).
///
/// Call it on the document's components before merging the router: `Components::append` keeps a
/// schema already present, so the completed ones win over those the endpoints register.
pub fn all(components: &mut Components) {
    let _ = Error::to_schema(components);
    let _ = AnthropicError::to_schema(components);
    let _ = ChatMessage::to_schema(components);
    let _ = ToolCall::to_schema(components);
    let _ = ChatTool::to_schema(components);
    let _ = ChatCompletionRequest::to_schema(components);
    let _ = ChatCompletion::to_schema(components);
    let _ = ChatCompletionChunk::to_schema(components);
    let _ = ResponsesRequest::to_schema(components);
    let _ = Response::to_schema(components);
    let _ = MessagesRequest::to_schema(components);
    let _ = Message::to_schema(components);
    let _ = ModelEntry::to_schema(components);
    let _ = ModelList::to_schema(components);
    let _ = ModelCapability::to_schema(components);
    let _ = Model::to_schema(components);
    let _ = ProviderModelList::to_schema(components);
    let _ = PhysicalModel::to_schema(components);
    let _ = LogicalModel::to_schema(components);
    let _ = LogicalModelInput::to_schema(components);
    let _ = LogicalModelList::to_schema(components);
    let _ = LogicalModelUpstreams::to_schema(components);
    let _ = Provider::to_schema(components);
    let _ = ProviderList::to_schema(components);
    let _ = ProviderStatus::to_schema(components);
    let _ = HealthStatus::to_schema(components);
    let _ = RoutingMetrics::to_schema(components);
    let _ = ProviderMetrics::to_schema(components);
    let _ = CircuitClosed::to_schema(components);
    let _ = CircuitOpen::to_schema(components);
    let _ = CircuitHalfOpen::to_schema(components);
    let _ = Circuit::to_schema(components);
    let _ = RoutingDecisionRequest::to_schema(components);
    let _ = RoutingDecision::to_schema(components);
    let _ = Session::to_schema(components);
    let _ = ContextEntry::to_schema(components);
    let _ = ContextHistory::to_schema(components);
    let _ = Health::to_schema(components);
    complete(components);
}

// ---------------------------------------------------------------------------------------------
// What the derive cannot express.
// ---------------------------------------------------------------------------------------------

/// One step into a schema: a property, an array's items, or a `oneOf`'s branch.
#[derive(Clone, Copy)]
enum Step {
    Property(&'static str),
    Items,
    Branch(usize),
}

use Step::{Branch, Items, Property};

/// The objects that accept fields beyond those listed (`additionalProperties: true`): a component
/// and the path to the object within it. (Branch numbers count the generated `oneOf`, where the
/// `null` branch of an `Option` comes first.)
const OPEN_OBJECTS: [(&str, &[Step]); 17] = [
    ("ChatMessage", &[]),
    ("ChatTool", &[]),
    ("ChatCompletionRequest", &[]),
    ("ChatCompletion", &[]),
    (
        "ChatCompletion",
        &[Property("choices"), Items, Property("message")],
    ),
    ("ChatCompletion", &[Property("usage")]),
    ("ChatCompletionChunk", &[]),
    (
        "ChatCompletionChunk",
        &[Property("choices"), Items, Property("delta")],
    ),
    ("ChatCompletionChunk", &[Property("usage"), Branch(1)]),
    ("ResponsesRequest", &[]),
    ("ResponsesRequest", &[Property("input"), Branch(1), Items]),
    ("MessagesRequest", &[]),
    (
        "MessagesRequest",
        &[
            Property("messages"),
            Items,
            Property("content"),
            Branch(1),
            Items,
        ],
    ),
    ("MessagesRequest", &[Property("tools"), Items]),
    ("Message", &[]),
    ("Message", &[Property("content"), Items]),
    ("Message", &[Property("usage")]),
];

/// Adds to the registered components what their derives cannot say.
fn complete(components: &mut Components) {
    for (name, path) in OPEN_OBJECTS {
        if let Some(object) = components
            .schemas
            .get_mut(name)
            .and_then(|schema| object_at(schema, path))
        {
            object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(true)));
        }
    }
    // `messages` is required unless the body is Gemini-style (`input`, `contents`).
    if let Some(object) = components
        .schemas
        .get_mut("ChatCompletionRequest")
        .and_then(|schema| object_at(schema, &[]))
    {
        object.extensions.insert(
            "anyOf".to_owned(),
            json!([
                {"required": ["messages"]},
                {"required": ["input"]},
                {"required": ["contents"]},
            ]),
        );
    }
}

/// The object schema at `path` within `schema`, if it is one.
fn object_at<'a>(schema: &'a mut RefOr<Schema>, path: &[Step]) -> Option<&'a mut Object> {
    let RefOr::Type(schema) = schema else {
        return None;
    };
    match (schema, path.split_first()) {
        (Schema::Object(object), None) => Some(object),
        (Schema::Object(object), Some((Property(name), rest))) => {
            object_at(object.properties.get_mut(*name)?, rest)
        }
        (Schema::Array(array), Some((Items, rest))) => match &mut array.items {
            ArrayItems::RefOrSchema(items) => object_at(items, rest),
            ArrayItems::False => None,
        },
        (Schema::OneOf(one_of), Some((Branch(index), rest))) => {
            object_at(one_of.items.get_mut(*index)?, rest)
        }
        _ => None,
    }
}

/// A schema allowing exactly `value` (JSON Schema `const`). salvo-oapi's `Object` has no `const`
/// field; its extensions are flattened into the schema, so the keyword comes out as written.
fn constant(value: &str) -> Object {
    Object::new()
        .schema_type(SchemaType::AnyValue)
        .add_extension("const", json!(value))
}

/// `schema_with` takes a function of no arguments: one per constant.
macro_rules! constants {
    ($($name:ident = $value:literal;)*) => {$(
        fn $name() -> Object {
            constant($value)
        }
    )*};
}

constants! {
    const_error = "error";
    const_function = "function";
    const_function_call = "function_call";
    const_chat_completion = "chat.completion";
    const_chat_completion_chunk = "chat.completion.chunk";
    const_assistant = "assistant";
    const_response = "response";
    const_message = "message";
    const_output_text = "output_text";
    const_max_output_tokens = "max_output_tokens";
    const_disabled = "disabled";
    const_text = "text";
    const_model = "model";
    const_list = "list";
    const_closed = "closed";
    const_open = "open";
    const_half_open = "half_open";
}

fn health_store_schema() -> Object {
    constant("unreachable").description("Present when degraded: the Redis store cannot be reached.")
}

/// `type: [string, null]` with `values` and `null` as the allowed values.
fn nullable_string_enum(values: &[&str]) -> Object {
    Object::new()
        .schema_type(SchemaType::from_iter([BasicType::String, BasicType::Null]))
        .enum_values(values.iter().map(|value| json!(value)).chain([Value::Null]))
}

fn stop_reason_schema() -> Object {
    nullable_string_enum(&[
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
    ])
}

fn routing_strategy_request_schema() -> Object {
    nullable_string_enum(&[
        "balanced",
        "latency_first",
        "cost_first",
        "reliability_first",
    ])
    .default_value(json!("balanced"))
}

/// What the derive does for a named schema: a name from the global namer, the schema registered
/// once (a reference first, so that a recursive type terminates), and a reference returned.
fn register<T: ComposeSchema + 'static>(
    components: &mut Components,
    name: &'static str,
) -> RefOr<Schema> {
    let name = assign_name::<T>(NameRule::Force(name));
    let reference = RefOr::Ref(Ref::new(format!("#/components/schemas/{name}")));
    if !components.schemas.contains_key(&name) {
        components.schemas.insert(name.clone(), reference.clone());
        let schema = T::compose(components, Vec::new());
        components.schemas.insert(name, schema);
    }
    reference
}

// Serde defaults that are not the type's own.
fn default_base_weight() -> f64 {
    1.0
}

fn default_enabled() -> bool {
    true
}

fn default_capabilities() -> Vec<ModelCapability> {
    vec![ModelCapability::Chat]
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// The error shape of the OpenAI-compatible and management endpoints. Bodies the gateway writes always carry all four fields; an OpenAI-shaped upstream error relayed as it is carries what the upstream sent.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(
    name = "Error",
    example = json!({
        "error": {
            "message": "the model 'gpt-5x' does not exist or no provider offers it",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found"
        }
    })
))]
pub struct Error {
    pub error: ErrorBody,
}

// `Error.error`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct ErrorBody {
    /// What went wrong, in words.
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `rate_limit_error`, `upstream_error` or `api_error` (a relayed upstream error may carry its own).
    #[salvo(schema(example = "invalid_request_error"))]
    pub r#type: String,
    /// The request field at fault (a JSON path such as `messages[2].content[0].type`), or null.
    #[salvo(schema(required))]
    pub param: Option<String>,
    /// Machine-readable code: `invalid_request`, `invalid_logical_model`, `invalid_api_key`, `model_not_found`, `provider_not_found`, `logical_model_not_found`, `session_not_found`, `not_found`, `method_not_allowed`, `request_too_large`, `rate_limit_exceeded`, `upstream_rejected`, `untranslatable_request`, `all_upstreams_failed`, `upstream_unavailable`, `model_disabled`, `no_available_upstream`, `store_unavailable`, `internal_error`.
    #[salvo(schema(required, example = "model_not_found"))]
    pub code: Option<String>,
}

/// Anthropic's error shape, used by `/v1/messages` (and Claude-style bodies on `/v1/chat/completions`). A passed-through Anthropic error body is relayed as Anthropic sent it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(
    name = "AnthropicError",
    example = json!({
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "max_tokens: a positive integer is required"
        }
    })
))]
pub struct AnthropicError {
    // Always `error`.
    #[salvo(schema(schema_with = const_error))]
    pub r#type: String,
    pub error: AnthropicErrorBody,
}

// `AnthropicError.error`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct AnthropicErrorBody {
    /// `invalid_request_error`, `authentication_error`, `permission_error`, `not_found_error`, `request_too_large`, `rate_limit_error`, `api_error` or `overloaded_error`.
    #[salvo(schema(example = "invalid_request_error"))]
    pub r#type: String,
    pub message: String,
}

/// Google's error shape, answered by the Gemini endpoints.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(
    name = "GoogleError",
    example = json!({"error": {"code": 404, "message": "models/nope is not found", "status": "NOT_FOUND"}})
))]
pub struct GoogleError {
    pub error: GoogleErrorBody,
}

// `GoogleError.error`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct GoogleErrorBody {
    /// The HTTP status.
    pub code: u16,
    pub message: String,
    /// Google's status name: `INVALID_ARGUMENT`, `UNAUTHENTICATED`, `PERMISSION_DENIED`, `NOT_FOUND`, `RESOURCE_EXHAUSTED`, `INTERNAL`, `UNAVAILABLE`, ...
    #[salvo(schema(example = "NOT_FOUND"))]
    pub status: String,
}

// ---------------------------------------------------------------------------------------------
// Chat Completions
// ---------------------------------------------------------------------------------------------

/// One chat message. Checked shallowly: a string `role` and a `content` that is a string, an array of parts or null; the rest is passed on.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "ChatMessage"))]
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    #[salvo(schema(min_length = 1, example = "user"))]
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub content: Option<ChatMessageContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// On `tool` messages: the call answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub tool_call_id: Option<String>,
}

/// Text, or parts such as `{"type":"text","text":...}` and `{"type":"image_url","image_url":{"url":...}}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[salvo(schema(inline))]
pub enum ChatMessageContent {
    Text(String),
    Parts(Vec<Map<String, Value>>),
    Null,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "ToolCall"))]
pub struct ToolCall {
    pub id: String,
    // Always `function`.
    #[salvo(schema(schema_with = const_function))]
    pub r#type: String,
    pub function: ToolCallFunction,
}

// `ToolCall.function`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct ToolCallFunction {
    pub name: String,
    /// The arguments as JSON text.
    pub arguments: String,
}

/// A function tool.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "ChatTool"))]
pub struct ChatTool {
    #[salvo(schema(example = "function"))]
    pub r#type: String,
    pub function: ChatToolFunction,
}

// `ChatTool.function`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct ChatToolFunction {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(value_type = Object))]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub strict: Option<bool>,
}

/// An OpenAI Chat Completions request. Known fields are type-checked (a wrong type is a 400 naming the field; `null` is accepted for any of them); unknown fields pass through to OpenAI-vendor upstreams untouched. `messages` is required unless the body is Gemini-style (`input`) or a native Gemini body (`contents`). Nesting deeper than 128 levels is refused.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(
    name = "ChatCompletionRequest",
    example = json!({
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Hello"}],
        "stream": false
    })
))]
pub struct ChatCompletionRequest {
    /// A logical model id, a model any provider lists, or `provider/model` to pin a provider.
    #[salvo(schema(min_length = 1, pattern = r"\S", example = "gpt-4o"))]
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub messages: Option<Vec<ChatMessage>>,
    /// Stream the answer as server-sent events. When absent, an `Accept: text/event-stream` header turns streaming on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// e.g. `{"include_usage": true}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(value_type = Option<Object>))]
    pub stream_options: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ChatTool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub tool_choice: Option<ChatToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    /// Clamped to [0, 1] for anthropic-vendor upstreams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Not an OpenAI field: passed on as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub stop: Option<StopSequences>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u64>,
    /// `{"type":"text"|"json_object"|"json_schema", ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(value_type = Option<Object>))]
    pub response_format: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(value_type = Option<Object>))]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub input: Option<GeminiInput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub contents: Option<GeminiContents>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub system: Option<ClaudeSystem>,
    /// Present: the body is Claude-style.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub anthropic_version: Option<String>,
    /// Present: the body is Claude-style.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub max_tokens_to_sample: Option<i64>,
}

/// `none`, `auto`, `required`, or `{"type":"function","function":{"name":...}}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[salvo(schema(inline))]
pub enum ChatToolChoice {
    Mode(ChatToolChoiceMode),
    #[salvo(schema(value_type = Object))]
    Function(Map<String, Value>),
    Null,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[salvo(schema(inline))]
pub enum ChatToolChoiceMode {
    None,
    Auto,
    Required,
}

/// A stop sequence or a list of them.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[salvo(schema(inline))]
pub enum StopSequences {
    One(String),
    Many(Vec<String>),
    Null,
}

/// Gemini-style body (no `messages`): a string, or a list of `{role, content}` items whose content is a string or parts with `text`; roles `user` (default), `assistant`, `system`, `model`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[salvo(schema(inline))]
pub enum GeminiInput {
    Text(String),
    #[salvo(schema(value_type = Vec<Object>))]
    Items(Vec<Map<String, Value>>),
}

/// Native Gemini `generateContent` body (no `messages`): `contents`, `systemInstruction`, `tools`, `toolConfig`, `generationConfig` are converted.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[salvo(schema(inline))]
pub enum GeminiContents {
    Text(String),
    #[salvo(schema(value_type = Object))]
    Object(Map<String, Value>),
    #[salvo(schema(value_type = Vec<Object>))]
    Items(Vec<Map<String, Value>>),
}

/// Present: the body is Claude-style and is served as `POST /v1/messages`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[salvo(schema(inline))]
pub enum ClaudeSystem {
    Text(String),
    #[salvo(schema(value_type = Vec<Object>))]
    Blocks(Vec<Map<String, Value>>),
}

/// An OpenAI `chat.completion`: an OpenAI-vendor upstream's body as it sent it (fields beyond these included), or the translation of an Anthropic or Gemini answer.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "ChatCompletion"))]
pub struct ChatCompletion {
    #[salvo(schema(example = "chatcmpl-abc123"))]
    pub id: String,
    // Always `chat.completion`.
    #[salvo(schema(schema_with = const_chat_completion))]
    pub object: String,
    /// Epoch seconds.
    pub created: i64,
    /// The model that answered.
    pub model: String,
    pub choices: Vec<ChatCompletionChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub usage: Option<ChatUsage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_fingerprint: Option<String>,
}

// `ChatCompletion.choices[]`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct ChatCompletionChoice {
    pub index: i64,
    pub message: ChatCompletionMessage,
    /// `stop`, `length`, `tool_calls`, `content_filter`, ...
    #[salvo(schema(required))]
    pub finish_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(value_type = Option<Object>))]
    pub logprobs: Option<Map<String, Value>>,
}

// `ChatCompletion.choices[].message`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct ChatCompletionMessage {
    // Always `assistant`.
    #[salvo(schema(schema_with = const_assistant))]
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// Reasoning text some upstreams send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
}

// The token counts of a chat completion (`ChatCompletion.usage`, `ChatCompletionChunk.usage`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct ChatUsage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub prompt_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub total_tokens: Option<u64>,
}

/// One `data:` event of a streamed chat completion.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "ChatCompletionChunk"))]
pub struct ChatCompletionChunk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub id: Option<String>,
    // Always `chat.completion.chunk`.
    #[salvo(schema(schema_with = const_chat_completion_chunk))]
    pub object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub created: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub model: Option<String>,
    pub choices: Vec<ChatCompletionChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ChatUsage>,
}

// `ChatCompletionChunk.choices[]`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct ChatCompletionChunkChoice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub index: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub delta: Option<ChatCompletionChunkDelta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
}

// `ChatCompletionChunk.choices[].delta`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct ChatCompletionChunkDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(value_type = Vec<Object>))]
    pub tool_calls: Option<Vec<Map<String, Value>>>,
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// An OpenAI Responses API request. Fields other than those listed (`previous_response_id`, `store`, `reasoning`, `include`, `truncation`, ...) are accepted and not sent upstream.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(
    name = "ResponsesRequest",
    example = json!({"model": "gpt-4o", "instructions": "Be brief.", "input": "Hello"})
))]
pub struct ResponsesRequest {
    #[salvo(schema(min_length = 1, pattern = r"\S", example = "gpt-4o"))]
    pub model: String,
    pub input: ResponsesInput,
    /// Becomes the first system message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Function tools only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub tools: Option<Vec<ResponsesTool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub tool_choice: Option<ResponsesToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub user: Option<String>,
    #[serde(default)]
    #[salvo(schema(default = false))]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub text: Option<ResponsesTextConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(value_type = Object))]
    pub metadata: Option<Map<String, Value>>,
}

/// A string (one user message), or items: messages (`type: message` or a `role`; roles user, assistant, system, developer; content a string or `input_text`/`output_text`/`text`/`input_image` parts), `function_call {call_id, name, arguments}`, `function_call_output {call_id, output}`; `reasoning` items are dropped.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[salvo(schema(inline))]
pub enum ResponsesInput {
    Text(String),
    Items(Vec<ResponsesInputItem>),
}

// `ResponsesRequest.input[]`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct ResponsesInputItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub r#type: Option<ResponsesInputItemType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub role: Option<ResponsesInputRole>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub content: Option<ResponsesInputContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub arguments: Option<String>,
    // Any JSON (`{}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[salvo(schema(inline))]
pub enum ResponsesInputItemType {
    Message,
    FunctionCall,
    FunctionCallOutput,
    Reasoning,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[salvo(schema(inline))]
pub enum ResponsesInputRole {
    User,
    Assistant,
    System,
    Developer,
}

// `ResponsesRequest.input[].content`: a string or parts.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[salvo(schema(inline))]
pub enum ResponsesInputContent {
    Text(String),
    #[salvo(schema(value_type = Vec<Object>))]
    Parts(Vec<Map<String, Value>>),
}

// `ResponsesRequest.tools[]`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct ResponsesTool {
    // Always `function`.
    #[salvo(schema(schema_with = const_function))]
    pub r#type: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(value_type = Object))]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub strict: Option<bool>,
}

// `ResponsesRequest.tool_choice`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[salvo(schema(inline))]
pub enum ResponsesToolChoice {
    Mode(ResponsesToolChoiceMode),
    Function(ResponsesNamedToolChoice),
    Null,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[salvo(schema(inline))]
pub enum ResponsesToolChoiceMode {
    Auto,
    None,
    Required,
}

// `{"type": "function", "name": ...}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct ResponsesNamedToolChoice {
    // Always `function`.
    #[salvo(schema(schema_with = const_function))]
    pub r#type: String,
    pub name: String,
}

// `ResponsesRequest.text`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct ResponsesTextConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub format: Option<ResponsesTextFormat>,
}

// `ResponsesRequest.text.format`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct ResponsesTextFormat {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub r#type: Option<ResponsesTextFormatType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(value_type = Object))]
    pub schema: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub strict: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[salvo(schema(inline))]
pub enum ResponsesTextFormatType {
    Text,
    JsonObject,
    JsonSchema,
}

/// A Responses API Response object, built by the gateway from the chat answer; request fields are echoed.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "Response"))]
pub struct Response {
    #[salvo(schema(pattern = "^resp_", example = "resp_0123456789abcdef0123456789abcdef"))]
    pub id: String,
    // Always `response`.
    #[salvo(schema(schema_with = const_response))]
    pub object: String,
    pub created_at: i64,
    pub status: ResponseStatus,
    pub model: String,
    pub output: Vec<ResponseOutputItem>,
    #[salvo(schema(value_type = Option<Object>, required))]
    pub error: Option<Map<String, Value>>,
    #[salvo(schema(required))]
    pub incomplete_details: Option<IncompleteDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(value_type = Object))]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub tool_choice: Option<ResponseToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(value_type = Vec<Object>))]
    pub tools: Option<Vec<Map<String, Value>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(value_type = Object))]
    pub text: Option<Map<String, Value>>,
    // Always `disabled` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(schema_with = const_disabled))]
    pub truncation: Option<String>,
    pub usage: ResponseUsage,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[salvo(schema(inline))]
pub enum ResponseStatus {
    Completed,
    Incomplete,
}

// `Response.output[]`: a message or a function call.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[salvo(schema(inline))]
pub enum ResponseOutputItem {
    Message(ResponseOutputMessage),
    FunctionCall(ResponseFunctionCall),
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct ResponseOutputMessage {
    // Always `message`.
    #[salvo(schema(schema_with = const_message))]
    pub r#type: String,
    pub id: String,
    pub status: String,
    // Always `assistant`.
    #[salvo(schema(schema_with = const_assistant))]
    pub role: String,
    pub content: Vec<ResponseOutputText>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct ResponseOutputText {
    // Always `output_text`.
    #[salvo(schema(schema_with = const_output_text))]
    pub r#type: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub annotations: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub logprobs: Option<Vec<Value>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct ResponseFunctionCall {
    // Always `function_call`.
    #[salvo(schema(schema_with = const_function_call))]
    pub r#type: String,
    pub id: String,
    pub call_id: String,
    pub name: String,
    pub arguments: String,
    pub status: String,
}

// `Response.incomplete_details` when not null.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct IncompleteDetails {
    // Always `max_output_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(schema_with = const_max_output_tokens))]
    pub reason: Option<String>,
}

// `Response.tool_choice`, echoed: a string or an object.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[salvo(schema(inline))]
pub enum ResponseToolChoice {
    Mode(String),
    #[salvo(schema(value_type = Object))]
    Object(Map<String, Value>),
}

// `Response.usage`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct ResponseUsage {
    pub input_tokens: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub input_tokens_details: Option<InputTokensDetails>,
    pub output_tokens: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub output_tokens_details: Option<OutputTokensDetails>,
    pub total_tokens: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct InputTokensDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub cached_tokens: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct OutputTokensDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub reasoning_tokens: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Anthropic Messages
// ---------------------------------------------------------------------------------------------

/// An Anthropic Messages API request. Passed through natively to anthropic-vendor providers (only `model` rewritten); translated for the others, where `system`-role messages stay in place, `thinking` of type `enabled` becomes a reasoning effort, and what they cannot honour (`cache_control`, server tools, thinking and document blocks, `context_management`, `output_config`, unknown top-level fields) is dropped, logged at debug and counted in `apiproxy_dropped_fields_total`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(
    name = "MessagesRequest",
    example = json!({
        "model": "claude-sonnet-4",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hello"}]
    })
))]
pub struct MessagesRequest {
    #[salvo(schema(min_length = 1, pattern = r"\S", example = "claude-sonnet-4"))]
    pub model: String,
    pub messages: Vec<AnthropicInputMessage>,
    /// Required (a 400 without it).
    pub max_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub system: Option<AnthropicSystem>,
    #[serde(default)]
    #[salvo(schema(default = false))]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub top_k: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub tools: Option<Vec<AnthropicTool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub tool_choice: Option<AnthropicToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub metadata: Option<AnthropicMetadata>,
    /// Honoured by anthropic-vendor providers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(value_type = Object))]
    pub thinking: Option<Map<String, Value>>,
}

/// The input tokens a Messages request would use (`POST /v1/messages/count_tokens`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "MessageTokensCount", example = json!({"input_tokens": 2095})))]
pub struct MessageTokensCount {
    pub input_tokens: u64,
}

// `MessagesRequest.messages[]`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct AnthropicInputMessage {
    pub role: AnthropicRole,
    pub content: AnthropicMessageContent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[salvo(schema(inline))]
pub enum AnthropicRole {
    User,
    Assistant,
    /// Not in Anthropic's API, but Claude Code sends it between turns: kept in place as a system message.
    System,
}

/// A string, or blocks: `text`, `image` (base64 or url source), `tool_use`, `tool_result`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[salvo(schema(inline))]
pub enum AnthropicMessageContent {
    Text(String),
    Blocks(Vec<AnthropicContentBlock>),
}

// One content block of a request message.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct AnthropicContentBlock {
    pub r#type: String,
}

// `MessagesRequest.system`: a string or text blocks.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[salvo(schema(inline))]
pub enum AnthropicSystem {
    Text(String),
    Blocks(Vec<AnthropicSystemBlock>),
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct AnthropicSystemBlock {
    // Always `text`.
    #[salvo(schema(schema_with = const_text))]
    pub r#type: String,
    pub text: String,
}

// `MessagesRequest.tools[]`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct AnthropicTool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(value_type = Object))]
    pub input_schema: Option<Map<String, Value>>,
    /// Absent or `custom` for client tools; server tools reach anthropic-vendor providers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub r#type: Option<String>,
}

// `MessagesRequest.tool_choice`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct AnthropicToolChoice {
    pub r#type: AnthropicToolChoiceType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub disable_parallel_tool_use: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[salvo(schema(inline))]
pub enum AnthropicToolChoiceType {
    Auto,
    Any,
    None,
    Tool,
}

// `MessagesRequest.metadata`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct AnthropicMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub user_id: Option<String>,
}

/// An Anthropic Message: Anthropic's own answer when an anthropic-vendor provider served it, else the translation of the chat answer.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "Message"))]
pub struct Message {
    #[salvo(schema(example = "msg_abc123"))]
    pub id: String,
    // Always `message`.
    #[salvo(schema(schema_with = const_message))]
    pub r#type: String,
    // Always `assistant`.
    #[salvo(schema(schema_with = const_assistant))]
    pub role: String,
    /// The model the client asked for (translated answers).
    pub model: String,
    pub content: Vec<MessageContentBlock>,
    // `end_turn`, `max_tokens`, `stop_sequence`, `tool_use`, `pause_turn`, `refusal` or null.
    #[salvo(schema(schema_with = stop_reason_schema, required))]
    pub stop_reason: Option<String>,
    #[salvo(schema(required))]
    pub stop_sequence: Option<String>,
    pub usage: MessageUsage,
}

// `Message.content[]`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct MessageContentBlock {
    /// `text` or `tool_use` (passed-through answers may carry `thinking` and others).
    pub r#type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(value_type = Object))]
    pub input: Option<Map<String, Value>>,
}

// `Message.usage`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct MessageUsage {
    pub input_tokens: i64,
    pub output_tokens: i64,
}

// ---------------------------------------------------------------------------------------------
// Models
// ---------------------------------------------------------------------------------------------

/// One entry of the `/models` list.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "ModelEntry"))]
pub struct ModelEntry {
    /// A logical model id or a provider's model id.
    #[salvo(schema(example = "gpt-4o"))]
    pub id: String,
    // Always `model`.
    #[salvo(schema(schema_with = const_model))]
    pub object: String,
    /// Epoch seconds when the list was built.
    pub created: i64,
    /// `apiproxy` for logical models, else the provider id.
    #[salvo(schema(example = "apiproxy"))]
    pub owned_by: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "ModelList"))]
pub struct ModelList {
    // Always `list`.
    #[salvo(schema(schema_with = const_list))]
    pub object: String,
    pub data: Vec<ModelEntry>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[salvo(schema(name = "ModelCapability"))]
pub enum ModelCapability {
    Chat,
    Completion,
    Embedding,
    Vision,
    Audio,
    FunctionCalling,
}

/// One model as a provider lists it, normalised.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "Model"))]
pub struct Model {
    /// Gemini's `models/` prefix removed.
    pub model_id: String,
    pub provider_id: String,
    /// The entry's `family`, else `model_id`.
    pub family: String,
    /// The entry's `display_name`/`displayName`, else `model_id`.
    pub display_name: String,
    /// From `context_length`, `max_context`, `context_window` or `inputTokenLimit`; 8192 when the provider does not say.
    #[salvo(schema(minimum = 1, maximum = 4294967295))]
    pub context_length: u32,
    /// `["chat"]` when the provider does not say.
    pub capabilities: Vec<ModelCapability>,
    /// Omitted when the provider gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(nullable = false))]
    pub pricing: Option<IndexMap<String, f64>>,
    /// The provider's raw entry; omitted when it was a bare string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(value_type = Object))]
    pub metadata: Option<Map<String, Value>>,
    #[salvo(schema(required))]
    pub meta_hash: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "ProviderModelList"))]
pub struct ProviderModelList {
    pub total: u64,
    pub models: Vec<Model>,
}

// ---------------------------------------------------------------------------------------------
// Logical models
// ---------------------------------------------------------------------------------------------

/// One upstream of a logical model: a provider and the model id it knows the model by. Unknown fields are ignored.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(
    name = "PhysicalModel",
    example = json!({
        "provider_id": "openai",
        "model_id": "gpt-4o",
        "endpoint": "https://api.openai.com/v1/chat/completions",
        "base_weight": 1.0,
        "region": null,
        "max_qps": null,
        "meta_hash": null,
        "updated_at": 1764180000.0
    })
))]
pub struct PhysicalModel {
    /// Must be a configured provider.
    #[salvo(schema(min_length = 1, max_length = 128))]
    pub provider_id: String,
    /// Replaces `model` in the upstream request; must not be blank.
    #[salvo(schema(min_length = 1, max_length = 256, pattern = r"\S"))]
    pub model_id: String,
    /// Informational: derived on every read from the provider's base URL and chat path. A value sent in a request is ignored.
    #[serde(default)]
    #[salvo(schema(default = "", read_only))]
    pub endpoint: String,
    /// Routing weight.
    #[serde(default = "default_base_weight")]
    #[salvo(schema(exclusive_minimum = 0, maximum = 1000000, default = 1.0))]
    pub base_weight: f64,
    /// Overrides the provider's region for the region preference.
    #[serde(default)]
    #[salvo(schema(default = json!(null)))]
    pub region: Option<String>,
    /// Stored and shown; admission uses the provider's `MAX_QPS`.
    #[serde(default)]
    #[salvo(schema(minimum = 0, maximum = 4294967295, default = json!(null)))]
    pub max_qps: Option<u32>,
    #[serde(default)]
    #[salvo(schema(default = json!(null)))]
    pub meta_hash: Option<String>,
    /// Epoch seconds; set to now on PUT when `<= 0`.
    #[serde(default)]
    #[salvo(schema(default = 0))]
    pub updated_at: f64,
}

/// The public model name clients ask for, mapped to one or more upstreams. Unknown fields are ignored. Answers always carry every field.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(
    name = "LogicalModel",
    example = json!({
        "logical_id": "gpt-4o",
        "display_name": "GPT-4o",
        "description": "",
        "capabilities": ["chat"],
        "upstreams": [{
            "provider_id": "openai",
            "model_id": "gpt-4o",
            "endpoint": "https://api.openai.com/v1/chat/completions",
            "base_weight": 1.0,
            "region": null,
            "max_qps": null,
            "meta_hash": null,
            "updated_at": 1764180000.0
        }],
        "enabled": true,
        "updated_at": 1764180000.0,
        "stream_resume": false
    })
))]
pub struct LogicalModel {
    /// The public model name; must not be blank.
    #[salvo(schema(min_length = 1, max_length = 256, pattern = r"\S"))]
    pub logical_id: String,
    /// Set to `logical_id` when empty.
    #[serde(default)]
    #[salvo(schema(default = ""))]
    pub display_name: String,
    #[serde(default)]
    #[salvo(schema(default = ""))]
    pub description: String,
    /// Informational.
    #[serde(default = "default_capabilities")]
    #[salvo(schema(default = json!(["chat"])))]
    pub capabilities: Vec<ModelCapability>,
    /// May be empty (requests then get 503 `no_available_upstream`). Duplicates are accepted.
    pub upstreams: Vec<PhysicalModel>,
    /// `false`: chat and `/routing/decide` answer 503 `model_disabled`, and the model is left out of `/models`.
    #[serde(default = "default_enabled")]
    #[salvo(schema(default = true))]
    pub enabled: bool,
    /// Epoch seconds; set to now on PUT.
    #[serde(default)]
    #[salvo(schema(default = 0))]
    pub updated_at: f64,
    /// Opt-in stream resume: a stream that breaks after content reached the client continues on the next candidate (the conversation plus the partial answer), and the client sees one stream ending with the comment `: apiproxy-resumed provider=<id> attempts=<n>`. Per request: `X-APIProxy-Stream-Resume: true`.
    #[serde(default)]
    #[salvo(schema(default = false))]
    pub stream_resume: bool,
}

/// The body of `PUT /logical-models/{id}`: a LogicalModel whose `logical_id` may be left out.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(
    name = "LogicalModelInput",
    example = json!({
        "display_name": "GPT-4o",
        "upstreams": [
            {"provider_id": "openai", "model_id": "gpt-4o", "base_weight": 2.0},
            {"provider_id": "azure", "model_id": "gpt-4o"}
        ]
    })
))]
pub struct LogicalModelInput {
    /// Optional: taken from the path when absent or null; must equal the path id when given.
    #[serde(default)]
    #[salvo(schema(min_length = 1, max_length = 256, pattern = r"\S"))]
    pub logical_id: Option<String>,
    /// Set to `logical_id` when empty.
    #[serde(default)]
    #[salvo(schema(default = ""))]
    pub display_name: String,
    #[serde(default)]
    #[salvo(schema(default = ""))]
    pub description: String,
    /// Informational.
    #[serde(default = "default_capabilities")]
    #[salvo(schema(default = json!(["chat"])))]
    pub capabilities: Vec<ModelCapability>,
    /// May be empty (requests then get 503 `no_available_upstream`). Duplicates are accepted.
    pub upstreams: Vec<PhysicalModel>,
    /// `false`: chat and `/routing/decide` answer 503 `model_disabled`, and the model is left out of `/models`.
    #[serde(default = "default_enabled")]
    #[salvo(schema(default = true))]
    pub enabled: bool,
    /// Ignored: set to now.
    #[serde(default)]
    #[salvo(schema(default = 0))]
    pub updated_at: f64,
    /// Opt-in stream resume (see `LogicalModel.stream_resume`).
    #[serde(default)]
    #[salvo(schema(default = false))]
    pub stream_resume: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "LogicalModelList"))]
pub struct LogicalModelList {
    pub total: u64,
    pub models: Vec<LogicalModel>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "LogicalModelUpstreams"))]
pub struct LogicalModelUpstreams {
    pub upstreams: Vec<PhysicalModel>,
}

// ---------------------------------------------------------------------------------------------
// Providers, health and metrics
// ---------------------------------------------------------------------------------------------

/// A configured provider as `/providers` shows it: secrets masked (`****` plus the last 4 characters, or `****` for 8 characters or fewer).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(
    name = "Provider",
    example = json!({
        "id": "openai",
        "name": "OpenAI",
        "base_url": "https://api.openai.com/v1",
        "api_key": "****abcd",
        "vendor": "openai",
        "models_path": "/v1/models",
        "chat_path": "/v1/chat/completions",
        "weight": 1.0,
        "region": null,
        "max_qps": null,
        "cost_input": null,
        "cost_output": null,
        "retryable_status_codes": [429, 500, 502, 503, 504],
        "custom_headers": {},
        "static_models": null
    })
))]
pub struct Provider {
    pub id: String,
    pub name: String,
    #[salvo(schema(format = "uri"))]
    pub base_url: String,
    /// Masked, never the key.
    #[salvo(schema(pattern = r"^\*\*\*\*", example = "****abcd"))]
    pub api_key: String,
    pub vendor: ProviderVendor,
    #[salvo(schema(example = "/v1/models"))]
    pub models_path: String,
    #[salvo(schema(example = "/v1/chat/completions"))]
    pub chat_path: String,
    /// Where `/v1/responses` requests go natively (`RESPONSES=true`); null when they go translated to chat.
    #[salvo(schema(required, example = "/v1/responses"))]
    pub responses_path: Option<String>,
    #[salvo(schema(exclusive_minimum = 0))]
    pub weight: f64,
    #[salvo(schema(required))]
    pub region: Option<String>,
    #[salvo(schema(required, minimum = 1))]
    pub max_qps: Option<u32>,
    /// Price per 1M input tokens.
    #[salvo(schema(required, minimum = 0))]
    pub cost_input: Option<f64>,
    /// Price per 1M output tokens.
    #[salvo(schema(required, minimum = 0))]
    pub cost_output: Option<f64>,
    /// `null`: 429 and every 5xx; else exactly these statuses, sorted (`[]`: no status retries).
    #[salvo(schema(required, minimum = 100, maximum = 599))]
    pub retryable_status_codes: Option<Vec<u16>>,
    /// Extra upstream headers: names, with masked values.
    pub custom_headers: IndexMap<String, String>,
    /// The ids of the static model list, or null when the models path is called.
    #[salvo(schema(required))]
    pub static_models: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[salvo(schema(inline))]
pub enum ProviderVendor {
    Openai,
    Anthropic,
    Gemini,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "ProviderList"))]
pub struct ProviderList {
    pub total: u64,
    pub providers: Vec<Provider>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[salvo(schema(name = "ProviderStatus"))]
pub enum ProviderStatus {
    Healthy,
    Degraded,
    Down,
}

/// A provider's health from one live call to its models path.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "HealthStatus"))]
pub struct HealthStatus {
    pub provider_id: String,
    pub status: ProviderStatus,
    /// Epoch seconds, after the call.
    pub timestamp: f64,
    /// Null for a transport error.
    #[salvo(schema(required))]
    pub response_time_ms: Option<f64>,
    /// `HTTP <status>: <message>`, the parse problem, or the transport error.
    #[salvo(schema(required))]
    pub error_message: Option<String>,
    /// `timestamp` when healthy, else null (nothing is remembered between calls).
    #[salvo(schema(required))]
    pub last_successful_check: Option<f64>,
}

/// Figures for one (logical model, provider) pair over the last minute.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "RoutingMetrics"))]
pub struct RoutingMetrics {
    pub logical_model: String,
    pub provider_id: String,
    /// Of successful attempts.
    #[salvo(schema(minimum = 0))]
    pub latency_p95_ms: f64,
    #[salvo(schema(minimum = 0))]
    pub latency_p99_ms: f64,
    #[salvo(schema(minimum = 0, maximum = 1))]
    pub error_rate: f64,
    /// Successes / 60.
    #[salvo(schema(minimum = 0))]
    pub success_qps_1m: f64,
    pub total_requests_1m: u64,
    /// The latest second with data (epoch seconds).
    pub last_updated: f64,
    /// `down` above 0.5 error rate; `degraded` above 0.1 or p95 over 2000 ms; else `healthy`.
    pub status: ProviderStatus,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "ProviderMetrics"))]
pub struct ProviderMetrics {
    pub metrics: Vec<RoutingMetrics>,
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "CircuitClosed"))]
pub struct CircuitClosed {
    // Always `closed`.
    #[salvo(schema(schema_with = const_closed))]
    pub state: String,
    pub consecutive_failures: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "CircuitOpen"))]
pub struct CircuitOpen {
    // Always `open`.
    #[salvo(schema(schema_with = const_open))]
    pub state: String,
    /// Epoch seconds when the cool-down ends.
    pub until: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "CircuitHalfOpen"))]
pub struct CircuitHalfOpen {
    // Always `half_open`.
    #[salvo(schema(schema_with = const_half_open))]
    pub state: String,
    /// Epoch seconds when the probe request started.
    pub probe_started: f64,
}

/// A provider's circuit (cool-down after `PROVIDER_FAILURE_THRESHOLD` consecutive failures, then one half-open probe).
// The schema is written by hand below: salvo-oapi 1.1's derive rejects its own `discriminator`
// attribute on enums (it parses enum attributes against a list that lacks it).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Circuit {
    Closed(CircuitClosed),
    Open(CircuitOpen),
    HalfOpen(CircuitHalfOpen),
}

impl ToSchema for Circuit {
    fn to_schema(components: &mut Components) -> RefOr<Schema> {
        register::<Self>(components, "Circuit")
    }
}

impl ComposeSchema for Circuit {
    fn compose(components: &mut Components, _generics: Vec<RefOr<Schema>>) -> RefOr<Schema> {
        let branches = [
            ("closed", CircuitClosed::to_schema(components)),
            ("open", CircuitOpen::to_schema(components)),
            ("half_open", CircuitHalfOpen::to_schema(components)),
        ];
        let mut discriminator = Discriminator::new("state");
        let mut one_of = OneOf::new().description(
            "A provider's circuit (cool-down after `PROVIDER_FAILURE_THRESHOLD` consecutive \
             failures, then one half-open probe).",
        );
        for (state, branch) in branches {
            if let RefOr::Ref(reference) = &branch {
                discriminator
                    .mapping
                    .insert(state.to_owned(), reference.ref_location.clone());
            }
            one_of = one_of.item(branch);
        }
        one_of.discriminator(discriminator).into()
    }
}

/// Unknown fields are refused (400).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[salvo(schema(
    name = "RoutingDecisionRequest",
    example = json!({
        "logical_model": "gpt-4o",
        "conversation_id": "conv-42",
        "strategy": "latency_first"
    })
))]
pub struct RoutingDecisionRequest {
    #[salvo(schema(min_length = 1, pattern = r"\S"))]
    pub logical_model: String,
    /// Honour this session's binding, and bind it to the selected upstream.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// Accepted and ignored.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Soft preference, case-insensitive.
    #[serde(default)]
    pub preferred_region: Option<String>,
    // `balanced` (the default), `latency_first`, `cost_first`, `reliability_first`, or null.
    #[serde(default)]
    #[salvo(schema(schema_with = routing_strategy_request_schema))]
    pub strategy: Option<RoutingStrategy>,
    /// Exact provider ids to leave out.
    #[serde(default)]
    #[salvo(schema(default = json!([])))]
    pub exclude_providers: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[salvo(schema(inline))]
pub enum RoutingStrategy {
    Balanced,
    LatencyFirst,
    CostFirst,
    ReliabilityFirst,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "RoutingDecision"))]
pub struct RoutingDecision {
    pub logical_model: String,
    pub selected_upstream: PhysicalModel,
    /// Milliseconds the decision took.
    pub decision_time: f64,
    #[salvo(schema(
        example = "Selected provider 'a' model 'x' for logical model 'gpt' (weighted pick by score; strategy balanced)."
    ))]
    pub reasoning: String,
    /// The failover order after the selected upstream.
    pub alternative_upstreams: Vec<PhysicalModel>,
    pub strategy_used: RoutingStrategy,
    /// The candidates by descending score.
    pub all_candidates: Vec<RoutingCandidate>,
}

// `RoutingDecision.all_candidates[]`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct RoutingCandidate {
    pub upstream: PhysicalModel,
    pub score: f64,
    /// Null when the pair had no attempt in the last minute.
    #[salvo(schema(required))]
    pub metrics: Option<RoutingMetrics>,
    pub circuit: Circuit,
}

// ---------------------------------------------------------------------------------------------
// Sessions and context
// ---------------------------------------------------------------------------------------------

/// A conversation bound to the upstream that served it; lives `SESSION_TTL` seconds after its last binding.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "Session"))]
pub struct Session {
    pub conversation_id: String,
    /// Stickiness applies to this logical model only.
    pub logical_model: String,
    pub provider_id: String,
    pub model_id: String,
    /// Epoch seconds of the first binding.
    pub created_at: f64,
    /// Epoch seconds of the latest binding.
    pub last_accessed: f64,
    /// Bindings so far.
    #[salvo(schema(minimum = 1))]
    pub message_count: u64,
}

/// One recorded exchange. A side whose JSON is over 32512 bytes (in an entry over 64 KiB) is replaced by `{"truncated": true, "original_bytes", "preview"}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "ContextEntry"))]
pub struct ContextEntry {
    /// The client's chat body.
    pub request: Value,
    /// The upstream's JSON answer, the assembled stream `{message, finish_reason, usage}`, a relayed error body, or `{"error": ...}`.
    pub response: Value,
    pub created_at: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "ContextHistory"))]
pub struct ContextHistory {
    pub session_id: String,
    /// Newest first. An entry that is not valid JSON is returned as a string.
    pub history: Vec<ContextHistoryItem>,
}

// `ContextHistory.history[]`: an entry, or the raw text of one that is not valid JSON.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[salvo(schema(inline))]
pub enum ContextHistoryItem {
    Entry(ContextEntry),
    Raw(String),
}

// ---------------------------------------------------------------------------------------------
// Gateway health
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(
    name = "Health",
    examples(
        json!({"status": "ok"}),
        json!({"status": "degraded", "store": "unreachable"})
    )
))]
pub struct Health {
    pub status: HealthState,
    // Always `unreachable` when present (described in `health_store_schema`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[salvo(schema(schema_with = health_store_schema))]
    pub store: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[salvo(schema(inline))]
pub enum HealthState {
    Ok,
    Degraded,
}

#[cfg(test)]
mod tests {
    //! What the schemas promise beyond their derives. That they match what the handlers write is
    //! checked against a real gateway (`tests/blackbox/openapi_conformance.rs`).

    use std::collections::BTreeSet;

    use salvo::oapi::Components;
    use serde_json::{Map, Value};

    use super::all;

    /// Every schema of the document.
    const NAMES: [&str; 38] = [
        "Error",
        "AnthropicError",
        "ChatMessage",
        "ToolCall",
        "ChatTool",
        "ChatCompletionRequest",
        "ChatCompletion",
        "ChatCompletionChunk",
        "ResponsesRequest",
        "Response",
        "MessagesRequest",
        "Message",
        "ModelEntry",
        "ModelList",
        "ModelCapability",
        "Model",
        "ProviderModelList",
        "PhysicalModel",
        "LogicalModel",
        "LogicalModelInput",
        "LogicalModelList",
        "LogicalModelUpstreams",
        "Provider",
        "ProviderList",
        "ProviderStatus",
        "HealthStatus",
        "RoutingMetrics",
        "ProviderMetrics",
        "CircuitClosed",
        "CircuitOpen",
        "CircuitHalfOpen",
        "Circuit",
        "RoutingDecisionRequest",
        "RoutingDecision",
        "Session",
        "ContextEntry",
        "ContextHistory",
        "Health",
    ];

    fn generated() -> Map<String, Value> {
        let mut components = Components::new();
        all(&mut components);
        let components = serde_json::to_value(&components).expect("components should serialize");
        components["schemas"]
            .as_object()
            .cloned()
            .expect("the generated components should have schemas")
    }

    #[test]
    fn every_schema_is_registered_under_its_name_and_no_helper_leaks() {
        let names: BTreeSet<String> = NAMES.iter().map(|name| (*name).to_owned()).collect();
        let generated: BTreeSet<String> = generated().keys().cloned().collect();
        assert_eq!(generated, names);
    }

    #[test]
    fn the_completions_the_derives_cannot_say_are_there() {
        let schemas = generated();
        assert_eq!(schemas["ChatMessage"]["additionalProperties"], true);
        assert_eq!(
            schemas["ChatCompletionRequest"]["anyOf"][0]["required"][0],
            "messages"
        );
        assert_eq!(schemas["Circuit"]["discriminator"]["propertyName"], "state");
    }

    #[test]
    fn all_keeps_what_it_completed_when_called_again() {
        let mut components = Components::new();
        all(&mut components);
        let once = serde_json::to_value(&components).expect("components should serialize");
        all(&mut components);
        let twice = serde_json::to_value(&components).expect("components should serialize");
        assert_eq!(once, twice);
    }
}
