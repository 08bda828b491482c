//! Hostile input (SPEC 3, 4, 4.6): a corpus of malformed, oversized and type-confused requests
//! against every endpoint of one gateway. Each gets a 4xx with a JSON error body (OpenAI's shape, or
//! Anthropic's on `/v1/messages`); none gets a 5xx or a dropped connection; the gateway stays
//! healthy and keeps serving afterwards.
//!
//! reqwest sends what it can express; raw TCP sends the rest (invalid UTF-8 in heads, broken request
//! lines, lying framing). Requests that hyper refuses before the gateway sees them (a head it cannot
//! parse or that is too large) are judged by status alone: hyper answers them itself, without a body.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

const CHAT: &str = "/v1/chat/completions";
const MIB: usize = 1024 * 1024;

/// What the body of an error answer must look like.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Shape {
    /// `{"error":{"message","type","param","code"}}` (SPEC 4.6).
    OpenAi,
    /// `{"type":"error","error":{"type","message"}}` (`/v1/messages`).
    Anthropic,
    /// Either of the two (a Claude-style body on the chat endpoint, errors raised before routing).
    Either,
    /// A HEAD answer: no body at all.
    NoBody,
    /// Refused by the HTTP layer before any route: a 4xx, with an empty or a JSON body.
    Protocol,
}

/// One answer: the status and the raw body.
struct Answer {
    status: u16,
    body: Vec<u8>,
    /// Whether the answer has a `WWW-Authenticate` header (SPEC 3: every 401 has one).
    challenges: bool,
}

/// Sends the corpus, one request at a time, and collects every broken expectation.
struct Corpus<'a> {
    gateway: &'a Gateway,
    addr: String,
    sent: usize,
    failures: Vec<String>,
}

fn preview(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
    if bytes.len() > 300 {
        format!("{text}... ({} bytes)", bytes.len())
    } else {
        text
    }
}

fn shape_problem(shape: Shape, body: &[u8]) -> Option<String> {
    let parsed = || serde_json::from_slice::<Value>(body).ok();
    let openai = |v: &Value| {
        let e = v.get("error")?;
        (e["message"].is_string()
            && e["type"].is_string()
            && e.get("param").is_some()
            && e.get("code").is_some())
        .then_some(())
    };
    let anthropic = |v: &Value| {
        (v["type"] == "error"
            && v["error"]["type"].is_string()
            && v["error"]["message"].is_string())
        .then_some(())
    };
    let ok = match shape {
        Shape::NoBody => body.is_empty(),
        Shape::Protocol => body.is_empty() || parsed().is_some_and(|v| openai(&v).is_some()),
        Shape::OpenAi => parsed().is_some_and(|v| openai(&v).is_some()),
        Shape::Anthropic => parsed().is_some_and(|v| anthropic(&v).is_some()),
        Shape::Either => parsed().is_some_and(|v| openai(&v).is_some() || anthropic(&v).is_some()),
    };
    (!ok).then(|| format!("body is not the {shape:?} error shape"))
}

impl<'a> Corpus<'a> {
    fn new(gateway: &'a Gateway) -> Self {
        Corpus {
            gateway,
            addr: gateway.url.trim_start_matches("http://").to_string(),
            sent: 0,
            failures: Vec::new(),
        }
    }

    fn judge(&mut self, what: &str, answer: Result<Answer, String>, allowed: &[u16], shape: Shape) {
        self.sent += 1;
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => return self.failures.push(format!("{what}: no answer: {e}")),
        };
        let status = answer.status;
        let mut problems = Vec::new();
        if status >= 500 {
            problems.push(format!("server error {status}"));
        } else if !(400..500).contains(&status) {
            problems.push(format!("status {status}, not a 4xx"));
        } else if !allowed.is_empty() && !allowed.contains(&status) {
            problems.push(format!("status {status}, expected one of {allowed:?}"));
        }
        if status == 401 && !answer.challenges {
            problems.push("a 401 without WWW-Authenticate".into());
        }
        problems.extend(shape_problem(shape, &answer.body));
        if !problems.is_empty() {
            self.failures.push(format!(
                "{what}: {} (body: {})",
                problems.join("; "),
                preview(&answer.body)
            ));
        }
    }

    /// Sends a reqwest request.
    async fn send(
        &mut self,
        what: &str,
        request: reqwest::RequestBuilder,
        allowed: &[u16],
        shape: Shape,
    ) {
        let answer = async {
            let response = request.send().await.map_err(|e| format!("{e:?}"))?;
            let status = response.status().as_u16();
            let challenges = response.headers().contains_key("www-authenticate");
            let body = response.bytes().await.map_err(|e| format!("body: {e:?}"))?;
            Ok(Answer {
                status,
                body: body.to_vec(),
                challenges,
            })
        }
        .await;
        self.judge(what, answer, allowed, shape);
    }

    /// POST `path` with the token, a JSON content type and `body` as it is.
    async fn post(&mut self, path: &str, body: impl Into<Vec<u8>>, allowed: &[u16], shape: Shape) {
        let body: Vec<u8> = body.into();
        let what = format!("POST {path} {}", preview(&body));
        let request = self
            .gateway
            .post(path)
            .header("content-type", "application/json")
            .body(body);
        self.send(&what, request, allowed, shape).await;
    }

    async fn put(&mut self, path: &str, body: impl Into<Vec<u8>>, allowed: &[u16]) {
        let body: Vec<u8> = body.into();
        let what = format!("PUT {} {}", preview(path.as_bytes()), preview(&body));
        let request = self
            .gateway
            .put(path)
            .header("content-type", "application/json")
            .body(body);
        self.send(&what, request, allowed, Shape::OpenAi).await;
    }

    async fn chat(&mut self, body: impl Into<Vec<u8>>, allowed: &[u16]) {
        self.post(CHAT, body, allowed, Shape::OpenAi).await;
    }

    async fn chat_json(&mut self, body: Value, allowed: &[u16]) {
        self.chat(body.to_string(), allowed).await;
    }

    async fn messages(&mut self, body: impl Into<Vec<u8>>, allowed: &[u16]) {
        self.post("/v1/messages", body, allowed, Shape::Anthropic)
            .await;
    }

    /// An authenticated request with any method and no body.
    async fn method(&mut self, method: &str, path: &str, allowed: &[u16], shape: Shape) {
        let what = format!("{method} {path}");
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let request = self
            .gateway
            .client
            .request(method, format!("{}{path}", self.gateway.url))
            .header("authorization", AUTH);
        self.send(&what, request, allowed, shape).await;
    }

    async fn get(&mut self, path: &str, allowed: &[u16]) {
        self.method("GET", path, allowed, Shape::OpenAi).await;
    }

    /// Writes `request` to a fresh connection (concurrently with reading, so an early answer to a
    /// huge upload is still read) and reads one HTTP/1.1 answer.
    async fn raw(&mut self, what: &str, request: Vec<u8>, allowed: &[u16], shape: Shape) {
        let answer = raw_exchange(&self.addr, request, false).await;
        self.judge(&format!("raw {what}"), answer, allowed, shape);
    }

    /// Like [`Corpus::raw`], then shuts the write side: the request ends where its bytes end.
    async fn raw_half_closed(
        &mut self,
        what: &str,
        request: Vec<u8>,
        allowed: &[u16],
        shape: Shape,
    ) {
        let answer = raw_exchange(&self.addr, request, true).await;
        self.judge(&format!("raw {what}"), answer, allowed, shape);
    }

    /// A raw request with the token, `Connection: close`, the extra header lines (without CRLF) and
    /// a body with its `Content-Length`.
    async fn raw_with(
        &mut self,
        what: &str,
        request_line: &[u8],
        headers: &[&[u8]],
        body: &[u8],
        allowed: &[u16],
        shape: Shape,
    ) {
        let request = raw_request(request_line, true, headers, body);
        self.raw(what, request, allowed, shape).await;
    }
}

