//! The `.env` file reader (SPEC 2): the syntax python-dotenv accepts, which the original used and
//! which Docker env files are a subset of, so a file that worked there works here.
//!
//! Accepted, line by line: blank lines and `#` comments; an optional `export ` prefix; a key
//! (anything but `=`, `#` and whitespace, or `'quoted'`); `=`; then a value that is
//! - unquoted: the rest of the line, trimmed, up to an inline comment (`#` after whitespace), so
//!   `NAME=From dotenv` is `From dotenv`;
//! - single-quoted: literal, with `\\` and `\'` unescaped;
//! - double-quoted: with `\\ \" \' \n \r \t \a \b \f \v` unescaped, and may span lines;
//!   a quoted value may be followed by whitespace and a comment only.
//!
//! `${NAME}` and `${NAME:-default}` in unquoted and double-quoted values expand from the process
//! environment first, then from the lines above (python-dotenv's order when it does not override).
//! A key without `=` is ignored, as python-dotenv leaves it unset. Anything else is an error that
//! names its line number; the gateway stops rather than guess.

use std::fmt;

/// A line the reader cannot make sense of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFileError {
    /// 1-based line where the statement starts.
    pub line: usize,
    pub problem: String,
}

impl fmt::Display for EnvFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

impl std::error::Error for EnvFileError {}

/// The assignments of `text`, in file order (a later one for the same key wins when collected).
/// `environment` looks a variable up in the process environment, for `${NAME}` expansion.
pub fn parse(
    text: &str,
    environment: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, EnvFileError> {
    let mut reader = Reader {
        chars: text.chars().collect(),
        at: 0,
        line: 1,
    };
    let mut assignments: Vec<(String, String)> = Vec::new();
    while let Some(statement) = reader.statement()? {
        let (key, value) = statement;
        let value = match value {
            Value::Literal(v) => v,
            Value::Expand(v) => expand(&v, |name| {
                environment(name).or_else(|| {
                    assignments
                        .iter()
                        .rev()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                })
            }),
        };
        assignments.push((key, value));
    }
    Ok(assignments)
}

enum Value {
    /// Single-quoted: taken as written.
    Literal(String),
    /// Unquoted or double-quoted: `${...}` expands.
    Expand(String),
}

struct Reader {
    chars: Vec<char>,
    at: usize,
    line: usize,
}

impl Reader {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn error(&self, line: usize, problem: impl Into<String>) -> EnvFileError {
        EnvFileError {
            line,
            problem: problem.into(),
        }
    }

    /// Skips spaces and tabs (not newlines).
    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r' | '\u{feff}')) {
            self.bump();
        }
    }

    fn rest_of_line(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            out.push(c);
            self.bump();
        }
        out
    }

    fn end_line(&mut self) {
        if self.peek() == Some('\n') {
            self.bump();
        }
    }

    /// The next assignment, skipping blank, comment and value-less lines; `None` at the end.
    fn statement(&mut self) -> Result<Option<(String, Value)>, EnvFileError> {
        loop {
            self.skip_blanks();
            let start = self.line;
            match self.peek() {
                None => return Ok(None),
                Some('\n') => {
                    self.bump();
                    continue;
                }
                Some('#') => {
                    self.rest_of_line();
                    self.end_line();
                    continue;
                }
                Some(_) => {}
            }
            if self.chars[self.at..].starts_with(&['e', 'x', 'p', 'o', 'r', 't'])
                && matches!(self.chars.get(self.at + 6), Some(' ' | '\t'))
            {
                self.at += 6;
                self.skip_blanks();
            }
            let key = self.key(start)?;
            self.skip_blanks();
            match self.peek() {
                None | Some('\n') => {
                    // `KEY` alone: python-dotenv leaves it unset.
                    self.end_line();
                    continue;
                }
                Some('#') => {
                    self.rest_of_line();
                    self.end_line();
                    continue;
                }
                Some('=') => {
                    self.bump();
                }
                Some(other) => {
                    return Err(self.error(
                        start,
                        format!("expected '=' after the name '{key}', found '{other}'"),
                    ));
                }
            }
            self.skip_blanks();
            let value = self.value(start)?;
            self.end_line();
            return Ok(Some((key, value)));
        }
    }

    fn key(&mut self, start: usize) -> Result<String, EnvFileError> {
        if self.peek() == Some('\'') {
            self.bump();
            let mut key = String::new();
            loop {
                match self.bump() {
                    Some('\'') => break,
                    Some('\n') | None => {
                        return Err(self.error(start, "a quoted name is not closed"));
                    }
                    Some(c) => key.push(c),
                }
            }
            if key.is_empty() {
                return Err(self.error(start, "the name is empty"));
            }
            return Ok(key);
        }
        let mut key = String::new();
        while let Some(c) = self.peek() {
            if c == '=' || c == '#' || c.is_whitespace() {
                break;
            }
            key.push(c);
            self.bump();
        }
        if key.is_empty() {
            return Err(self.error(start, "a line must start with a NAME (NAME=value)"));
        }
        Ok(key)
    }

    fn value(&mut self, start: usize) -> Result<Value, EnvFileError> {
        let value = match self.peek() {
            Some('\'') => {
                self.bump();
                Value::Literal(self.quoted('\'', start)?)
            }
            Some('"') => {
                self.bump();
                Value::Expand(self.quoted('"', start)?)
            }
            _ => {
                let raw = self.rest_of_line();
                return Ok(Value::Expand(strip_inline_comment(&raw).to_string()));
            }
        };
        // After a quoted value: only blanks and a comment.
        self.skip_blanks();
        match self.peek() {
            None | Some('\n') => {}
            Some('#') => {
                self.rest_of_line();
            }
            Some(other) => {
                return Err(self.error(
                    start,
                    format!(
                        "unexpected '{other}' after the closing quote (quote the whole value, or start a comment with ' #')"
                    ),
                ));
            }
        }
        Ok(value)
    }

    /// A quoted value after its opening quote, unescaped; double quotes may span lines.
    fn quoted(&mut self, quote: char, start: usize) -> Result<String, EnvFileError> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(self.error(start, format!("the value's {quote} is not closed")));
                }
                Some('\n') if quote == '\'' => {
                    return Err(self.error(start, "the value's ' is not closed on its line"));
                }
                Some(c) if c == quote => return Ok(out),
                Some('\\') => match (quote, self.peek()) {
                    (_, Some('\\')) => {
                        self.bump();
                        out.push('\\');
                    }
                    (_, Some('\'')) => {
                        self.bump();
                        out.push('\'');
                    }
                    ('"', Some(c)) => {
                        let unescaped = match c {
                            '"' => Some('"'),
                            'n' => Some('\n'),
                            'r' => Some('\r'),
                            't' => Some('\t'),
                            'a' => Some('\u{7}'),
                            'b' => Some('\u{8}'),
                            'f' => Some('\u{c}'),
                            'v' => Some('\u{b}'),
                            _ => None,
                        };
                        match unescaped {
                            Some(u) => {
                                self.bump();
                                out.push(u);
                            }
                            // An unknown escape stays as written, as in python-dotenv.
                            None => out.push('\\'),
                        }
                    }
                    _ => out.push('\\'),
                },
                Some(c) => out.push(c),
            }
        }
    }
}

