//! Hot reload (SPEC 8): `SIGHUP` and `POST /admin/reload` read the environment file and
//! `LOGICAL_MODELS_FILE` again; a valid configuration goes in whole, an invalid one is refused
//! with its reasons while the running one keeps serving, and streams already running finish.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

/// A gateway whose configuration lives in files the test rewrites: `env_file` (given with
/// `--env-file`) and `models_file` (named by `LOGICAL_MODELS_FILE` inside it).
struct Reloadable {
    url: String,
    env_file: PathBuf,
    models_file: PathBuf,
    log_path: PathBuf,
    child: Child,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// The environment-file lines of an OpenAI-vendor provider `id` at `url`. The name has an
/// unquoted space, as python-dotenv and Docker env files allow.
fn provider_lines(id: &str, url: &str) -> String {
    format!(
        "LLM_PROVIDER_{id}_NAME=Provider {id}\nLLM_PROVIDER_{id}_BASE_URL={url}\nLLM_PROVIDER_{id}_API_KEY={}\n",
        provider_key(id)
    )
}

fn logical(id: &str, provider: &str, model: &str) -> Value {
    json!({"logical_id": id, "upstreams": [{"provider_id": provider, "model_id": model, "base_weight": 1.0}]})
}

impl Reloadable {
    /// Starts `apiproxy serve` with `env` (after the `LOGICAL_MODELS_FILE` line) as its
    /// environment file, `models` as its logical-models file and `real_env` as the only
    /// variables of its real environment (besides PATH).
    async fn start(env: &str, models: &Value, real_env: &[(&str, &str)]) -> Reloadable {
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let env_file = dir.path().join("gateway.env");
            let models_file = dir.path().join("models.json");
            let log_path = dir.path().join("gateway.log");
            let port = free_port();
            let mut command = clean_command(apiproxy_bin());
            command
                .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
                .arg("--env-file")
                .arg(&env_file)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(
                    std::fs::File::create(&log_path).expect("create log"),
                ));
            for (key, value) in real_env {
                command.env(key, value);
            }
            std::fs::write(&models_file, models.to_string()).expect("write models");
            std::fs::write(
                &env_file,
                format!("LOGICAL_MODELS_FILE={}\n{env}", models_file.display()),
            )
            .expect("write env file");
            let child = command.spawn().expect("spawn apiproxy");
            let mut gateway = Reloadable {
                url: format!("http://127.0.0.1:{port}"),
                env_file,
                models_file,
                log_path,
                child,
                client: client(),
                _dir: dir,
            };
            if gateway.healthy().await {
                return gateway;
            }
            if !gateway.log().contains("cannot listen on") {
                panic!("apiproxy did not start; log:\n{}", gateway.log());
            }
        }
        panic!("apiproxy found no free port in 5 tries");
    }

    async fn healthy(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(response) = self.client.get(format!("{}/health", self.url)).send().await
                && response.status().is_success()
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Rewrites the environment file (the `LOGICAL_MODELS_FILE` line kept) and the models file.
    fn rewrite(&self, env: &str, models: &Value) {
        std::fs::write(&self.models_file, models.to_string()).expect("rewrite models");
        std::fs::write(
            &self.env_file,
            format!("LOGICAL_MODELS_FILE={}\n{env}", self.models_file.display()),
        )
        .expect("rewrite env file");
    }

    fn sighup(&self) {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -HUP failed");
    }

    async fn reload_as(&self, authorization: &str) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/admin/reload", self.url))
            .header("authorization", authorization)
            .send()
            .await
            .expect("POST /admin/reload");
        let status = response.status().as_u16();
        (status, json_of(response).await)
    }

    async fn reload(&self) -> (u16, Value) {
        self.reload_as(AUTH).await
    }

    fn chat_request(&self, body: &Value) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}/v1/chat/completions", self.url))
            .header("authorization", AUTH)
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    async fn chat(&self, model: &str) -> reqwest::Response {
        self.chat_request(&chat_body(model, "hello"))
            .send()
            .await
            .expect("POST /v1/chat/completions")
    }

    async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.url))
            .header("authorization", AUTH)
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }
}

