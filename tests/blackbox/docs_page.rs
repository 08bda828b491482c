//! `/openapi.json` and `/docs` are open, and the page renders the API in a real browser (headless
//! Chromium, from Debian's `chromium` package, which `.ci/run` installs).

use std::process::Command;

use crate::support::*;

#[tokio::test]
async fn the_openapi_document_and_the_docs_page_need_no_token() {
    let gateway = Gateway::builder().start().await;
    let spec = reqwest::get(format!("{}/openapi.json", gateway.url))
        .await
        .expect("send");
    assert_eq!(spec.status(), 200);
    let spec = json_of(spec).await;
    assert_eq!(
        spec["paths"]["/v1/chat/completions"]["post"]["summary"],
        "Create a chat completion"
    );
    for path in [
        "/v1/messages",
        "/v1/responses",
        "/providers",
        "/logical-models/{id}",
        "/routing/decide",
        "/metrics",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} is documented");
    }
    let page = reqwest::get(format!("{}/docs", gateway.url))
        .await
        .expect("send");
    assert_eq!(page.status(), 200);
    assert!(
        header(&page, "content-type")
            .unwrap_or_default()
            .starts_with("text/html")
    );
}

/// The DOM headless Chromium ends with after loading `url` and running its scripts.
async fn rendered_dom(url: String) -> (String, String) {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .expect(
            "headless Chromium is needed for this test: apt-get install chromium (.ci/run does)",
        );
    let profile = tempfile::tempdir().expect("profile dir");
    let profile_flag = format!("--user-data-dir={}", profile.path().display());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=10000",
                &profile_flag,
                "--dump-dom",
                &url,
            ])
            .output()
    })
    .await
    .expect("join")
    .expect("run chromium");
    (
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[tokio::test]
async fn the_docs_page_renders_the_chat_completions_endpoint_in_headless_chromium() {
    let gateway = Gateway::builder().start().await;
    let (dom, stderr) = rendered_dom(format!("{}/docs", gateway.url)).await;
    // Only the page's script puts these in the DOM: they prove it fetched and rendered the spec.
    assert!(
        dom.contains("/v1/chat/completions"),
        "rendered DOM:\n{dom}\nstderr:\n{stderr}"
    );
    assert!(
        dom.contains("Create a chat completion"),
        "rendered DOM:\n{dom}"
    );
    assert!(dom.contains("APIProxy 0.1.0"), "title from the spec: {dom}");
    // Markdown in descriptions is rendered: backticks become code, not raw text.
    assert!(
        dom.contains("<code>APIPROXY_AUTH_TOKEN</code>"),
        "inline code rendered: {dom}"
    );
    assert!(
        !dom.contains("`APIPROXY_AUTH_TOKEN`"),
        "no raw backticks left: {dom}"
    );
    // Every operation has its "Send" form, and the page has the token field.
    assert!(dom.contains("id=\"token\""), "the token field: {dom}");
    assert!(
        dom.matches("class=\"try\"").count() >= 20,
        "a Send form per operation"
    );
}

/// The page sends requests itself: `#run=getHealth` opens `GET /health` and sends it, and the
/// gateway's answer appears in the page.
#[tokio::test]
async fn the_docs_page_sends_a_request_and_shows_the_answer() {
    let gateway = Gateway::builder().start().await;
    let (dom, stderr) = rendered_dom(format!("{}/docs#run=getHealth", gateway.url)).await;
    assert!(
        dom.contains("data-status=\"200\""),
        "the answer's status is shown: {dom}\nstderr:\n{stderr}"
    );
    assert!(
        dom.contains("&quot;status&quot;:&quot;ok&quot;") || dom.contains("\"status\":\"ok\""),
        "the answer's body is shown: {dom}"
    );
}
