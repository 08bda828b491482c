//! JSON schema cleaning for Gemini function declarations: [`clean_schema`] and its `SchemaCleaner`.

use serde_json::{Value, json};

use super::Object;

/// The JSON-schema keywords Gemini's `Schema` (an OpenAPI 3.0 subset) accepts; any other keyword
/// is a 400 "Unknown name" there, so [`clean_schema`] drops it. Dropped that way, among others:
/// `additionalProperties`, `$schema`, `$id`, `$defs`/`definitions` (after `$ref`s into them are
/// inlined), `strict`, `examples`, `exclusiveMinimum`/`exclusiveMaximum`, `uniqueItems`, `not`,
/// `patternProperties`. `title` is kept (Gemini has it). Rewritten rather than dropped: `type`
/// lists (`["string","null"]` -> `type` + `nullable`, several types -> `anyOf`), `oneOf` ->
/// `anyOf`, `const` -> a one-value `enum`, non-string `enum` values -> strings (Gemini's enums are
/// strings), a one-element `allOf` -> merged in, and local `$ref`s -> the schema they point at
/// (recursive references become `{"type":"object"}`).
const GEMINI_SCHEMA_KEYS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// How deep a schema is followed, and how many schema nodes may be written before `$ref`s stop
/// being inlined, so a hostile schema (deep nesting, references that fan out, one large definition
/// referenced many times) cannot take unbounded time or memory: the output stays within this
/// budget plus the size of the input.
pub(super) const MAX_SCHEMA_DEPTH: usize = 64;
const MAX_SCHEMA_NODES: usize = 20_000;

/// A JSON schema cleaned for Gemini (see [`GEMINI_SCHEMA_KEYS`]).
pub(super) fn clean_schema(schema: &Value) -> Value {
    let mut cleaner = SchemaCleaner {
        root: schema,
        nodes: 0,
        stack: Vec::new(),
    };
    cleaner.clean(schema, 0)
}

struct SchemaCleaner<'a> {
    root: &'a Value,
    /// Schema objects written so far.
    nodes: usize,
    stack: Vec<String>,
}

impl SchemaCleaner<'_> {
    fn clean(&mut self, schema: &Value, depth: usize) -> Value {
        let Value::Object(object) = schema else {
            return schema.clone();
        };
        if depth > MAX_SCHEMA_DEPTH {
            return json!({"type": "object"});
        }
        self.nodes += 1;
        if let Some(Value::String(reference)) = object.get("$ref") {
            let mut inlined = self.inline_ref(reference, depth);
            if let Value::Object(map) = &mut inlined {
                for key in ["description", "title"] {
                    if let Some(value) = object.get(key) {
                        map.insert(key.into(), value.clone());
                    }
                }
            }
            return inlined;
        }
        let mut out = Object::new();
        let mut any_of: Vec<Value> = Vec::new();
        let mut nullable = false;
        for (key, value) in object {
            match key.as_str() {
                "type" => match value {
                    Value::Array(types) => {
                        let named: Vec<&Value> = types
                            .iter()
                            .filter(|t| {
                                if t.as_str() == Some("null") {
                                    nullable = true;
                                    false
                                } else {
                                    true
                                }
                            })
                            .collect();
                        match named.as_slice() {
                            [] => {}
                            [one] => {
                                out.insert("type".into(), (*one).clone());
                            }
                            many => any_of.extend(many.iter().map(|t| json!({ "type": t }))),
                        }
                    }
                    other => {
                        out.insert("type".into(), other.clone());
                    }
                },
                "properties" => {
                    if let Value::Object(properties) = value {
                        let cleaned = properties
                            .iter()
                            .map(|(name, sub)| (name.clone(), self.clean(sub, depth + 1)))
                            .collect();
                        out.insert("properties".into(), Value::Object(cleaned));
                    }
                }
                "items" => {
                    // A tuple (`items` as a list) keeps its first schema.
                    let item = match value {
                        Value::Array(items) => items.first(),
                        other => Some(other),
                    };
                    if let Some(item) = item {
                        let cleaned = self.clean(item, depth + 1);
                        out.insert("items".into(), cleaned);
                    }
                }
                "anyOf" | "oneOf" => {
                    if let Value::Array(options) = value {
                        for option in options {
                            let cleaned = self.clean(option, depth + 1);
                            any_of.push(cleaned);
                        }
                    }
                }
                "allOf" => {
                    if let Value::Array(all) = value
                        && let [only] = all.as_slice()
                        && let Value::Object(merged) = self.clean(only, depth + 1)
                    {
                        for (k, v) in merged {
                            out.entry(k).or_insert(v);
                        }
                    }
                }
                "const" => {
                    if let Some(text) = enum_text(value) {
                        out.entry("enum").or_insert(json!([text]));
                    }
                }
                "enum" => {
                    if let Value::Array(values) = value {
                        if values.iter().any(Value::is_null) {
                            nullable = true;
                        }
                        let texts: Vec<Value> = values
                            .iter()
                            .filter_map(enum_text)
                            .map(Value::String)
                            .collect();
                        out.insert("enum".into(), Value::Array(texts));
                    }
                }
                known if GEMINI_SCHEMA_KEYS.contains(&known) => {
                    out.insert(key.clone(), value.clone());
                }
                _ => {}
            }
        }
        if !any_of.is_empty() {
            out.insert("anyOf".into(), Value::Array(any_of));
        }
        if nullable {
            out.insert("nullable".into(), Value::Bool(true));
        }
        Value::Object(out)
    }

    fn inline_ref(&mut self, reference: &str, depth: usize) -> Value {
        let target = reference
            .strip_prefix('#')
            .and_then(|pointer| self.root.pointer(pointer));
        let recursive = self.stack.iter().any(|r| r == reference);
        match target {
            Some(target) if !recursive && self.nodes < MAX_SCHEMA_NODES => {
                self.stack.push(reference.to_string());
                let inlined = self.clean(target, depth + 1);
                self.stack.pop();
                inlined
            }
            _ => json!({"type": "object"}),
        }
    }
}

fn enum_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}