/// `request_line` CRLF, Host, the token (when `auth`), `headers`, Content-Length, Connection: close,
/// CRLF, `body`.
fn raw_request(request_line: &[u8], auth: bool, headers: &[&[u8]], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 512);
    out.extend_from_slice(request_line);
    out.extend_from_slice(b"\r\nHost: 127.0.0.1\r\n");
    if auth {
        out.extend_from_slice(format!("Authorization: {AUTH}\r\n").as_bytes());
    }
    for header in headers {
        out.extend_from_slice(header);
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(body);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A complete answer in `buf`, if there is one: `Ok(Some)` when complete, `Ok(None)` when more is
/// needed, `Err` when the head cannot be read.
fn parse_answer(buf: &[u8], at_eof: bool) -> Result<Option<Answer>, String> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head
        .strip_prefix("http/1.1 ")
        .or_else(|| head.strip_prefix("http/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {}", preview(&buf[..head_end])))?;
    let body = &buf[head_end + 4..];
    let header = |name: &str| {
        head.lines()
            .find_map(|line| line.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    let challenges = header("www-authenticate:").is_some();
    if let Some(length) = header("content-length:") {
        let length: usize = length.parse().map_err(|_| format!("bad length {length}"))?;
        return Ok((body.len() >= length).then(|| Answer {
            status,
            body: body[..length].to_vec(),
            challenges,
        }));
    }
    if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        let mut out = Vec::new();
        let mut rest = body;
        loop {
            let Some(line_end) = find(rest, b"\r\n") else {
                return Ok(None);
            };
            let size = std::str::from_utf8(&rest[..line_end])
                .ok()
                .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
                .ok_or_else(|| format!("bad chunk size in {}", preview(rest)))?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                return Ok(Some(Answer {
                    status,
                    body: out,
                    challenges,
                }));
            }
            if rest.len() < size + 2 {
                return Ok(None);
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
    }
    // No framing: the body ends with the connection (or there is none, as for 1xx/204/304).
    if at_eof || matches!(status, 204 | 304) {
        return Ok(Some(Answer {
            status,
            body: body.to_vec(),
            challenges,
        }));
    }
    Ok(None)
}

async fn raw_exchange(addr: &str, request: Vec<u8>, half_close: bool) -> Result<Answer, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut reader, mut writer) = stream.into_split();
    // The gateway may answer (and close) before it has read everything: write errors are expected
    // then, and only the answer counts.
    let write = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        let _ = writer.flush().await;
        if half_close {
            let _ = writer.shutdown().await;
        }
        writer
    });
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let read = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) => {
                    return match parse_answer(&buf, true)? {
                        Some(answer) => Ok(answer),
                        None => Err(format!(
                            "connection closed without a complete answer after {} bytes: {}",
                            buf.len(),
                            preview(&buf)
                        )),
                    };
                }
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(answer) = parse_answer(&buf, false)? {
                        return Ok(answer);
                    }
                }
                Err(e) => {
                    // A reset right after a complete answer still counts as that answer.
                    return match parse_answer(&buf, true)? {
                        Some(answer) => Ok(answer),
                        None => Err(format!("read failed after {} bytes: {e}", buf.len())),
                    };
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer within 15 s ({} bytes read)", buf.len())));
    write.abort();
    read
}

/// `depth` nested arrays around `inner`.
fn nested(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
}

/// `depth` nested objects `{"a":...}` around `inner`.
fn nested_objects(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", r#"{"a":"#.repeat(depth), "}".repeat(depth))
}

fn user_messages() -> Value {
    json!([{"role": "user", "content": "Hi"}])
}

/// A valid chat body with `field` set to the raw JSON text `value`.
fn chat_with(field: &str, value: &str) -> String {
    let mut body = chat_body(LOGICAL, "Hi");
    body.as_object_mut().expect("object").remove(field);
    let text = body.to_string();
    format!("{},\"{field}\":{value}}}", &text[..text.len() - 1])
}

/// A valid Messages body with `field` set to the raw JSON text `value` (or removed when `None`).
fn messages_with(field: &str, value: Option<&str>) -> String {
    let mut body = json!({"model": LOGICAL, "max_tokens": 16, "messages": user_messages()});
    body.as_object_mut().expect("object").remove(field);
    let text = body.to_string();
    match value {
        Some(value) => format!("{},\"{field}\":{value}}}", &text[..text.len() - 1]),
        None => text,
    }
}

