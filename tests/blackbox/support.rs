//! Test support: real `mock-upstream` and `apiproxy` processes on free ports, each killed on Drop.
//!
//! Every test builds its own gateway and mocks, so tests are independent and can run in parallel.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The Base64 form of the default gateway token `timeline`.
pub const TOKEN: &str = "dGltZWxpbmU=";
pub const AUTH: &str = "Bearer dGltZWxpbmU=";
/// The logical model most tests ask for.
pub const LOGICAL: &str = "chat-model";
/// Weights that make the failover order deterministic in practice (odds of the other order: 1e-12).
pub const FIRST: f64 = 1_000_000.0;
pub const SECOND: f64 = 0.000_001;

pub fn apiproxy_bin() -> &'static str {
    env!("CARGO_BIN_EXE_apiproxy")
}

fn mock_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mock-upstream")
}

/// A port that was free a moment ago (the listener is dropped before returning).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// An address where nothing listens: connections to it are refused.
pub fn closed_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("reqwest client")
}

/// A command with an explicit environment: nothing from the developer's shell leaks in.
pub fn clean_command(program: &str) -> Command {
    let mut command = Command::new(program);
    command.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
}

/// Runs `apiproxy <args>` with exactly `env` (plus PATH) and an empty env file.
pub fn run_apiproxy(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let env_file = dir.path().join("empty.env");
    std::fs::write(&env_file, "").expect("write empty env file");
    let mut command = clean_command(apiproxy_bin());
    command
        .args(args)
        .arg("--env-file")
        .arg(&env_file)
        .current_dir(dir.path())
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run apiproxy")
}

/// A finished command's stdout and stderr, one after the other (for messages and searches).
pub fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

// ---------------------------------------------------------------------------------------------
// The mock upstream

pub struct Mock {
    pub name: String,
    pub url: String,
    child: Child,
    _stdout: BufReader<ChildStdout>,
}

impl Mock {
    /// A mock named `name` listing `models`, with the default reply length.
    pub fn start(name: &str, models: &[&str]) -> Mock {
        Mock::start_with(name, models, &[])
    }

