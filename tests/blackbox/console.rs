//! The operators' console (`/ui`, issue 20) in a real browser: Debian's headless Chromium driven
//! over WebDriver (`chromedriver`, from the `chromium-driver` package, which `.ci/run` installs)
//! with the `fantoccini` client. The static files' headers are checked without a browser.
//!
//! Each browser test saves a PNG of every page it visits to `target/console-screenshots/`, and
//! with `UPDATE_SCREENSHOTS=1` also to `docs/screenshots/` (the README shows those).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::redis_server::RedisServer;
use crate::support::*;

const ADMIN: &str = "console-admin-secret";
/// How long a page gets to show what a step waits for (the overview polls every 2 s).
const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// chromedriver and the browser

/// `chromedriver` on a free port, in its own process group so that the Chromium it starts goes
/// with it: Drop kills the whole group, also when a test fails half-way.
struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver_path() -> &'static str {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .expect(
            "chromedriver is needed for this test: apt-get install chromium chromium-driver \
             (.ci/run does)",
        )
}

async fn start_driver() -> Driver {
    use std::os::unix::process::CommandExt;
    let port = free_port();
    let child = Command::new(chromedriver_path())
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _profile: tempfile::tempdir().expect("profile dir"),
    };
    let probe = client();
    eventually(Duration::from_secs(15), "chromedriver ready", || async {
        let status = probe
            .get(format!("{}/status", driver.url))
            .send()
            .await
            .ok()?;
        let body: Value = serde_json::from_str(&status.text().await.ok()?).ok()?;
        (body["value"]["ready"] == true).then_some(())
    })
    .await;
    driver
}

/// A headless Chromium session, 1280x800.
async fn browser(driver: &Driver) -> Client {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|path| Path::new(path).exists())
        .expect("headless Chromium is needed for this test: apt-get install chromium");
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                "--window-size=1280,800",
                format!("--user-data-dir={}", driver._profile.path().display()),
            ],
        },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!("a JSON object literal")
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session in headless Chromium");
    // The viewport, not the outer window, is what the screenshots show.
    let inner: Value = client
        .execute("return [window.innerWidth, window.innerHeight]", vec![])
        .await
        .expect("viewport size");
    if inner != json!([1280, 800]) {
        let (w, h) = (
            inner[0].as_i64().unwrap_or(1280),
            inner[1].as_i64().unwrap_or(800),
        );
        let outer = |want: i64, got: i64| u32::try_from((2 * want - got).max(want)).unwrap_or(1280);
        let _ = client.set_window_size(outer(1280, w), outer(800, h)).await;
    }
    client
}

