//! The client's Responses tools as chat functions, and chat calls back as the items the client
//! declared (SPEC 4.8). Chat knows only functions with JSON arguments, so:
//! - a `namespace` (a named group of tools, as Codex sends its MCP and collaboration tools) is
//!   flattened: each child becomes a function named `{namespace}__{name}`, and its calls come back
//!   as `function_call` items with `name` and `namespace` as the client declared them;
//! - a `custom` (free-form) tool becomes a function with one string argument, `input`, and its calls
//!   come back as `custom_tool_call` items carrying that string;
//! - built-in tools (`web_search`, `file_search`, `code_interpreter`, ...) run inside OpenAI's own
//!   service, which no chat upstream offers: they are dropped and noted.

use serde_json::{Map, Value, json};

use super::err;
use crate::protocol::{Dropped, TranslateError};

/// The longest function name every vendor accepts (OpenAI's limit).
const MAX_NAME: usize = 64;

/// Built-in tool types with their own metric label when dropped; others count as `other_tool`.
const BUILT_IN: [&str; 10] = [
    "web_search",
    "web_search_preview",
    "file_search",
    "code_interpreter",
    "computer_use_preview",
    "image_generation",
    "local_shell",
    "mcp",
    "tool_search",
    "apply_patch",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ToolKind {
    Function,
    Custom,
}

/// One tool the client declared, under the name chat knows it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DeclaredTool {
    pub flat: String,
    pub name: String,
    pub namespace: Option<String>,
    pub kind: ToolKind,
}

/// The client's function and custom tools, by their chat names.
#[derive(Debug, Clone, Default)]
pub(super) struct Toolbox(Vec<DeclaredTool>);

impl Toolbox {
    /// The toolbox of a request, leniently (for answers: the request was checked on the way in).
    pub fn of(request: &Value) -> Toolbox {
        read_tools(request, &mut Dropped::new())
            .map(|(toolbox, _)| toolbox)
            .unwrap_or_default()
    }

    /// The chat name of a call the client made to `name` in `namespace`.
    pub fn flat_name(&self, name: &str, namespace: Option<&str>) -> String {
        self.0
            .iter()
            .find(|tool| tool.name == name && tool.namespace.as_deref() == namespace)
            .map_or_else(|| flatten(name, namespace), |tool| tool.flat.clone())
    }

    /// The tool a chat call names, if the client declared one by that chat name.
    pub fn declared(&self, flat: &str) -> Option<&DeclaredTool> {
        self.0.iter().find(|tool| tool.flat == flat)
    }
}

/// `{namespace}__{name}`, cut to [`MAX_NAME`] with a hash of the whole when longer, so two long
/// names stay apart.
fn flatten(name: &str, namespace: Option<&str>) -> String {
    let flat = match namespace {
        Some(namespace) => format!("{namespace}__{name}"),
        None => return name.to_string(),
    };
    if flat.len() <= MAX_NAME {
        return flat;
    }
    let hash = flat.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let keep: String = flat.chars().take(MAX_NAME - 9).collect();
    format!("{keep}_{:08x}", hash as u32)
}

/// The chat tools for a request's `tools`, and the toolbox to map calls back.
pub(super) fn read_tools(
    request: &Value,
    dropped: &mut Dropped,
) -> Result<(Toolbox, Vec<Value>), TranslateError> {
    let mut toolbox = Toolbox::default();
    let mut chat = Vec::new();
    let tools = match request.get("tools") {
        None | Some(Value::Null) => return Ok((toolbox, chat)),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(err("'tools' must be a list", "tools")),
    };
    for (i, tool) in tools.iter().enumerate() {
        let at = format!("tools[{i}]");
        match tool.get("type").and_then(Value::as_str) {
            Some("function" | "custom") => {
                declare(tool, None, &at, &mut toolbox, &mut chat)?;
            }
            Some("namespace") => {
                let namespace = tool
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| err("a namespace tool needs 'name'", &format!("{at}.name")))?;
                let children = tool.get("tools").and_then(Value::as_array).ok_or_else(|| {
                    err(
                        "a namespace tool needs a 'tools' list",
                        &format!("{at}.tools"),
                    )
                })?;
                for (j, child) in children.iter().enumerate() {
                    let at = format!("{at}.tools[{j}]");
                    match child.get("type").and_then(Value::as_str) {
                        Some("function" | "custom") | None => {
                            declare(child, Some(namespace), &at, &mut toolbox, &mut chat)?;
                        }
                        Some(other) => dropped.note("namespace_tool", format!("{at} '{other}'")),
                    }
                }
            }
            Some(kind) => {
                let label = BUILT_IN
                    .iter()
                    .find(|known| **known == kind)
                    .copied()
                    .unwrap_or("other_tool");
                dropped.note(label, format!("{at} '{kind}'"));
            }
            None => return Err(err("a tool needs a 'type'", &format!("{at}.type"))),
        }
    }
    Ok((toolbox, chat))
}

