//! The requests Claude Code, Codex CLI and Gemini CLI really send (captured by tests/agents/capture.sh into
//! tests/fixtures/agents/, each file naming its agent, version and date) through every translation
//! the gateway gives them: to the hub, and from the hub to each vendor's upstream request. Nothing
//! an agent sends may be refused (SPEC 4.8); what a target cannot honour is dropped and noted.

use std::path::PathBuf;

use apiproxy::protocol::anthropic::{self, chat_request_from_messages};
use apiproxy::protocol::responses::{chat_request_from_responses, response_from_chat};
use apiproxy::protocol::{Dropped, gemini};
use serde_json::{Value, json};

/// A captured request: its body, after checking the fixture says where it came from.
fn captured(name: &str) -> Value {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/fixtures/agents", name]
        .iter()
        .collect();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let fixture: Value = serde_json::from_str(&text).expect("fixture is JSON");
    let source = fixture["source"].as_str().unwrap_or_default();
    assert!(
        source.contains("captured") && source.contains("capture.sh"),
        "{name} must say where it came from: {source:?}"
    );
    fixture["body"].clone()
}

fn roles(chat: &Value) -> Vec<&str> {
    chat["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["role"].as_str().unwrap_or("?"))
        .collect()
}

fn function_names(chat: &Value) -> Vec<&str> {
    chat["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .map(|t| t["function"]["name"].as_str().unwrap_or("?"))
                .collect()
        })
        .unwrap_or_default()
}

/// The hub request goes on to an Anthropic and a Gemini upstream without error.
fn every_vendor_takes(chat: &Value, what: &str) {
    let anthropic = anthropic::request_from_chat(chat, "claude-x", true)
        .unwrap_or_else(|e| panic!("{what} -> anthropic: {e:?}"));
    assert!(
        anthropic["messages"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    );
    let gemini = gemini::request_from_chat(chat, "gemini-x", true)
        .unwrap_or_else(|e| panic!("{what} -> gemini: {e:?}"));
    assert!(gemini["contents"].as_array().is_some_and(|c| !c.is_empty()));
    assert!(gemini["systemInstruction"]["parts"].is_array(), "{what}");
}

#[test]
fn claude_code_requests_translate_for_every_vendor() {
    for (name, expected_roles) in [
        (
            "claude_code_messages_first.json",
            vec!["system", "user", "system"],
        ),
        (
            "claude_code_messages_followup.json",
            vec!["system", "user", "system", "assistant", "tool"],
        ),
        (
            "claude_code_known_model_messages_first.json",
            vec!["system", "user"],
        ),
        (
            "claude_code_known_model_messages_followup.json",
            vec!["system", "user", "assistant", "tool"],
        ),
    ] {
        let body = captured(name);
        let mut dropped = Dropped::new();
        let chat = chat_request_from_messages(&body, &mut dropped)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(roles(&chat), expected_roles, "{name}");
        // Every tool Claude Code offers reaches the chat model, under its own name.
        let offered: Vec<&str> = body["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(function_names(&chat), offered, "{name}");
        assert!(offered.contains(&"Write") && offered.contains(&"Bash"));
        let labels = dropped.labels();
        for label in ["thinking", "context_management", "cache_control"] {
            assert!(
                labels.contains(&label),
                "{name}: {label} not noted in {labels:?}"
            );
        }
        assert!(chat.get("reasoning_effort").is_none(), "{name}");
        every_vendor_takes(&chat, name);
    }
}

#[test]
fn the_claude_code_tool_round_trip_keeps_its_ids() {
    let body = captured("claude_code_messages_followup.json");
    let chat = chat_request_from_messages(&body, &mut Dropped::new()).unwrap();
    let messages = chat["messages"].as_array().unwrap();
    let call = &messages[3]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "Write");
    assert_eq!(messages[4]["tool_call_id"], call["id"]);
    let input: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(input["file_path"].as_str().unwrap().ends_with("hello.txt"));
}

#[test]
fn codex_requests_translate_for_every_vendor() {
    for name in [
        "codex_responses_first.json",
        "codex_responses_followup.json",
    ] {
        let body = captured(name);
        let mut dropped = Dropped::new();
        let chat = chat_request_from_responses(&body, &mut dropped)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        // Developer messages are system messages; nothing of the conversation is lost.
        assert_eq!(
            &roles(&chat)[..4],
            ["system", "system", "user", "user"],
            "{name}"
        );
        let names = function_names(&chat);
        for expected in ["exec_command", "view_image", "multi_agent_v1__spawn_agent"] {
            assert!(
                names.contains(&expected),
                "{name}: {expected} not in {names:?}"
            );
        }
        assert!(!names.iter().any(|n| n.contains("web_search")));
        let labels = dropped.labels();
        for label in [
            "web_search",
            "store",
            "include",
            "prompt_cache_key",
            "client_metadata",
            "reasoning.summary",
        ] {
            assert!(
                labels.contains(&label),
                "{name}: {label} not noted in {labels:?}"
            );
        }
        every_vendor_takes(&chat, name);
    }
    let followup = chat_request_from_responses(
        &captured("codex_responses_followup.json"),
        &mut Dropped::new(),
    )
    .unwrap();
    let messages = followup["messages"].as_array().unwrap();
    let call = &messages[4]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "exec_command");
    assert_eq!(messages[5]["role"], "tool");
    assert_eq!(messages[5]["tool_call_id"], call["id"]);
}