    pub fn start_with(name: &str, models: &[&str], extra: &[&str]) -> Mock {
        let mut command = clean_command(mock_bin());
        command
            .args(["--host", "127.0.0.1", "--port", "0", "--name", name])
            .args(["--models", &models.join(",")])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("spawn mock-upstream");
        let mut stdout = BufReader::new(child.stdout.take().expect("mock stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read mock stdout");
        let url = line
            .trim()
            .strip_prefix("mock-upstream listening on ")
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("mock-upstream {name} did not announce its address: {line:?}")
            })
            .to_string();
        Mock {
            name: name.to_string(),
            url,
            child,
            _stdout: stdout,
        }
    }

    /// Scripts a fault for the next chat requests (`PUT /_mock/fault`).
    pub async fn fault(&self, fault: Value) {
        let response = client()
            .put(format!("{}/_mock/fault", self.url))
            .json_body(&fault)
            .send()
            .await
            .expect("PUT /_mock/fault");
        assert_eq!(
            response.status(),
            204,
            "mock {} refused the fault {fault}",
            self.name
        );
    }

    /// Clears the scripted fault (`DELETE /_mock/fault`): the mock answers normally again.
    pub async fn clear_fault(&self) {
        let response = client()
            .delete(format!("{}/_mock/fault", self.url))
            .send()
            .await
            .expect("DELETE /_mock/fault");
        assert_eq!(response.status(), 204, "mock {} kept its fault", self.name);
    }

    /// `GET /_mock/stats`.
    pub async fn stats(&self) -> Value {
        let response = client()
            .get(format!("{}/_mock/stats", self.url))
            .send()
            .await
            .expect("GET /_mock/stats");
        json_of(response).await
    }

    pub async fn chat_requests(&self) -> u64 {
        self.stats().await["chat_requests"]
            .as_u64()
            .expect("chat_requests is a number")
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway

/// Collects the environment of one gateway; `start` runs it (more than once for several gateways
/// with the same configuration).
#[derive(Default, Clone)]
pub struct GatewayBuilder {
    providers: Vec<String>,
    env: Vec<(String, String)>,
    logical_models: Option<Value>,
}

impl GatewayBuilder {
    /// An OpenAI-vendor provider `id` at `base_url` with key `key-<id>-0123456789`.
    pub fn provider(self, id: &str, base_url: &str) -> Self {
        let key = provider_key(id);
        self.provider_with_key(id, base_url, &key)
    }

    pub fn provider_with_key(mut self, id: &str, base_url: &str, key: &str) -> Self {
        self.providers.push(id.to_string());
        self.env(
            &format!("LLM_PROVIDER_{id}_NAME"),
            &format!("Provider {id}"),
        )
        .env(&format!("LLM_PROVIDER_{id}_BASE_URL"), base_url)
        .env(&format!("LLM_PROVIDER_{id}_API_KEY"), key)
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The logical model `chat-model` over `(provider, physical model, weight)` upstreams.
    pub fn logical(mut self, upstreams: &[(&str, &str, f64)]) -> Self {
        let upstreams: Vec<Value> = upstreams
            .iter()
            .map(|(provider, model, weight)| {
                json!({"provider_id": provider, "model_id": model, "base_weight": weight})
            })
            .collect();
        self.logical_models = Some(json!([{"logical_id": LOGICAL, "upstreams": upstreams}]));
        self
    }

    /// Any `LOGICAL_MODELS_FILE` content (a JSON array of logical models).
    pub fn logical_models(mut self, models: Value) -> Self {
        self.logical_models = Some(models);
        self
    }

    /// Uses the Redis store at `url` (`REDIS_URL`).
    pub fn redis(self, url: &str) -> Self {
        self.env("REDIS_URL", url)
    }

    /// Starts the gateway and waits for `/health`. The port picked by [`free_port`] can be taken
    /// by another process before the gateway binds it; then the start is retried on a new port.
    pub async fn start(self) -> Gateway {
        for _ in 0..5 {
            let mut gateway = self.spawn();
            match gateway.wait_until_healthy().await {
                Ok(()) => return gateway,
                Err(Started::PortTaken) => continue,
            }
        }
        panic!("apiproxy found no free port in 5 tries");
    }

    fn spawn(&self) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let env_file = dir.path().join("empty.env");
        std::fs::write(&env_file, "").expect("write empty env file");
        let log_path = dir.path().join("gateway.log");
        let log = std::fs::File::create(&log_path).expect("create gateway log");
        let port = free_port();
        let mut command = clean_command(apiproxy_bin());
        command
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--env-file")
            .arg(&env_file)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        if !self.providers.is_empty() {
            command.env("LLM_PROVIDERS", self.providers.join(","));
        }
        if let Some(models) = &self.logical_models {
            let path = dir.path().join("logical_models.json");
            std::fs::write(&path, models.to_string()).expect("write logical models");
            command.env("LOGICAL_MODELS_FILE", &path);
        }
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawn apiproxy");
        Gateway {
            url: format!("http://127.0.0.1:{port}"),
            client: client(),
            child,
            log_path,
            _dir: dir,
        }
    }
}

/// Why a start did not succeed, when it is worth another try.
enum Started {
    PortTaken,
}

pub fn provider_key(id: &str) -> String {
    format!("key-{id}-0123456789")
}

pub struct Gateway {
    pub url: String,
    pub client: reqwest::Client,
    child: Child,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Gateway {
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::default()
    }

    async fn wait_until_healthy(&mut self) -> Result<(), Started> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .expect("probe client");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                if self.log().contains("cannot listen on") {
                    return Err(Started::PortTaken);
                }
                panic!(
                    "apiproxy exited during start-up with {status}; log:\n{}",
                    self.log()
                );
            }
            if let Ok(response) = probe.get(format!("{}/health", self.url)).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                panic!(
                    "apiproxy did not answer /health within 10 s; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.url))
            .header("authorization", AUTH)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.url))
            .header("authorization", AUTH)
    }

    pub fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .put(format!("{}{path}", self.url))
            .header("authorization", AUTH)
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .delete(format!("{}{path}", self.url))
            .header("authorization", AUTH)
    }

    /// `GET path` with the token: the status and the body as JSON.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let response = self
            .get(path)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        (status, json_of(response).await)
    }

    /// `PUT path` with the token and a JSON body: the status and the answer as JSON.
    pub async fn put_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .put(path)
            .json_body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {path}: {e}"));
        let status = response.status().as_u16();
        (status, json_of(response).await)
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.get("/metrics")
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// `POST path` with the token and a JSON body: the status and the answer as JSON.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .post(path)
            .json_body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = response.status().as_u16();
        (status, json_of(response).await)
    }

    /// `DELETE path` with the token: the status.
    pub async fn delete_status(&self, path: &str) -> u16 {
        self.delete(path)
            .send()
            .await
            .unwrap_or_else(|e| panic!("DELETE {path}: {e}"))
            .status()
            .as_u16()
    }

    /// A chat that belongs to the conversation `session` (`X-Session-Id`).
    pub async fn chat_in_session(&self, session: &str, body: Value) -> reqwest::Response {
        self.post("/v1/chat/completions")
            .header("x-session-id", session)
            .json_body(&body)
            .send()
            .await
            .expect("POST /v1/chat/completions")
    }

    /// `POST /v1/chat/completions` with the token and `body`.
    pub async fn chat(&self, body: Value) -> reqwest::Response {
        self.post("/v1/chat/completions")
            .json_body(&body)
            .send()
            .await
            .expect("POST /v1/chat/completions")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- apiproxy log ----\n{}\n----", self.log());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies and answers

/// A chat request for `model` with one user message.
/// A gateway over one mock provider of `vendor` (its id and `VENDOR` both `vendor`, its model
/// `{vendor}-model`), as the logical model `chat-model`.
pub async fn vendor_gateway(vendor: &str) -> (Mock, Gateway) {
    let mock = Mock::start(vendor, &[&format!("{vendor}-model")]);
    let gateway = Gateway::builder()
        .provider(vendor, &mock.url)
        .env(&format!("LLM_PROVIDER_{vendor}_VENDOR"), vendor)
        .logical(&[(vendor, &format!("{vendor}-model"), 1.0)])
        .start()
        .await;
    (mock, gateway)
}

pub fn chat_body(model: &str, prompt: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": prompt}]})
}

pub fn streamed_chat_body(model: &str, prompt: &str) -> Value {
    let mut body = chat_body(model, prompt);
    body["stream"] = json!(true);
    body
}

/// `RequestBuilder::json` without reqwest's `json` feature.
pub trait JsonBody {
    fn json_body(self, body: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, body: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(body.to_string())
    }
}

/// A response body parsed as JSON; panics with the body when it is not JSON.
pub async fn json_of(response: reqwest::Response) -> Value {
    let status = response.status();
    let text = response.text().await.expect("response body");
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the {status} answer is not JSON ({e}): {text}"))
}

pub fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    // SSE ends lines with LF, CRLF or CR; Gemini's own streams use CRLF.
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter(|event| !event.trim().is_empty())
        .filter_map(|event| {
            let lines: Vec<&str> = event
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|data| data.strip_prefix(' ').unwrap_or(data))
                .collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        })
        .collect()
}