/// Runs `expression` (JavaScript) in the page until it is truthy; panics with the page's text
/// after [`PATIENCE`].
async fn until(client: &Client, expression: &str, what: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    let script = format!("return ({expression});");
    loop {
        let value = client.execute(&script, vec![]).await.unwrap_or(Value::Null);
        let truthy = match &value {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
            Value::String(s) => !s.is_empty(),
            _ => true,
        };
        if truthy {
            return value;
        }
        if Instant::now() > deadline {
            let text = client
                .execute("return document.body.innerText", vec![])
                .await
                .unwrap_or_default();
            panic!("the console never showed {what} ({expression}); the page says:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn js(client: &Client, expression: &str) -> Value {
    client
        .execute(&format!("return ({expression});"), vec![])
        .await
        .unwrap_or_else(|e| panic!("{expression}: {e}"))
}

async fn type_into(client: &Client, css: &str, text: &str) {
    let field = client.find(Locator::Css(css)).await.expect(css);
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

async fn open(client: &Client, gateway: &Gateway, hash: &str) {
    client
        .goto(&format!("{}/ui{hash}", gateway.url))
        .await
        .expect("navigate");
}

/// Saves what the browser shows as `<name>.png` in `target/console-screenshots/`, and in
/// `docs/screenshots/` too when `UPDATE_SCREENSHOTS=1`.
async fn screenshot(client: &Client, name: &str) {
    // Let the last fetches and the charts settle.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let png = client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG for {name}");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("target/console-screenshots")];
    if std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        dirs.push(root.join("docs/screenshots"));
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("console-{name}.png")), &png).expect("write screenshot");
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway under test

/// Two mock providers (`mock-a`, `mock-b`, as `apiproxy demo` has) behind the logical model
/// `demo`, with prices (so spend shows) and an admin token.
fn demo_gateway(a: &Mock, b: &Mock) -> GatewayBuilder {
    Gateway::builder()
        .provider("mock-a", &a.url)
        .provider("mock-b", &b.url)
        .env("LLM_PROVIDER_mock-a_NAME", "Demo mock-a")
        .env("LLM_PROVIDER_mock-b_NAME", "Demo mock-b")
        .env("LLM_PROVIDER_mock-a_MAX_QPS", "50")
        .env("LLM_PROVIDER_mock-a_COST_INPUT", "2.5")
        .env("LLM_PROVIDER_mock-a_COST_OUTPUT", "10")
        .env("LLM_PROVIDER_mock-b_COST_INPUT", "1.25")
        .env("LLM_PROVIDER_mock-b_COST_OUTPUT", "5")
        .env("APIPROXY_ADMIN_TOKEN", ADMIN)
        .logical_models(json!([{
            "logical_id": "demo",
            "description": "Demo logical model over two mock providers (weights 3:1)",
            "upstreams": [
                {"provider_id": "mock-a", "model_id": "demo-model", "base_weight": 3.0},
                {"provider_id": "mock-b", "model_id": "demo-model", "base_weight": 1.0},
            ],
        }]))
}

fn demo_mocks() -> (Mock, Mock) {
    (
        Mock::start("mock-a", &["demo-model"]),
        Mock::start("mock-b", &["demo-model"]),
    )
}

/// `GET path` with the admin token: status and JSON body.
async fn admin_get(gateway: &Gateway, path: &str) -> (u16, Value) {
    let response = gateway
        .client
        .get(format!("{}{path}", gateway.url))
        .header("authorization", format!("Bearer {ADMIN}"))
        .send()
        .await
        .expect("send");
    (response.status().as_u16(), json_of(response).await)
}

/// A chat request with `credential` (a Bearer value); returns its request id.
async fn chat_with(gateway: &Gateway, credential: &str, prompt: &str) -> String {
    let mut body = chat_body("demo", prompt);
    // A bound on the answer, so a key's budget check reserves a small amount.
    body["max_tokens"] = json!(64);
    let response = gateway
        .client
        .post(format!("{}/v1/chat/completions", gateway.url))
        .header("authorization", format!("Bearer {credential}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("send chat");
    let id = header(&response, "x-request-id").map(str::to_string);
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(status, 200, "chat through the gateway: {text}");
    id.expect("x-request-id")
}

// ---------------------------------------------------------------------------------------------
// Steps shared by the tests

/// A wrong admin token, then the gateway (client) token: the login form stays, with the reason,
/// and no data is in the page. Then the admin token logs in. `shoot`: save the login screenshot.
async fn refused_then_logged_in(client: &Client, gateway: &Gateway, shoot: bool) {
    open(client, gateway, "").await;
    until(
        client,
        "!document.getElementById('login').hidden",
        "the login form",
    )
    .await;
    for (wrong, status) in [("not-the-admin-token", "401"), (TOKEN, "403")] {
        type_into(client, "#token", wrong).await;
        click(client, "#login-button").await;
        let error = until(
            client,
            "!document.getElementById('login-error').hidden && document.getElementById('login-error').textContent",
            "the login error",
        )
        .await;
        let error = error.as_str().unwrap_or_default().to_string();
        assert!(error.contains(status), "{wrong}: {error}");
        assert_eq!(
            js(client, "document.getElementById('app').hidden").await,
            true
        );
        assert_eq!(
            js(client, "sessionStorage.length").await,
            0,
            "a refused token is not kept"
        );
        let text = js(client, "document.body.innerText").await;
        let text = text.as_str().unwrap_or_default();
        assert!(
            !text.contains("mock-a") && !text.contains("Demo mock"),
            "no data behind a refused token: {text}"
        );
        // Clear the error so the next attempt's shows afresh.
        js(
            client,
            "(document.getElementById('login-error').hidden = true)",
        )
        .await;
    }
    type_into(client, "#token", "not-the-admin-token").await;
    click(client, "#login-button").await;
    until(
        client,
        "!document.getElementById('login-error').hidden",
        "the login error",
    )
    .await;
    if shoot {
        screenshot(client, "login").await;
    }

    type_into(client, "#token", ADMIN).await;
    click(client, "#login-button").await;
    until(
        client,
        "!document.getElementById('app').hidden && document.body.dataset.page",
        "the console after logging in",
    )
    .await;
    assert_eq!(
        js(client, "sessionStorage.getItem('apiproxy.console.token')").await,
        ADMIN,
        "the token is kept in the tab's session storage"
    );
    assert!(
        !js(client, "location.href")
            .await
            .as_str()
            .unwrap_or_default()
            .contains(ADMIN),
        "never in the URL"
    );
}

/// Providers: both demo providers, and a health check run from the page.
async fn providers_page(client: &Client, gateway: &Gateway) {
    open(client, gateway, "#/providers").await;
    until(
        client,
        "document.querySelector('[data-provider=\"mock-a\"]') && document.querySelector('[data-provider=\"mock-b\"]')",
        "both demo providers",
    )
    .await;
    click(client, "[data-provider=\"mock-a\"] button.health-check").await;
    let status = until(
        client,
        "(document.querySelector('[data-provider=\"mock-a\"] .health-result') || {}).dataset?.status",
        "the health check's answer",
    )
    .await;
    assert_eq!(status, "healthy");
    until(
        client,
        "document.querySelectorAll('[data-provider=\"mock-b\"] .chip').length > 0",
        "mock-b's models",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn the_console_files_are_public_with_a_strict_content_security_policy() {
    let gateway = Gateway::builder().start().await;
    for (path, content_type) in [
        ("/ui", "text/html"),
        ("/ui/", "text/html"),
        ("/ui/console.js", "text/javascript"),
        ("/ui/console.css", "text/css"),
    ] {
        let response = reqwest::get(format!("{}{path}", gateway.url))
            .await
            .expect("send");
        assert_eq!(response.status(), 200, "{path} needs no token");
        assert!(
            header(&response, "content-type")
                .unwrap_or_default()
                .starts_with(content_type),
            "{path}"
        );
        let csp = header(&response, "content-security-policy").unwrap_or_default();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {directive} in {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header(&response, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&response, "cache-control"), Some("no-cache"));
        assert_eq!(header(&response, "referrer-policy"), Some("no-referrer"));
    }
    // The page holds no inline script or style (the policy would block them), and no CDN.
    let page = reqwest::get(format!("{}/ui", gateway.url))
        .await
        .expect("send")
        .text()
        .await
        .expect("page");
    assert!(page.contains("<script src=\"/ui/console.js\""), "{page}");
    assert!(!page.contains("<style"), "no inline style");
    assert!(!page.contains("style=\""), "no style attributes");
    assert_eq!(page.matches("<script").count(), 1, "one external script");
    assert!(!page.contains("https://"), "nothing from another origin");
    let script = reqwest::get(format!("{}/ui/console.js", gateway.url))
        .await
        .expect("send")
        .text()
        .await
        .expect("script");
    assert!(
        !script.contains("innerHTML"),
        "data is never parsed as HTML"
    );
    assert!(
        !script.contains("localStorage"),
        "the token stays in sessionStorage"
    );
}

/// The whole tour on the in-memory store: login refused then accepted, providers, a weight
/// changed and saved, a chat request seen live, the overview's charts, a key created and used.
#[tokio::test]
async fn the_console_in_headless_chromium() {
    let (a, b) = demo_mocks();
    let gateway = demo_gateway(&a, &b).start().await;
    let driver = start_driver().await;
    let client = browser(&driver).await;

    refused_then_logged_in(&client, &gateway, true).await;
    // Some traffic first, for the providers' figures and the overview's charts.
    for i in 0..6 {
        chat_with(&gateway, TOKEN, &format!("warm-up {i}")).await;
    }
    providers_page(&client, &gateway).await;
    screenshot(&client, "providers").await;

    // Logical models: the list, then the editor. A bad weight gets the API's error inline; a
    // good one is saved and the API has it.
    open(&client, &gateway, "#/models").await;
    until(
        &client,
        "document.querySelector('tr[data-model=\"demo\"] a')",
        "the model list",
    )
    .await;
    click(&client, "tr[data-model=\"demo\"] a").await;
    until(
        &client,
        "document.querySelector('#edit-model tr.upstream')",
        "the editor",
    )
    .await;
    type_into(
        &client,
        "#edit-model tr.upstream input[name=base_weight]",
        "-2",
    )
    .await;
    click(&client, "#save-model").await;
    let param = until(
        &client,
        "(document.querySelector('#edit-model .form-error') || {}).dataset?.param",
        "the API's validation error",
    )
    .await;
    assert_eq!(param, "upstreams[0].base_weight");
    assert_eq!(
        js(
            &client,
            "document.querySelector('#edit-model input.invalid').name"
        )
        .await,
        "base_weight",
        "the failing field is marked"
    );
    let (_, unchanged) = admin_get(&gateway, "/logical-models/demo").await;
    assert_eq!(unchanged["upstreams"][0]["base_weight"], 3.0);
    type_into(
        &client,
        "#edit-model tr.upstream input[name=base_weight]",
        "5",
    )
    .await;
    click(&client, "#save-model").await;
    until(
        &client,
        "document.querySelector('[data-saved]')",
        "the save confirmed",
    )
    .await;
    let (status, saved) = admin_get(&gateway, "/logical-models/demo").await;
    assert_eq!(status, 200);
    assert_eq!(saved["upstreams"][0]["provider_id"], "mock-a");
    assert_eq!(saved["upstreams"][0]["base_weight"], 5.0, "{saved}");
    assert_eq!(saved["upstreams"][1]["base_weight"], 1.0, "{saved}");
    assert_eq!(
        js(
            &client,
            "document.querySelector('#edit-form-error, #edit-model .form-error') === null"
        )
        .await,
        true,
        "the error is gone once saved"
    );
    click(&client, "#explain").await;
    let bars = until(
        &client,
        "document.querySelectorAll('#explanation svg rect[data-candidate]').length",
        "the candidates' scores",
    )
    .await;
    assert_eq!(bars, 2, "one bar per candidate");
    screenshot(&client, "models").await;

    // Live requests: a chat request sent now shows up with its request id.
    open(&client, &gateway, "#/live").await;
    until(
        &client,
        "document.querySelector('.live-state').dataset.state === 'on'",
        "the live feed connected",
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(chat_with(&gateway, TOKEN, &format!("live {i}")).await);
    }
    let last = ids.last().expect("ids");
    until(
        &client,
        &format!("document.querySelector('tr[data-request-id=\"{last}\"]')"),
        "the chat request in live requests",
    )
    .await;
    let row = js(
        &client,
        &format!("document.querySelector('tr[data-request-id=\"{last}\"]').innerText"),
    )
    .await;
    let row = row.as_str().unwrap_or_default();
    assert!(row.contains("demo") && row.contains("200"), "{row}");
    assert!(row.contains("gateway"), "the admin token's key name: {row}");
    // Newest first, and the filter narrows by provider.
    assert_eq!(
        js(
            &client,
            "document.querySelector('.live-table tbody tr').dataset.requestId"
        )
        .await,
        last.as_str()
    );
    type_into(&client, "#live-filter", "no-such-provider").await;
    until(
        &client,
        "document.querySelectorAll('tr[data-request-id]').length === 0",
        "the filter hiding every row",
    )
    .await;
    type_into(&client, "#live-filter", "").await;
    js(
        &client,
        "document.getElementById('live-filter').dispatchEvent(new Event('input'))",
    )
    .await;
    until(
        &client,
        "document.querySelectorAll('tr[data-request-id]').length >= 4",
        "the rows back",
    )
    .await;
    screenshot(&client, "live").await;

    // Overview: the charts drawn from /admin/stats, over a few seconds of traffic.
    open(&client, &gateway, "#/overview").await;
    for i in 0..16 {
        chat_with(&gateway, TOKEN, &format!("overview {i}")).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    until(
        &client,
        "document.querySelector('[data-chart=\"rps\"] svg path.series')",
        "the requests-per-second line",
    )
    .await;
    let charts = js(&client, "document.querySelectorAll('.chart svg').length").await;
    assert_eq!(charts, 6, "six charts");
    until(
        &client,
        "document.querySelector('[data-chart=\"upstream\"] svg path.series')",
        "the upstream latency line",
    )
    .await;
    screenshot(&client, "overview").await;

    // Keys: create one (its secret shown once), use it, see its spend.
    open(&client, &gateway, "#/keys").await;
    until(
        &client,
        "document.querySelector('#create-key')",
        "the key form",
    )
    .await;
    type_into(&client, "#create-key input[name=name]", "ci-bot").await;
    type_into(&client, "#create-key input[name=team]", "platform").await;
    type_into(&client, "#create-key input[name=budget_usd]", "0.002").await;
    click(&client, "#create-key button[type=submit]").await;
    let secret = until(
        &client,
        "(document.querySelector('#new-secret code') || {}).textContent",
        "the new key's secret",
    )
    .await;
    let secret = secret.as_str().unwrap_or_default().to_string();
    assert!(secret.starts_with("sk-apx-"), "{secret}");
    let (_, keys) = admin_get(&gateway, "/keys").await;
    assert_eq!(keys["keys"][0]["name"], "ci-bot", "{keys}");
    for i in 0..3 {
        chat_with(&gateway, &secret, &format!("from ci-bot {i}")).await;
    }
    client.refresh().await.expect("reload the keys page");
    until(
        &client,
        "[...document.querySelectorAll('.keys-table .bar')].some(b => Number(b.dataset.share) > 0)",
        "ci-bot's budget used",
    )
    .await;
    until(
        &client,
        "document.querySelectorAll('.spend svg rect[data-group]').length >= 2",
        "the spend bars",
    )
    .await;
    screenshot(&client, "keys").await;

    // Log out: the token is gone and the login form is back.
    click(&client, "#logout").await;
    until(
        &client,
        "!document.getElementById('login').hidden",
        "the login form",
    )
    .await;
    assert_eq!(js(&client, "sessionStorage.length").await, 0);
    client.close().await.expect("close the browser");
}

/// Login and providers on the Redis store.
#[tokio::test]
async fn the_console_with_the_redis_store() {
    let redis = RedisServer::start();
    let (a, b) = demo_mocks();
    let gateway = demo_gateway(&a, &b).redis(&redis.url()).start().await;
    let driver = start_driver().await;
    let client = browser(&driver).await;
    refused_then_logged_in(&client, &gateway, false).await;
    chat_with(&gateway, TOKEN, "on redis").await;
    providers_page(&client, &gateway).await;
    client.close().await.expect("close the browser");
}