/// A valid Responses body with `field` set to the raw JSON text `value`.
fn responses_with(field: &str, value: &str) -> String {
    let mut body = json!({"model": LOGICAL, "input": "Hi"});
    body.as_object_mut().expect("object").remove(field);
    let text = body.to_string();
    format!("{},\"{field}\":{value}}}", &text[..text.len() - 1])
}

async fn one_gateway() -> (Mock, Gateway) {
    let mock = Mock::start("a", &["up-a"]);
    let gateway = Gateway::builder()
        .provider("a", &mock.url)
        .logical(&[("a", "up-a", 1.0)])
        .start()
        .await;
    (mock, gateway)
}

/// The gateway still answers `/health` and a normal chat, its process is alive, and its log shows
/// no panic.
async fn assert_still_healthy(gateway: &mut Gateway) {
    let (status, health) = gateway.get_json("/health").await;
    assert_eq!(status, 200, "/health after the corpus: {health}");
    assert_eq!(health["status"], "ok", "{health}");
    let response = gateway.chat(chat_body(LOGICAL, "still there?")).await;
    assert_eq!(response.status(), 200, "a normal chat after the corpus");
    let answer = json_of(response).await;
    assert!(
        answer["choices"][0]["message"]["content"].is_string(),
        "{answer}"
    );
    assert!(
        gateway.child().try_wait().expect("try_wait").is_none(),
        "the gateway process exited"
    );
    let log = gateway.log();
    assert!(
        !log.to_ascii_lowercase().contains("panicked"),
        "the gateway log shows a panic:\n{log}"
    );
}