/// The text of a stream: every chunk's `choices[0].delta.content`, concatenated.
pub fn streamed_text(events: &[String]) -> String {
    events
        .iter()
        .filter(|data| data.as_str() != "[DONE]")
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter_map(|chunk| {
            chunk
                .pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect()
}

/// Whether any event of a stream is an error event.
pub fn has_error_event(events: &[String]) -> bool {
    events
        .iter()
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .any(|chunk| chunk.get("error").is_some())
}

/// Asserts the SPEC 4.6 error shape and returns the `error` object.
pub fn assert_error_shape(body: &Value) -> &Value {
    let error = body
        .get("error")
        .unwrap_or_else(|| panic!("no `error` object in {body}"));
    assert!(error["message"].is_string(), "error.message: {body}");
    assert!(error["type"].is_string(), "error.type: {body}");
    assert!(error.get("param").is_some(), "error.param present: {body}");
    assert!(error.get("code").is_some(), "error.code present: {body}");
    error
}

/// The provider that served a chat (`X-APIProxy-Provider`), or `""`.
pub fn served_by(response: &reqwest::Response) -> String {
    header(response, "x-apiproxy-provider")
        .unwrap_or_default()
        .to_string()
}

/// Polls `probe` every 25 ms until it gives `Some`, for at most `within`; panics naming `what`.
/// For state the gateway writes in background tasks right after an answer.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("waited {within:?} in vain for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Sleeps until just after the next calendar second starts, so that a burst fired now falls in one
/// per-second QPS window. Returns that second (Unix time).
pub async fn start_of_next_second() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    let next = now.as_secs() + 1;
    let wait = Duration::from_secs(next) - now + Duration::from_millis(20);
    tokio::time::sleep(wait).await;
    next
}

/// The current Unix second.
pub fn unix_second() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Two mock providers `a` and `b` behind one gateway, `a` first in the failover order.
pub struct Pair {
    pub a: Mock,
    pub b: Mock,
    pub gateway: Gateway,
}

pub async fn pair(extra_env: &[(&str, &str)]) -> Pair {
    let a = Mock::start("a", &["up-a"]);
    let b = Mock::start("b", &["up-b"]);
    let mut builder = Gateway::builder()
        .provider("a", &a.url)
        .provider("b", &b.url)
        .logical(&[("a", "up-a", FIRST), ("b", "up-b", SECOND)]);
    for (key, value) in extra_env {
        builder = builder.env(key, value);
    }
    let gateway = builder.start().await;
    Pair { a, b, gateway }
}