/// Adds one function or custom tool (in `namespace`, if any) as a chat function.
fn declare(
    tool: &Value,
    namespace: Option<&str>,
    at: &str,
    toolbox: &mut Toolbox,
    chat: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let name = tool
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| err("a tool needs 'name'", &format!("{at}.name")))?;
    let kind = match tool.get("type").and_then(Value::as_str) {
        Some("custom") => ToolKind::Custom,
        _ => ToolKind::Function,
    };
    let flat = flatten(name, namespace);
    let mut function = Map::new();
    function.insert("name".into(), json!(flat));
    let description = tool.get("description").and_then(Value::as_str);
    let description = match (namespace, description) {
        (Some(namespace), Some(text)) => Some(format!("[{namespace}] {text}")),
        (_, text) => text.map(str::to_string),
    };
    if let Some(description) = description {
        function.insert("description".into(), json!(description));
    }
    let parameters = match kind {
        ToolKind::Custom => json!({
            "type": "object",
            "properties": {"input": {"type": "string", "description": custom_input_hint(tool)}},
            "required": ["input"],
            "additionalProperties": false,
        }),
        ToolKind::Function => tool
            .get("parameters")
            .filter(|p| p.is_object())
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
    };
    function.insert("parameters".into(), parameters);
    if kind == ToolKind::Function
        && let Some(strict) = tool.get("strict").filter(|s| s.is_boolean())
    {
        function.insert("strict".into(), strict.clone());
    }
    chat.push(json!({"type": "function", "function": Value::Object(function)}));
    toolbox.0.push(DeclaredTool {
        flat,
        name: name.to_string(),
        namespace: namespace.map(str::to_string),
        kind,
    });
    Ok(())
}

/// What the `input` string of a custom tool must look like: its grammar when it has one.
fn custom_input_hint(tool: &Value) -> String {
    match tool.pointer("/format/definition").and_then(Value::as_str) {
        Some(grammar) => format!("The raw tool input, following this grammar:\n{grammar}"),
        None => "The raw tool input.".to_string(),
    }
}

/// The arguments of a chat call to a custom tool: its `input` string.
pub(super) fn custom_arguments(input: &str) -> String {
    json!({"input": input}).to_string()
}

/// The `input` of a custom tool call from a chat call's arguments (the raw arguments when the
/// model did not follow the one-string-argument schema).
pub(super) fn custom_input(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(object)) => match object.get("input") {
            Some(Value::String(input)) => input.clone(),
            _ => arguments.to_string(),
        },
        _ => arguments.to_string(),
    }
}

/// The output item for a chat tool call, in the shape of the tool the client declared.
pub(super) fn call_item(
    toolbox: &Toolbox,
    id: &str,
    call_id: &str,
    flat: &str,
    arguments: &str,
    status: &str,
) -> Value {
    match toolbox.declared(flat) {
        Some(tool) if tool.kind == ToolKind::Custom => {
            let mut item = json!({"type": "custom_tool_call", "id": id, "call_id": call_id,
                "name": tool.name, "input": custom_input(arguments), "status": status});
            if let Some(namespace) = &tool.namespace {
                item["namespace"] = json!(namespace);
            }
            item
        }
        Some(tool) => {
            let mut item = json!({"type": "function_call", "id": id, "call_id": call_id,
                "name": tool.name, "arguments": arguments, "status": status});
            if let Some(namespace) = &tool.namespace {
                item["namespace"] = json!(namespace);
            }
            item
        }
        None => json!({"type": "function_call", "id": id, "call_id": call_id, "name": flat,
            "arguments": arguments, "status": status}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_namespaced_names_are_cut_and_stay_apart() {
        let a = flatten(&"a".repeat(40), Some(&"n".repeat(40)));
        let b = flatten(&format!("{}b", "a".repeat(39)), Some(&"n".repeat(40)));
        assert_eq!(a.len(), MAX_NAME);
        assert_ne!(a, b);
        assert_eq!(flatten("f", Some("ns")), "ns__f");
        assert_eq!(flatten("f", None), "f");
    }

    #[test]
    fn custom_inputs_come_back_as_the_raw_string() {
        assert_eq!(
            custom_input(&custom_arguments("*** Begin Patch")),
            "*** Begin Patch"
        );
        assert_eq!(custom_input("not json"), "not json");
    }
}