impl Drop for Reloadable {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- apiproxy log ----\n{}\n----", self.log());
        }
    }
}

#[tokio::test]
async fn sighup_adds_a_provider_and_a_logical_model_that_then_answer() {
    let a = Mock::start("a", &["up-a"]);
    let b = Mock::start("b", &["up-b"]);
    // The real environment says where `a` is; the file's value for it is ignored, before and
    // after the reload (the real environment wins, SPEC 2).
    let real = [("LLM_PROVIDER_a_BASE_URL", a.url.as_str())];
    let closed = closed_url();
    let env = format!("LLM_PROVIDERS=a\n{}", provider_lines("a", &closed));
    let gateway = Reloadable::start(&env, &json!([logical(LOGICAL, "a", "up-a")]), &real).await;
    assert_eq!(gateway.chat(LOGICAL).await.status(), 200);
    assert_eq!(gateway.chat("second").await.status(), 404);

    gateway.rewrite(
        &format!(
            "LLM_PROVIDERS=a,b\n{}{}",
            provider_lines("a", &closed),
            provider_lines("b", &b.url)
        ),
        &json!([
            logical(LOGICAL, "a", "up-a"),
            logical("second", "b", "up-b")
        ]),
    );
    gateway.sighup();

    let response = eventually(Duration::from_secs(10), "the reloaded model", || async {
        let response = gateway.chat("second").await;
        (response.status() == 200).then_some(response)
    })
    .await;
    assert_eq!(served_by(&response), "b");
    let answer = json_of(response).await;
    assert!(
        answer["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|text| text.starts_with("Hello from b!")),
        "{answer}"
    );
    // The old model still answers, from `a` where the real environment puts it.
    let old = gateway.chat(LOGICAL).await;
    assert_eq!(old.status(), 200);
    assert_eq!(served_by(&old), "a");
    // The new provider is listed with the name the file gave it.
    let providers: Value = json_of(
        gateway
            .client
            .get(format!("{}/providers/b", gateway.url))
            .header("authorization", AUTH)
            .send()
            .await
            .expect("GET /providers/b"),
    )
    .await;
    assert_eq!(providers["name"], "Provider b", "{providers}");
    assert!(
        gateway.log().contains("configuration reloaded"),
        "{}",
        gateway.log()
    );
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("apiproxy_config_reloads_total{outcome=\"applied\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_invalid_configuration_is_refused_with_its_variable_and_the_old_one_serves() {
    let a = Mock::start("a", &["up-a"]);
    let env = format!("LLM_PROVIDERS=a\n{}", provider_lines("a", &a.url));
    let models = json!([logical(LOGICAL, "a", "up-a")]);
    let gateway = Reloadable::start(&env, &models, &[]).await;

    // A bad variable.
    gateway.rewrite(&format!("{env}LLM_PROVIDER_a_WEIGHT=heavy\n"), &models);
    let (status, body) = gateway.reload().await;
    assert_eq!(status, 422, "{body}");
    let error = assert_error_shape(&body);
    assert_eq!(error["code"], "invalid_configuration", "{body}");
    assert_eq!(error["param"], "LLM_PROVIDER_a_WEIGHT", "{body}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("LLM_PROVIDER_a_WEIGHT") && m.contains("heavy")),
        "{body}"
    );
    let response = gateway.chat(LOGICAL).await;
    assert_eq!(response.status(), 200);
    assert_eq!(served_by(&response), "a");

    // A logical model on a provider that does not exist.
    gateway.rewrite(&env, &json!([logical(LOGICAL, "nowhere", "up-a")]));
    let (status, body) = gateway.reload().await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["param"], "LOGICAL_MODELS_FILE", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("nowhere")),
        "{body}"
    );
    let model = json_of(
        gateway
            .client
            .get(format!("{}/logical-models/{LOGICAL}", gateway.url))
            .header("authorization", AUTH)
            .send()
            .await
            .expect("GET /logical-models"),
    )
    .await;
    assert_eq!(model["upstreams"][0]["provider_id"], "a", "{model}");

    // A SIGHUP with the broken file: logged at error level, and the gateway serves on.
    gateway.rewrite(&format!("{env}LLM_PROVIDER_a_WEIGHT=heavy\n"), &models);
    gateway.sighup();
    eventually(
        Duration::from_secs(10),
        "the refusal in the log",
        || async {
            let log = gateway.log();
            (log.contains("ERROR")
                && log.contains("reload refused")
                && log.contains("LLM_PROVIDER_a_WEIGHT"))
            .then_some(())
        },
    )
    .await;
    assert_eq!(gateway.chat(LOGICAL).await.status(), 200);
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains("apiproxy_config_reloads_total{outcome=\"refused\"} 3"),
        "{metrics}"
    );

    // Fixed: the reload goes in and says what changed.
    gateway.rewrite(
        &format!("{env}LLM_PROVIDER_a_WEIGHT=2\nUPSTREAM_TIMEOUT=30\n"),
        &models,
    );
    let (status, report) = gateway.reload().await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["providers"]["changed"], json!(["a"]), "{report}");
    assert_eq!(report["providers"]["added"], json!([]), "{report}");
    assert_eq!(report["logical_models"]["upserted"], json!([]), "{report}");
    assert!(
        report["warnings"]
            .as_array()
            .is_some_and(|w| w.iter().any(|w| w
                .as_str()
                .is_some_and(|w| w.starts_with("UPSTREAM_TIMEOUT")))),
        "{report}"
    );
}

