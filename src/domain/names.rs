//! Bounds on the names clients send (SPEC 4.1): model names, which reach routing, headers and
//! upstream URLs, and ids, which become store keys. One validator for every place a name enters.

use std::fmt;

/// The longest model name or id accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// A name a client sent that the gateway refuses: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    pub field: String,
    pub problem: String,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

fn refuse(field: &str, problem: impl Into<String>) -> NameError {
    NameError {
        field: field.to_string(),
        problem: problem.into(),
    }
}

/// An id that becomes part of a store key (session, conversation, logical model, key id):
/// 1 to 256 bytes of `[A-Za-z0-9._:@/+=-]`. Every store key the gateway names itself contains a
/// character outside this set or a fixed prefix no id can reach, so an id never names one of them.
pub fn check_id(field: &str, id: &str) -> Result<(), NameError> {
    if id.is_empty() || id.len() > MAX_NAME_BYTES {
        return Err(refuse(
            field,
            format!("must be 1 to {MAX_NAME_BYTES} bytes long"),
        ));
    }
    if let Some(bad) = id.chars().find(|c| !is_id_char(*c)) {
        return Err(refuse(
            field,
            format!(
                "contains {}; allowed are letters, digits and . _ : @ / + = -",
                describe(bad)
            ),
        ));
    }
    Ok(())
}

/// A logical model's id: an id (above) without `/`, which would read as `provider/model`.
pub fn check_logical_id(field: &str, id: &str) -> Result<(), NameError> {
    check_id(field, id)?;
    if id.contains('/') {
        return Err(refuse(
            field,
            "must not contain '/' (it would read as provider/model)",
        ));
    }
    Ok(())
}

/// A requested model name (logical, physical or `provider/model`): at most 256 bytes, nothing
/// that could step out of the one URL path segment it becomes upstream (`.` and `..` segments,
/// `?`, `#`, `\`, `%`) and no control characters (it is echoed in a response header).
pub fn check_model_name(field: &str, name: &str) -> Result<(), NameError> {
    if name.trim().is_empty() {
        return Err(refuse(field, "must not be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(refuse(
            field,
            format!(
                "is {} bytes long; at most {MAX_NAME_BYTES} are accepted",
                name.len()
            ),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| c.is_control() || matches!(c, '?' | '#' | '\\' | '%'))
    {
        return Err(refuse(field, format!("contains {}", describe(bad))));
    }
    if name
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(refuse(field, "contains a '.' or '..' path segment"));
    }
    Ok(())
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '/' | '+' | '=' | '-')
}

fn describe(c: char) -> String {
    if c.is_control() || c.is_whitespace() {
        format!("the character U+{:04X}", u32::from(c))
    } else {
        format!("'{c}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_take_the_documented_characters_only() {
        for good in [
            "conv-42",
            "a",
            "user@example.com",
            "a/b:c+d=e_f.g",
            &"x".repeat(256),
        ] {
            assert_eq!(check_id("id", good), Ok(()), "{good}");
        }
        for bad in [
            "",
            " ",
            "a b",
            "a\r\nb",
            "a{b}",
            "a*",
            "ü",
            &"x".repeat(257),
        ] {
            let error = check_id("conversation_id", bad).unwrap_err();
            assert_eq!(error.field, "conversation_id", "{bad}");
        }
    }

    #[test]
    fn logical_ids_have_no_slash() {
        assert!(check_logical_id("id", "gpt-4o").is_ok());
        assert!(check_logical_id("id", "openai/gpt-4o").is_err());
    }

    #[test]
    fn model_names_cannot_leave_their_path_segment() {
        for good in [
            "gpt-4o",
            "openai/gpt-4o",
            "accounts/fireworks/models/llama-v3",
            "models/gemini-2.0-flash",
            "claude 3 opus",
            "a..b",
            "v1.5",
        ] {
            assert_eq!(check_model_name("model", good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "  ",
            "gem/../../../admin/secret?q=",
            "../x",
            "a/./b",
            "a?b",
            "a#b",
            "a\\b",
            "a%2e%2e",
            "a\nb",
            "a\u{7f}",
            &"m".repeat(257),
        ] {
            assert!(check_model_name("model", bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn an_accepted_id_is_short_and_made_of_key_safe_characters(id in "\\PC{0,300}") {
            if check_id("id", &id).is_ok() {
                prop_assert!(!id.is_empty() && id.len() <= MAX_NAME_BYTES);
                prop_assert!(id.chars().all(is_id_char));
            }
        }

        #[test]
        fn an_accepted_model_name_has_no_traversal_query_or_control(name in "[a-z./?#%\\\\\\n -]{0,40}") {
            if check_model_name("model", &name).is_ok() {
                prop_assert!(!name.split('/').any(|s| s == "." || s == ".."));
                prop_assert!(!name.contains(['?', '#', '\\', '%', '\n']));
            }
        }
    }
}
