//! The message inside an upstream's error body, whatever its vendor's shape.

/// The message inside an upstream error body: OpenAI's, Anthropic's and Gemini's
/// `error.message`, a top-level `message`, or the text itself, cut to a readable length.
pub fn error_message(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let from_json = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("message"))
            .or_else(|| v.get("error").filter(|e| e.is_string()))
            .and_then(|m| m.as_str())
            .map(str::to_string)
    });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    truncate_chars(&text, 500)
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_messages_are_extracted_and_cut() {
        assert_eq!(
            error_message(br#"{"error":{"message":"bad key"}}"#),
            "bad key"
        );
        assert_eq!(error_message(b"plain text "), "plain text");
        assert!(error_message("x".repeat(2000).as_bytes()).chars().count() <= 501);
    }
}