#[tokio::test]
async fn a_corpus_of_hostile_requests_gets_4xx_error_bodies_and_the_gateway_stays_healthy() {
    let started = Instant::now();
    let (mock, mut gateway) = one_gateway().await;
    let mut c = Corpus::new(&gateway);
    let deep_array = nested(10_000, "1");
    let deep_object = nested_objects(10_000, "1");
    let user = user_messages();

    // ---- /v1/chat/completions: wrong JSON types for every known field ----
    for model in ["42", "[]", "{}", "null", "true", "\"\"", "\"   \"", "1e400"] {
        c.chat(chat_with("model", model), &[400]).await;
    }
    c.chat(chat_with("model", "99999999999999999999999999"), &[400])
        .await;
    for messages in ["\"hi\"", "42", "null", "{}", "true"] {
        c.chat(chat_with("messages", messages), &[400]).await;
    }
    for stream in ["\"yes\"", "1", "{}", "[]"] {
        c.chat(chat_with("stream", stream), &[400]).await;
    }
    // Wrong types of the optional fields are in
    // `wrong_types_in_known_chat_fields_are_400_and_never_reach_the_upstream`.

    // ---- missing and null fields ----
    c.chat_json(json!({"messages": user}), &[400]).await;
    c.chat_json(json!({"model": LOGICAL}), &[400]).await;
    c.chat_json(json!({"model": null, "messages": null}), &[400])
        .await;
    c.chat_json(json!({}), &[400]).await;
    // Model names and ids beyond SPEC 4.1's bounds are 400 naming the field.
    c.chat_json(json!({"model": "\u{0}", "messages": user}), &[400])
        .await;
    c.chat(r#"{"model":"\ud800","messages":[]}"#, &[400]).await;

    // ---- nesting, invalid UTF-8, empty and non-object bodies, broken JSON ----
    c.chat(chat_with("messages", &deep_array), &[400]).await;
    c.chat(chat_with("unknown_field", &deep_array), &[400])
        .await;
    c.chat(chat_with("unknown_field", &deep_object), &[400])
        .await;
    c.chat(deep_array.clone(), &[400]).await;
    c.chat(
        b"{\"model\":\"chat-\xff\xfe\",\"messages\":[]}".to_vec(),
        &[400],
    )
    .await;
    c.chat(b"\xff\xfe\xfd".to_vec(), &[400]).await;
    c.chat("", &[400]).await;
    c.chat(" \r\n\t ", &[400]).await;
    for body in [
        "[]",
        "\"x\"",
        "42",
        "true",
        "null",
        "{",
        "{\"model\":",
        "}{",
    ] {
        c.chat(body, &[400]).await;
    }
    c.chat(format!("{} trailing", chat_body(LOGICAL, "Hi")), &[400])
        .await;
    c.chat(format!("\u{feff}{}", chat_body(LOGICAL, "Hi")), &[400])
        .await;
    // Gemini-style and Claude-style bodies gone wrong.
    c.chat_json(json!({"model": LOGICAL, "input": 42}), &[400])
        .await;
    c.chat_json(json!({"model": LOGICAL, "contents": 42}), &[400])
        .await;
    c.chat_json(json!({"model": LOGICAL, "contents": [42]}), &[400])
        .await;
    c.chat_json(
        json!({"model": LOGICAL, "input": [{"role": "user", "content": 42}]}),
        &[400],
    )
    .await;
    c.post(
        CHAT,
        json!({"model": LOGICAL, "system": 5, "messages": user}).to_string(),
        &[400],
        Shape::Either,
    )
    .await;

    // ---- enormous strings ----
    let huge_model = "m".repeat(10 * MIB);
    c.chat_json(json!({"model": huge_model, "messages": user}), &[400])
        .await;
    drop(huge_model);
    let mut too_big = format!(
        "{{\"model\":\"{LOGICAL}\",\"messages\":[],\"padding\":\"{}\"}}",
        "x".repeat(40 * MIB)
    )
    .into_bytes();
    c.raw_with(
        "POST /v1/chat/completions with a 40 MiB body",
        b"POST /v1/chat/completions HTTP/1.1",
        &[b"Content-Type: application/json"],
        &too_big,
        &[413],
        Shape::OpenAi,
    )
    .await;
    c.raw_with(
        "POST /v1/messages with a 40 MiB body",
        b"POST /v1/messages HTTP/1.1",
        &[b"Content-Type: application/json"],
        &too_big,
        &[413],
        Shape::Anthropic,
    )
    .await;
    c.raw_with(
        "PUT /logical-models/big with a 40 MiB body",
        b"PUT /logical-models/big HTTP/1.1",
        &[b"Content-Type: application/json"],
        &too_big,
        &[413],
        Shape::OpenAi,
    )
    .await;
    too_big.clear();

    // ---- bad headers ----
    let bad_body = json!({"messages": user}).to_string();
    let megabyte_token = format!("Bearer {}", "A".repeat(MIB));
    c.raw_with(
        "POST /v1/chat/completions with a 1 MiB Authorization header",
        b"POST /v1/chat/completions HTTP/1.1",
        &[format!("Authorization: {megabyte_token}").as_bytes()],
        bad_body.as_bytes(),
        &[400, 431],
        Shape::Protocol,
    )
    .await;
    let long_token = format!("Bearer {}", "A".repeat(64 * 1024));
    let no_auth = |c: &Corpus, path: &str| {
        c.gateway
            .client
            .post(format!("{}{path}", c.gateway.url))
            .header("content-type", "application/json")
    };
    let request = no_auth(&c, CHAT)
        .header("authorization", &long_token)
        .body(bad_body.clone());
    c.send(
        "POST /v1/chat/completions, Authorization: Bearer <64 KiB>",
        request,
        &[401],
        Shape::OpenAi,
    )
    .await;
    for auth in [
        "Bearer",
        "Bearer ",
        "Basic dGltZWxpbmU=",
        "dGltZWxpbmU=",
        "Bearer dGltZWxpbmU",
        "Bearer dGltZWxpbmU= extra",
    ] {
        let request = no_auth(&c, CHAT)
            .header("authorization", auth)
            .body(bad_body.clone());
        c.send(
            &format!("POST /v1/chat/completions, Authorization: {auth:?}"),
            request,
            &[401],
            Shape::OpenAi,
        )
        .await;
    }
    let request = no_auth(&c, CHAT).body(bad_body.clone());
    c.send(
        "POST /v1/chat/completions without credentials",
        request,
        &[401],
        Shape::OpenAi,
    )
    .await;
    let request = no_auth(&c, CHAT)
        .header("x-api-key", "nope")
        .body(bad_body.clone());
    c.send(
        "POST /v1/chat/completions, X-API-Key: nope",
        request,
        &[401],
        Shape::OpenAi,
    )
    .await;
    let request = no_auth(&c, "/v1/messages").body(messages_with("model", None));
    c.send(
        "POST /v1/messages without credentials",
        request,
        &[401],
        Shape::Either,
    )
    .await;
    for (what, value) in [
        (
            "non-ASCII",
            b"Authorization: Bearer d\xc3\xa9GltZWxpbmU=".as_slice(),
        ),
        (
            "invalid UTF-8",
            b"Authorization: Bearer \xff\xfe\xfd".as_slice(),
        ),
    ] {
        let request = raw_request(
            b"POST /v1/chat/completions HTTP/1.1",
            false,
            &[value, b"Content-Type: application/json"],
            bad_body.as_bytes(),
        );
        c.raw(
            &format!("POST /v1/chat/completions, Authorization with {what} bytes"),
            request,
            &[401],
            Shape::OpenAi,
        )
        .await;
    }
    let valid_chat = chat_body(LOGICAL, "Hi").to_string();
    for (what, session) in [("empty", String::new()), ("300 chars", "s".repeat(300))] {
        let request = c
            .gateway
            .post(CHAT)
            .header("content-type", "application/json")
            .header("x-session-id", session)
            .body(valid_chat.clone());
        c.send(
            &format!("POST /v1/chat/completions, X-Session-Id {what}"),
            request,
            &[400],
            Shape::OpenAi,
        )
        .await;
    }
    for (what, value, allowed, shape) in [
        (
            "a control character",
            b"X-Session-Id: abc\x01def".as_slice(),
            [400].as_slice(),
            Shape::Protocol,
        ),
        ("DEL", b"X-Session-Id: abc\x7fdef", &[400], Shape::Protocol),
        (
            "invalid UTF-8",
            b"X-Session-Id: \xff\xfe",
            &[400],
            Shape::OpenAi,
        ),
    ] {
        c.raw_with(
            &format!("POST /v1/chat/completions, X-Session-Id with {what}"),
            b"POST /v1/chat/completions HTTP/1.1",
            &[value, b"Content-Type: application/json"],
            valid_chat.as_bytes(),
            allowed,
            shape,
        )
        .await;
    }
    let request = c
        .gateway
        .post("/v1/messages")
        .header("content-type", "application/json")
        .header("x-session-id", "s".repeat(300))
        .body(messages_with("model", Some(&format!("\"{LOGICAL}\""))));
    c.send(
        "POST /v1/messages, X-Session-Id 300 chars",
        request,
        &[400],
        Shape::Anthropic,
    )
    .await;
    let request = c
        .gateway
        .post("/v1/responses")
        .header("content-type", "application/json")
        .header("x-session-id", "")
        .body(responses_with("input", "\"Hi\""));
    c.send(
        "POST /v1/responses, X-Session-Id empty",
        request,
        &[400],
        Shape::OpenAi,
    )
    .await;
    let absurd_type = format!("application/json; {}", "charset=x; ".repeat(8_000));
    let request = c
        .gateway
        .post(CHAT)
        .header("content-type", absurd_type)
        .body(bad_body.clone());
    c.send(
        "POST /v1/chat/completions, Content-Type 88 KB of parameters",
        request,
        &[400],
        Shape::OpenAi,
    )
    .await;
    c.raw_with(
        "POST /v1/chat/completions, Content-Type with invalid UTF-8",
        b"POST /v1/chat/completions HTTP/1.1",
        &[b"Content-Type: application/\xff\xfejson"],
        bad_body.as_bytes(),
        &[400],
        Shape::OpenAi,
    )
    .await;
    let unknown_model = chat_body("no-such-model", "Hi").to_string();
    let absurd_accept = format!("text/event-stream, {}", "x/y;q=0.1, ".repeat(5_000));
    let request = c
        .gateway
        .post(CHAT)
        .header("content-type", "application/json")
        .header("accept", absurd_accept)
        .body(unknown_model.clone());
    c.send(
        "POST /v1/chat/completions, Accept text/event-stream + 60 KB, unknown model",
        request,
        &[404],
        Shape::OpenAi,
    )
    .await;
    c.raw_with(
        "POST /v1/chat/completions, Accept with invalid UTF-8, unknown model",
        b"POST /v1/chat/completions HTTP/1.1",
        &[
            b"Accept: text/event-stream\xff\xfe",
            b"Content-Type: application/json",
        ],
        unknown_model.as_bytes(),
        &[404],
        Shape::OpenAi,
    )
    .await;
    c.raw_with(
        "POST /v1/chat/completions, X-Request-Id 10 KB with invalid UTF-8",
        b"POST /v1/chat/completions HTTP/1.1",
        &[
            [
                b"X-Request-Id: \xff".as_slice(),
                "r".repeat(10_000).as_bytes(),
            ]
            .concat()
            .as_slice(),
            b"Content-Type: application/json",
        ],
        bad_body.as_bytes(),
        &[400],
        Shape::OpenAi,
    )
    .await;
    let many_headers: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("X-Junk-{i}: {i}").into_bytes())
        .collect();
    let many_headers: Vec<&[u8]> = many_headers.iter().map(Vec::as_slice).collect();
    c.raw_with(
        "POST /v1/chat/completions with 300 headers",
        b"POST /v1/chat/completions HTTP/1.1",
        &many_headers,
        bad_body.as_bytes(),
        &[400, 431],
        Shape::Protocol,
    )
    .await;

    // ---- lying or broken framing ----
    for (path, shape) in [
        (CHAT, Shape::OpenAi),
        ("/v1/messages", Shape::Anthropic),
        ("/logical-models/short", Shape::OpenAi),
        ("/routing/decide", Shape::OpenAi),
    ] {
        let method = if path.starts_with("/logical") {
            "PUT"
        } else {
            "POST"
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"model\":1"
        );
        c.raw_half_closed(
            &format!("{method} {path}, Content-Length 100 but 10 bytes, then EOF"),
            head.into_bytes(),
            &[400],
            shape,
        )
        .await;
    }
    for length in ["-1", "99999999999999999999999", "12, 13", "abc"] {
        c.raw(
            &format!("POST /v1/chat/completions, Content-Length: {length}"),
            raw_request(
                b"POST /v1/chat/completions HTTP/1.1",
                true,
                &[format!("Content-Length: {length}").as_bytes()],
                b"",
            ),
            &[400],
            Shape::Protocol,
        )
        .await;
    }
    c.raw(
        "POST /v1/chat/completions, chunked with a bad chunk size",
        raw_request(
            b"POST /v1/chat/completions HTTP/1.1",
            true,
            &[b"Transfer-Encoding: chunked"],
            b"",
        )
        .into_iter()
        .chain(b"zz\r\n{}\r\n0\r\n\r\n".iter().copied())
        .collect(),
        &[400],
        Shape::Protocol,
    )
    .await;
    c.raw(
        "POST /v1/chat/completions, Transfer-Encoding: gzip",
        raw_request(
            b"POST /v1/chat/completions HTTP/1.1",
            true,
            &[b"Transfer-Encoding: gzip"],
            b"",
        ),
        &[400],
        Shape::Protocol,
    )
    .await;

    // ---- broken request lines ----
    for (what, line) in [
        ("garbage", b"GARBAGE".as_slice()),
        ("no version", b"GET /health"),
        ("no path", b"GET HTTP/1.1"),
        (
            "invalid UTF-8 in the path",
            b"GET /v1/models/\xff\xfe HTTP/1.1",
        ),
        ("a NUL in the path", b"GET /v1/models/a\x00b HTTP/1.1"),
        ("a space in the path", b"GET /v1/models/a b HTTP/1.1"),
        (
            "a literal <script> path",
            b"GET /routing/sessions/<script> HTTP/1.1",
        ),
        ("a lowercase method", b"get /health HTTP/1.1"),
    ] {
        c.raw_with(
            &format!("request line with {what}: {}", preview(line)),
            line,
            &[],
            b"",
            &[400, 404, 405],
            Shape::Protocol,
        )
        .await;
    }
    let long_path = format!("GET /v1/models/{} HTTP/1.1", "a".repeat(100_000));
    c.raw_with(
        "GET /v1/models/<100,000 chars>",
        long_path.as_bytes(),
        &[],
        b"",
        &[400, 404, 414, 431],
        Shape::Protocol,
    )
    .await;
    c.raw(
        "a header line without a colon",
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n".to_vec(),
        &[400],
        Shape::Protocol,
    )
    .await;
    c.raw(
        "a header name with a space",
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n".to_vec(),
        &[400],
        Shape::Protocol,
    )
    .await;

    // ---- bad paths and ids ----
    c.get("/v1/models/%00", &[404]).await;
    c.get("/v1/models/%ff%fe", &[404]).await;
    c.get(&format!("/v1/models/{}", "m".repeat(5_000)), &[404])
        .await;
    c.raw_with(
        "GET /v1/models/../../etc/passwd",
        b"GET /v1/models/../../etc/passwd HTTP/1.1",
        &[],
        b"",
        &[404],
        Shape::OpenAi,
    )
    .await;
    c.raw_with(
        "GET /providers/../../etc/passwd",
        b"GET /providers/../../etc/passwd HTTP/1.1",
        &[],
        b"",
        &[404],
        Shape::OpenAi,
    )
    .await;
    c.get("/providers/%ff", &[404]).await;
    c.get("/providers/%ff/models", &[404]).await;
    c.get("/providers/%00/health", &[404]).await;
    c.get("/providers/nope/metrics?logical_model=%ff", &[404])
        .await;
    let long_id = "L".repeat(5_000);
    c.get(&format!("/logical-models/{long_id}"), &[400]).await;
    c.get(&format!("/logical-models/{long_id}/upstreams"), &[400])
        .await;
    c.method(
        "DELETE",
        &format!("/logical-models/{long_id}"),
        &[400],
        Shape::OpenAi,
    )
    .await;
    c.get("/logical-models/%ff%00", &[400]).await;
    c.get(
        "/routing/sessions/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        &[400],
    )
    .await;
    c.method(
        "DELETE",
        "/routing/sessions/%3Cscript%3E",
        &[400],
        Shape::OpenAi,
    )
    .await;
    c.get("/routing/sessions/%2e%2e%2f%2e%2e", &[404]).await;
    c.raw_with(
        "GET //v1//chat/completions",
        b"GET //v1//chat/completions HTTP/1.1",
        &[],
        b"",
        &[404, 405],
        Shape::OpenAi,
    )
    .await;
    c.raw_with(
        "POST //v1//chat/completions with a body without a model",
        b"POST //v1//chat/completions HTTP/1.1",
        &[b"Content-Type: application/json"],
        bad_body.as_bytes(),
        &[400, 404],
        Shape::OpenAi,
    )
    .await;
    c.get("/nope", &[404]).await;
    c.get("/v2/chat/completions", &[404]).await;
    c.get(&format!("/{}", "x/".repeat(2_000)), &[404]).await;

    // ---- methods that no route takes ----
    for (method, path) in [
        ("PATCH", CHAT),
        ("PUT", CHAT),
        ("DELETE", CHAT),
        ("GET", CHAT),
        ("TRACE", "/health"),
        ("POST", "/health"),
        ("PATCH", "/v1/models"),
        ("DELETE", "/providers"),
        ("POST", "/providers/a"),
        ("POST", "/logical-models"),
        ("PATCH", "/logical-models/chat-model"),
        ("GET", "/routing/decide"),
        ("PUT", "/routing/sessions/x"),
        ("POST", "/context/x"),
        ("GET", "/v1/responses"),
        ("GET", "/v1/messages"),
        ("BREW", "/v1/models"),
        ("OPTIONS", CHAT),
    ] {
        c.method(method, path, &[404, 405], Shape::OpenAi).await;
    }
    c.method("HEAD", CHAT, &[404, 405], Shape::NoBody).await;
    c.method("HEAD", "/nope", &[404], Shape::NoBody).await;
    let request = c
        .gateway
        .client
        .head(format!("{}/v1/models", c.gateway.url));
    c.send(
        "HEAD /v1/models without credentials",
        request,
        &[401, 405],
        Shape::NoBody,
    )
    .await;

    // ---- PUT /logical-models/{id} ----
    let lm = "/logical-models/hostile";
    let upstream = |extra: &str| {
        format!(r#"{{"upstreams":[{{"provider_id":"a","model_id":"up-a"{extra}}}]}}"#)
    };
    for body in [
        "[]".to_string(),
        "\"x\"".into(),
        "".into(),
        "{".into(),
        deep_object.clone(),
        r#"{"upstreams":"a"}"#.into(),
        r#"{"upstreams":{}}"#.into(),
        r#"{"upstreams":[1,2]}"#.into(),
        r#"{"upstreams":null}"#.into(),
        r#"{}"#.into(),
        r#"{"upstreams":[{"provider_id":5,"model_id":"up-a"}]}"#.into(),
        r#"{"upstreams":[{"provider_id":"a"}]}"#.into(),
        r#"{"upstreams":[{"provider_id":"a","model_id":""}]}"#.into(),
        upstream(r#","base_weight":-1"#),
        upstream(r#","base_weight":0"#),
        upstream(r#","base_weight":"NaN""#),
        upstream(r#","base_weight":1e309"#),
        upstream(r#","base_weight":1e7"#),
        upstream(r#","max_qps":-3"#),
        upstream(r#","region":[]"#),
        r#"{"upstreams":[{"provider_id":"nope","model_id":"m","endpoint":"http://evil"}]}"#.into(),
        r#"{"upstreams":[],"enabled":"yes"}"#.into(),
        r#"{"upstreams":[],"capabilities":"chat"}"#.into(),
        r#"{"upstreams":[],"logical_id":"other"}"#.into(),
        r#"{"upstreams":[],"logical_id":5}"#.into(),
        r#"{"upstreams":[],"display_name":{}}"#.into(),
        format!(r#"{{"upstreams":[],"unknown":{deep_array}}}"#),
    ] {
        c.put(lm, body, &[400]).await;
    }
    let many: Vec<Value> = (0..10_000)
        .map(|i| json!({"provider_id": format!("ghost-{i}"), "model_id": "m", "base_weight": 1.0}))
        .collect();
    c.put(lm, json!({"upstreams": many}).to_string(), &[400])
        .await;
    c.put(
        &format!("/logical-models/{}", "L".repeat(300)),
        json!({"upstreams": []}).to_string(),
        &[400],
    )
    .await;

    // ---- POST /routing/decide ----
    let decide = "/routing/decide";
    let ghosts: Vec<String> = (0..100_000).map(|i| format!("p{i}")).collect();
    for body in [
        json!({"logical_model": LOGICAL, "surprise": true}).to_string(),
        json!({"logical_model": 5}).to_string(),
        json!({"logical_model": null}).to_string(),
        json!({"logical_model": ""}).to_string(),
        json!({}).to_string(),
        json!({"logical_model": LOGICAL, "strategy": "fastest"}).to_string(),
        json!({"logical_model": LOGICAL, "strategy": 5}).to_string(),
        json!({"logical_model": LOGICAL, "exclude_providers": "a"}).to_string(),
        json!({"logical_model": LOGICAL, "exclude_providers": [1, 2]}).to_string(),
        json!({"logical_model": LOGICAL, "conversation_id": []}).to_string(),
        json!({"logical_model": LOGICAL, "preferred_region": 7}).to_string(),
        "[]".into(),
        "".into(),
        format!(r#"{{"logical_model":{deep_array}}}"#),
        format!(
            r#"{{"logical_model":"chat-model","exclude_providers":[{}]}}"#,
            vec!["1"; 100_000].join(",")
        ),
    ] {
        c.post(decide, body, &[400], Shape::OpenAi).await;
    }
    c.post(
        decide,
        json!({"logical_model": "no-such-model", "exclude_providers": ghosts}).to_string(),
        &[404],
        Shape::OpenAi,
    )
    .await;

    // ---- POST /v1/responses ----
    let responses = "/v1/responses";
    for body in [
        responses_with("input", "42"),
        responses_with("input", "{}"),
        responses_with("input", "true"),
        json!({"model": LOGICAL}).to_string(),
        responses_with("model", "5"),
        responses_with("instructions", "5"),
        // Typed but unknown items, parts and tools are dropped and counted (SPEC 4.8, tested in
        // agents.rs); without a type they are malformed.
        responses_with("input", r#"[{"content":"no type, no role"}]"#),
        responses_with("input", r#"[42]"#),
        responses_with("input", r#"[{"role":"wizard","content":"x"}]"#),
        responses_with("input", r#"[{"type":"function_call","name":"f"}]"#),
        responses_with(
            "input",
            r#"[{"role":"user","content":[{"text":"no type"}]}]"#,
        ),
        responses_with("input", &deep_array),
        responses_with("tools", r#"[{"name":"no type"}]"#),
        responses_with("tools", r#"[{"type":"function"}]"#),
        responses_with("tool_choice", "5"),
        responses_with("text", r#"{"format":{"type":"xml"}}"#),
        "[]".into(),
        "".into(),
        "{\"model\":".into(),
    ] {
        c.post(responses, body, &[400], Shape::OpenAi).await;
    }
    c.post(
        responses,
        b"{\"model\":\"chat-model\",\"input\":\"\xff\"}".to_vec(),
        &[400],
        Shape::OpenAi,
    )
    .await;

    // ---- POST /v1/messages ----
    for body in [
        messages_with("max_tokens", None),
        messages_with("max_tokens", Some("\"16\"")),
        messages_with("max_tokens", Some("-1")),
        messages_with("max_tokens", Some("1e400")),
        messages_with("max_tokens", Some("99999999999999999999999999")),
        messages_with("max_tokens", Some("null")),
        messages_with("model", None),
        messages_with("model", Some("5")),
        messages_with("system", Some("5")),
        messages_with("system", Some(r#"[{"type":"hologram"}]"#)),
        messages_with("messages", Some("\"x\"")),
        messages_with("messages", Some("{}")),
        messages_with("messages", Some("null")),
        messages_with("messages", Some("[42]")),
        messages_with(
            "messages",
            Some(r#"[{"role":"user","content":[{"text":"no type"}]}]"#),
        ),
        messages_with("messages", Some(r#"[{"role":"wizard","content":"x"}]"#)),
        messages_with("messages", Some(&deep_array)),
        messages_with("tools", Some("\"all\"")),
        messages_with("stream", Some("\"yes\"")),
        "{\"model\":".into(),
        "".into(),
        "   ".into(),
        "[]".into(),
        "null".into(),
        deep_object.clone(),
    ] {
        c.messages(body, &[400]).await;
    }
    c.messages(b"{\"model\":\"\xff\",\"max_tokens\":1}".to_vec(), &[400])
        .await;

    // ---- read-only endpoints without or with broken credentials ----
    for path in [
        "/models",
        "/v1/models",
        "/v1/models/up-a",
        "/providers",
        "/providers/a/models",
        "/logical-models",
        "/routing/sessions/x",
        "/context/x",
    ] {
        let request = c
            .gateway
            .client
            .get(format!("{}{path}", c.gateway.url))
            .header("x-api-key", "garbage");
        c.send(
            &format!("GET {path}, X-API-Key garbage"),
            request,
            &[400, 401],
            Shape::Either,
        )
        .await;
    }

    let sent = c.sent;
    let mut failures = std::mem::take(&mut c.failures);
    drop(c);
    let forwarded = mock.chat_requests().await;
    if forwarded > 0 {
        failures.push(format!("{forwarded} hostile requests reached the upstream"));
    }
    eprintln!("hostile corpus: {sent} requests in {:?}", started.elapsed());
    assert!(sent >= 60, "the corpus has only {sent} requests");
    assert_still_healthy(&mut gateway).await;
    assert!(
        failures.is_empty(),
        "{} of {sent} hostile requests were mishandled:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Known optional chat fields with the wrong JSON type, and message items that are not messages.
fn wrongly_typed_chat_bodies() -> Vec<String> {
    let mut bodies: Vec<String> = [
        ("max_tokens", "\"ten\""),
        ("max_tokens", "-5"),
        ("max_tokens", "1e400"),
        ("max_tokens", "99999999999999999999999999"),
        ("max_completion_tokens", "{}"),
        ("temperature", "\"hot\""),
        ("temperature", "1e400"),
        ("top_p", "[]"),
        ("tools", "\"all\""),
        ("tools", "[42]"),
        ("tool_choice", "7"),
        ("n", "\"two\""),
        ("stop", "{}"),
        ("stream_options", "\"usage\""),
        ("response_format", "5"),
    ]
    .iter()
    .map(|(field, value)| chat_with(field, value))
    .collect();
    bodies.push(chat_with("messages", "[42]"));
    bodies.push(chat_with("messages", "[{\"role\":5,\"content\":[]}]"));
    bodies.push(chat_with(
        "messages",
        "[{\"role\":\"user\",\"content\":{}}]",
    ));
    bodies
}

/// SPEC 4.6: invalid fields are 400. A body whose known fields have the wrong types is the client's
/// mistake; the gateway should say so itself rather than spend an upstream call (and a provider's
/// quota) on it, or relay whatever a lenient upstream makes of it.
#[tokio::test]
async fn wrong_types_in_known_chat_fields_are_400_and_never_reach_the_upstream() {
    let (mock, gateway) = one_gateway().await;
    let mut c = Corpus::new(&gateway);
    for body in wrongly_typed_chat_bodies() {
        c.chat(body, &[400]).await;
    }
    let failures = std::mem::take(&mut c.failures);
    let sent = c.sent;
    drop(c);
    let forwarded = mock.chat_requests().await;
    assert!(
        failures.is_empty() && forwarded == 0,
        "{} of {sent} wrongly typed chat bodies were not refused ({forwarded} reached the \
         upstream):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Whatever the gateway makes of wrongly typed fields, translating them for an Anthropic or a
/// Gemini upstream must not turn them into a server error or a non-JSON answer.
#[tokio::test]
async fn wrong_types_in_known_chat_fields_are_never_a_server_error_for_translating_vendors() {
    let claude = Mock::start("claude", &["claude-up"]);
    let gemini = Mock::start("gemini", &["gemini-up"]);
    let gateway = Gateway::builder()
        .provider("claude", &claude.url)
        .provider("gemini", &gemini.url)
        .logical_models(json!([
            {"logical_id": "to-claude", "upstreams": [{"provider_id": "claude", "model_id": "claude-up"}]},
            {"logical_id": "to-gemini", "upstreams": [{"provider_id": "gemini", "model_id": "gemini-up"}]},
        ]))
        .start()
        .await;
    let mut failures = Vec::new();
    for model in ["to-claude", "to-gemini"] {
        for body in wrongly_typed_chat_bodies() {
            let body = body.replace(LOGICAL, model);
            let response = gateway
                .post(CHAT)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            let response = match response {
                Ok(response) => response,
                Err(e) => {
                    failures.push(format!("POST {CHAT} {body}: no answer: {e:?}"));
                    continue;
                }
            };
            let status = response.status().as_u16();
            let bytes = response.bytes().await.unwrap_or_default();
            let problem = if status >= 500 {
                Some(format!("server error {status}"))
            } else if status >= 400 {
                shape_problem(Shape::OpenAi, &bytes)
            } else {
                serde_json::from_slice::<Value>(&bytes)
                    .is_err()
                    .then(|| "a non-JSON success".to_string())
            };
            if let Some(problem) = problem {
                failures.push(format!(
                    "POST {CHAT} {body}: {problem} (status {status}, body: {})",
                    preview(&bytes)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let (status, health) = gateway.get_json("/health").await;
    assert_eq!(status, 200, "{health}");
}

/// A logical id of only whitespace can never be asked for (a chat's blank `model` is refused), so
/// creating one is refused too (data-model 3.2: `logical_id` is the public model name).
#[tokio::test]
async fn a_blank_logical_model_id_is_refused() {
    let (_mock, gateway) = one_gateway().await;
    for path in [
        "/logical-models/%20",
        "/logical-models/%09",
        "/logical-models/%20%20%20",
    ] {
        let (status, body) = gateway.put_json(path, &json!({"upstreams": []})).await;
        assert_eq!(
            status, 400,
            "PUT {path} {{\"upstreams\":[]}} answered {body}"
        );
        assert_error_shape(&body);
    }
    let (status, list) = gateway.get_json("/logical-models").await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], 1, "only chat-model is stored: {list}");
}

/// SPEC 4.6: `/v1/messages` answers errors in Anthropic's shape, authentication failures included
/// (the Anthropic SDK reads `error.type` and `error.message` from them).
#[tokio::test]
async fn an_unauthenticated_messages_request_gets_anthropics_error_shape() {
    let (_mock, gateway) = one_gateway().await;
    let body = json!({"model": LOGICAL, "max_tokens": 16, "messages": user_messages()});
    for (header, value) in [
        (None, ""),
        (Some("x-api-key"), "wrong"),
        (Some("authorization"), "Bearer wrong"),
    ] {
        let mut request = gateway
            .client
            .post(format!("{}/v1/messages", gateway.url))
            .json_body(&body);
        if let Some(header) = header {
            request = request.header(header, value);
        }
        let response = request.send().await.expect("POST /v1/messages");
        assert_eq!(response.status(), 401, "{header:?}: {value}");
        let answer = json_of(response).await;
        assert_eq!(answer["type"], "error", "{header:?}: {value}: {answer}");
        assert_eq!(
            answer["error"]["type"], "authentication_error",
            "{header:?}: {value}: {answer}"
        );
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }
}

/// Clients that open connections and stall mid-request do not keep the gateway from serving others.
#[tokio::test]
async fn stalled_half_sent_requests_do_not_block_other_clients() {
    let (_mock, gateway) = one_gateway().await;
    let addr = gateway.url.trim_start_matches("http://").to_string();
    let mut stalled = Vec::new();
    for i in 0..50 {
        let mut stream = TcpStream::connect(&addr).await.expect("connect");
        let partial = if i % 2 == 0 {
            format!(
                "POST {CHAT} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\n\
                 Content-Length: 1000\r\n\r\n{{\"model\":"
            )
        } else {
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Half: ".to_string()
        };
        stream
            .write_all(partial.as_bytes())
            .await
            .expect("write a partial request");
        stalled.push(stream);
    }
    let started = Instant::now();
    let response = gateway.chat(chat_body(LOGICAL, "anyone there?")).await;
    assert_eq!(response.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a chat beside 50 stalled requests took {:?}",
        started.elapsed()
    );
    let (status, _) = gateway.get_json("/health").await;
    assert_eq!(status, 200);
    drop(stalled);
}

/// A logical id over 256 characters and a weight over 1,000,000 are refused (data-model 3.1, 3.2),
/// with a message that says what is wrong rather than "must not be empty" or "must be greater
/// than 0".
#[tokio::test]
async fn an_over_long_id_and_an_over_large_weight_are_refused_with_messages_that_say_why() {
    let (_mock, gateway) = one_gateway().await;
    let cases = [
        (
            format!("/logical-models/{}", "L".repeat(300)),
            json!({"upstreams": []}),
            "id",
        ),
        (
            "/logical-models/heavy".to_string(),
            json!({"upstreams": [{"provider_id": "a", "model_id": "up-a", "base_weight": 1e7}]}),
            "upstreams[0].base_weight",
        ),
        (
            "/logical-models/long-model".to_string(),
            json!({"upstreams": [{"provider_id": "a", "model_id": "m".repeat(300)}]}),
            "upstreams[0].model_id",
        ),
        (
            "/logical-models/long-provider".to_string(),
            json!({"upstreams": [{"provider_id": "p".repeat(300), "model_id": "m"}]}),
            "upstreams[0].provider_id",
        ),
    ];
    let mut failures = Vec::new();
    for (path, body, param) in cases {
        let (status, answer) = gateway.put_json(&path, &body).await;
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        let misleading = ["must not be empty", "greater than 0"]
            .iter()
            .any(|wrong| message.contains(wrong));
        if status != 400 || answer["error"]["param"] != param || misleading {
            failures.push(format!(
                "PUT {}... {}...: {status} {answer}",
                &path[..path.len().min(40)],
                &body.to_string()[..body.to_string().len().min(80)]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