/// A chat model calling a tool of Codex's `multi_agent_v1` namespace gets back to Codex as a call
/// in that namespace, under the name Codex declared.
#[test]
fn a_call_into_a_codex_namespace_comes_back_in_it() {
    let request = captured("codex_responses_first.json");
    let answer = json!({"model": "m", "choices": [{"finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
        "function": {"name": "multi_agent_v1__spawn_agent", "arguments": "{}"}}]}}]});
    let response = response_from_chat(&answer, &request);
    let item = &response["output"][0];
    assert_eq!(item["type"], "function_call");
    assert_eq!(item["name"], "spawn_agent");
    assert_eq!(item["namespace"], "multi_agent_v1");
    assert_eq!(item["call_id"], "call_1");
}

/// Gemini CLI 0.61.0's requests (15 function declarations, thinking config, a function call that
/// carries a thought signature, its response) reach the hub whole and go on to Anthropic; the
/// signature, which only Gemini can read, is left behind (SPEC 4.7).
#[test]
fn gemini_cli_requests_translate_for_every_vendor() {
    for (name, expected_roles) in [
        ("gemini_cli_generate_first.json", vec!["system", "user"]),
        (
            "gemini_cli_generate_followup.json",
            vec!["system", "user", "assistant", "tool"],
        ),
    ] {
        let body = captured(name);
        let chat = gemini::chat_request_from_gemini(&body, "agent-x", &mut Dropped::new())
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(roles(&chat), expected_roles, "{name}");
        let names = function_names(&chat);
        assert_eq!(names.len(), 15, "{name}: {names:?}");
        assert!(names.contains(&"write_file") && names.contains(&"run_shell_command"));
        assert!(!chat.to_string().contains("thoughtSignature"), "{name}");
        let anthropic = anthropic::request_from_chat(&chat, "claude-x", true)
            .unwrap_or_else(|e| panic!("{name} -> anthropic: {e:?}"));
        assert!(anthropic.get("top_p").is_none(), "temperature wins: {name}");
    }
    let followup = gemini::chat_request_from_gemini(
        &captured("gemini_cli_generate_followup.json"),
        "agent-x",
        &mut Dropped::new(),
    )
    .unwrap();
    let messages = followup["messages"].as_array().unwrap();
    let call = &messages[2]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "write_file");
    assert_eq!(messages[3]["tool_call_id"], call["id"]);
}