#[tokio::test]
async fn a_stream_finishes_on_its_provider_when_a_reload_removes_it() {
    let a = Mock::start("a", &["up-a"]);
    let b = Mock::start("b", &["up-b"]);
    let env = format!("LLM_PROVIDERS=a\n{}", provider_lines("a", &a.url));
    let gateway = Reloadable::start(&env, &json!([logical(LOGICAL, "a", "up-a")]), &[]).await;
    // Eight words 400 ms apart: the stream runs for over three seconds.
    a.fault(json!({"event_delay_ms": 400})).await;

    let mut stream = gateway
        .chat_request(&streamed_chat_body(LOGICAL, "Hi"))
        .send()
        .await
        .expect("start the stream");
    assert_eq!(stream.status(), 200);
    assert_eq!(served_by(&stream), "a");
    let mut text = String::new();
    let first = stream.chunk().await.expect("first chunk").expect("a chunk");
    text.push_str(&String::from_utf8_lossy(&first));

    // `a` goes; the logical model moves to `b`.
    gateway.rewrite(
        &format!("LLM_PROVIDERS=b\n{}", provider_lines("b", &b.url)),
        &json!([logical(LOGICAL, "b", "up-b")]),
    );
    let (status, report) = gateway.reload().await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["providers"]["removed"], json!(["a"]), "{report}");
    assert_eq!(report["providers"]["added"], json!(["b"]), "{report}");
    assert_eq!(
        report["logical_models"]["upserted"],
        json!([LOGICAL]),
        "{report}"
    );

    let mut after_reload = String::new();
    while let Some(chunk) = stream.chunk().await.expect("the rest of the stream") {
        after_reload.push_str(&String::from_utf8_lossy(&chunk));
    }
    // The stream was still running when the reload had answered: content came after it.
    assert!(
        !streamed_text(&sse_data(&after_reload)).is_empty(),
        "no content after the reload: {after_reload}"
    );
    text.push_str(&after_reload);
    let events = sse_data(&text);
    assert!(!has_error_event(&events), "{text}");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    assert!(
        streamed_text(&events).starts_with("Hello from a!"),
        "{text}"
    );
    assert!(streamed_text(&events).contains("word"), "{text}");

    // New requests go to the new configuration.
    let after = gateway.chat(LOGICAL).await;
    assert_eq!(after.status(), 200);
    assert_eq!(served_by(&after), "b");
    a.clear_fault().await;
}

