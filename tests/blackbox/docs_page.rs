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

#[tokio::test]
async fn the_docs_page_renders_the_chat_completions_endpoint_in_headless_chromium() {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
        .expect(
            "headless Chromium is needed for this test: apt-get install chromium (.ci/run does)",
        );
    let gateway = Gateway::builder().start().await;
    let profile = tempfile::tempdir().expect("profile dir");
    let url = format!("{}/docs", gateway.url);
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
    let dom = String::from_utf8_lossy(&output.stdout);
    // Only the page's script puts these in the DOM: they prove it fetched and rendered the spec.
    assert!(
        dom.contains("/v1/chat/completions"),
        "rendered DOM:\n{dom}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        dom.contains("Create a chat completion"),
        "rendered DOM:\n{dom}"
    );
    assert!(dom.contains("APIProxy 0.1.0"), "title from the spec: {dom}");
}