/// An unquoted value up to ` #` (a `#` right after a character is part of the value), trimmed.
fn strip_inline_comment(raw: &str) -> &str {
    let mut cut = raw.len();
    let mut previous_blank = true;
    for (i, c) in raw.char_indices() {
        if c == '#' && previous_blank {
            cut = i;
            break;
        }
        previous_blank = c == ' ' || c == '\t';
    }
    raw[..cut].trim()
}

/// `${NAME}` and `${NAME:-default}` replaced by `lookup`'s answer (empty when unset).
fn expand(value: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(open) = rest.find("${") {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push_str(&rest[..open]);
        let inner = &rest[open + 2..open + close];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, default),
            None => (inner, ""),
        };
        match lookup(name).filter(|v| !v.is_empty()) {
            Some(v) => out.push_str(&v),
            None => out.push_str(default),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<(String, String)> {
        parse(text, |_| None).unwrap()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unquoted_values_keep_inner_spaces_and_drop_inline_comments() {
        assert_eq!(
            read("LLM_PROVIDER_a_NAME=From dotenv\nB = spaced out  # a comment\nC=a#b\n"),
            pairs(&[
                ("LLM_PROVIDER_a_NAME", "From dotenv"),
                ("B", "spaced out"),
                ("C", "a#b"),
            ])
        );
    }

    #[test]
    fn export_prefixes_comments_blank_lines_and_crlf_are_accepted() {
        assert_eq!(
            read("# header\r\n\r\nexport A=1\r\n  export\tB='two'  # c\r\nexporter=3\n"),
            pairs(&[("A", "1"), ("B", "two"), ("exporter", "3")])
        );
    }

    #[test]
    fn quotes_unescape_the_way_python_dotenv_does() {
        assert_eq!(
            read(
                "S='it\\'s \\\\ $x \\n'\nD=\"a\\tb\\n\\\"q\\\" \\\\ \\z\"\nM=\"line1\nline2\"\nE=''\n"
            ),
            pairs(&[
                ("S", "it's \\ $x \\n"),
                ("D", "a\tb\n\"q\" \\ \\z"),
                ("M", "line1\nline2"),
                ("E", ""),
            ])
        );
    }

    #[test]
    fn braces_expand_from_the_environment_then_from_lines_above() {
        let got = parse(
            "BASE=http://h\nURL=${BASE}/v1\nHOME_DIR=${HOME}\nX=${MISSING:-fallback}\nL='${BASE}'\n",
            |name| (name == "HOME").then(|| "/root".to_string()),
        )
        .unwrap();
        assert_eq!(
            got,
            pairs(&[
                ("BASE", "http://h"),
                ("URL", "http://h/v1"),
                ("HOME_DIR", "/root"),
                ("X", "fallback"),
                ("L", "${BASE}"),
            ])
        );
    }

    #[test]
    fn a_name_without_a_value_is_left_unset() {
        assert_eq!(read("ALONE\nA=1\n"), pairs(&[("A", "1")]));
    }

    #[test]
    fn invalid_lines_name_their_line_number() {
        for (text, line, words) in [
            ("A=1\n=2\n", 2, "NAME"),
            ("A=1\n\nB=\"open\n", 3, "not closed"),
            ("A='x' y\n", 1, "after the closing quote"),
            ("MY KEY=1\n", 1, "expected '='"),
            ("A='x\ny'\n", 1, "not closed on its line"),
        ] {
            let error = parse(text, |_| None).unwrap_err();
            assert_eq!(error.line, line, "{text:?}: {error}");
            assert!(error.to_string().contains(words), "{text:?}: {error}");
            assert!(error.to_string().starts_with(&format!("line {line}: ")));
        }
    }

    #[test]
    fn nothing_panics_on_arbitrary_bytes() {
        for text in [
            "\"",
            "'",
            "${",
            "${}",
            "export",
            "export ",
            "=",
            "\\",
            "A=\"\\",
            "\u{feff}A=1",
        ] {
            let _ = parse(text, |_| None);
        }
        assert_eq!(read("\u{feff}A=1"), pairs(&[("A", "1")]));
    }
}