#[tokio::test]
async fn only_the_admin_token_may_reload() {
    let a = Mock::start("a", &["up-a"]);
    let env = format!(
        "APIPROXY_ADMIN_TOKEN=admin-secret\nLLM_PROVIDERS=a\n{}",
        provider_lines("a", &a.url)
    );
    let gateway = Reloadable::start(&env, &json!([logical(LOGICAL, "a", "up-a")]), &[]).await;

    let (status, body) = gateway.reload_as(AUTH).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "admin_required", "{body}");
    let (status, body) = gateway.reload_as("Bearer wrong").await;
    assert_eq!(status, 401, "{body}");
    let (status, report) = gateway.reload_as("Bearer admin-secret").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["providers"]["changed"], json!([]), "{report}");
    // Nothing changed, so no variable waits for a restart (the configuration's own warnings,
    // such as the default gateway token's, are repeated).
    assert!(
        report["warnings"].as_array().is_some_and(|w| !w
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("restart")))),
        "{report}"
    );
}

#[test]
fn check_config_and_start_up_read_the_same_files_as_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models.json");
    std::fs::write(&models, json!([logical("m", "a", "up-a")]).to_string()).expect("models");
    let env_file = dir.path().join("gateway.env");
    std::fs::write(
        &env_file,
        format!(
            "LOGICAL_MODELS_FILE={}\nLLM_PROVIDERS=a\n{}",
            models.display(),
            provider_lines("a", "http://127.0.0.1:9")
        ),
    )
    .expect("env file");
    let output = clean_command(apiproxy_bin())
        .args(["check-config", "--env-file"])
        .arg(&env_file)
        .current_dir(dir.path())
        .output()
        .expect("run check-config");
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("a (Provider a)"), "{text}");
    assert!(text.contains("m -> a/up-a@1"), "{text}");
    assert!(text.contains("configuration OK"), "{text}");

    // An invalid value still stops check-config with the variable named.
    std::fs::write(
        &env_file,
        format!(
            "LLM_PROVIDERS=a\n{}LLM_PROVIDER_a_WEIGHT=heavy\n",
            provider_lines("a", "http://127.0.0.1:9")
        ),
    )
    .expect("env file");
    let output = clean_command(apiproxy_bin())
        .args(["check-config", "--env-file"])
        .arg(&env_file)
        .current_dir(dir.path())
        .output()
        .expect("run check-config");
    let text = output_text(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("LLM_PROVIDER_a_WEIGHT"), "{text}");
}

#[tokio::test]
async fn with_redis_one_instance_applies_the_file_s_changes_and_the_next_finds_them_done() {
    let redis = crate::redis_server::RedisServer::start();
    let a = Mock::start("a", &["up-a"]);
    let env = format!(
        "REDIS_URL={}\nLLM_PROVIDERS=a\n{}",
        redis.url(),
        provider_lines("a", &a.url)
    );
    let first = json!([
        logical(LOGICAL, "a", "up-a"),
        logical("retired", "a", "up-a")
    ]);
    let one = Reloadable::start(&env, &first, &[]).await;
    let two = Reloadable::start(&env, &first, &[]).await;
    let get = |gateway: &Reloadable, id: &str| {
        gateway
            .client
            .get(format!("{}/logical-models/{id}", gateway.url))
            .header("authorization", AUTH)
            .send()
    };
    // Start-up writes the file's models to Redis in the background.
    eventually(
        Duration::from_secs(10),
        "the seeded model in Redis",
        || async {
            let response = get(&two, "retired").await.ok()?;
            (response.status() == 200).then_some(())
        },
    )
    .await;

    let second = json!([logical(LOGICAL, "a", "up-a"), logical("fresh", "a", "up-a")]);
    one.rewrite(&env, &second);
    two.rewrite(&env, &second);
    let (status, report) = one.reload().await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["logical_models"]["upserted"],
        json!(["fresh"]),
        "{report}"
    );
    assert_eq!(
        report["logical_models"]["removed"],
        json!(["retired"]),
        "{report}"
    );

    // The other instance sees the models at once (they live in Redis) ...
    let response = get(&two, "retired").await.expect("GET retired");
    assert_eq!(response.status(), 404);
    assert_eq!(two.chat("fresh").await.status(), 200);
    // ... and its own reload finds nothing left to do.
    let (status, report) = two.reload().await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["logical_models"]["upserted"], json!([]), "{report}");
    assert_eq!(report["logical_models"]["removed"], json!([]), "{report}");
    assert_eq!(report["logical_models"]["kept"], json!([]), "{report}");
}
