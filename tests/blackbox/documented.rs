//! What the README and .env.example tell a newcomer to run works as written: `.env.example` is a
//! valid configuration, and `apiproxy demo` serves the curl line it prints.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn env_example_is_accepted_by_check_config() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".env.example");
    let output = clean_command(apiproxy_bin())
        .args(["check-config", "--env-file"])
        .arg(&example)
        .output()
        .expect("run check-config");
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("configuration OK"), "{text}");
}

/// `apiproxy demo` on `port`, as a newcomer runs it (stdout as given, logs dropped).
fn spawn_demo(port: u16, stdout: Stdio) -> std::process::Child {
    clean_command(apiproxy_bin())
        .args([
            "demo",
            "--port",
            &port.to_string(),
            "--env-file",
            "/dev/null",
        ])
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo")
}

#[tokio::test]
async fn the_demo_serves_the_curl_line_it_prints() {
    let port = free_port();
    let mut demo = spawn_demo(port, Stdio::piped());
    let stdout = demo.stdout.take().expect("stdout");
    let curl_line = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(15);
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap_or_default();
            if line.trim_start().starts_with("curl ") {
                return Some(line.trim().to_string());
            }
            if Instant::now() > deadline {
                break;
            }
        }
        None
    })
    .await
    .expect("join")
    .expect("the demo prints a curl line");
    // Run exactly what the demo printed.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .args(["-c", &format!("{curl_line} -sS -w '\\n%{{http_code}}'")])
            .output()
    })
    .await
    .expect("join")
    .expect("run curl");
    let _ = demo.kill();
    let _ = demo.wait();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.trim_end().ends_with("200"), "{text}");
    assert!(text.contains("Hello from mock-"), "{text}");
}

/// The README's shell blocks that talk to the gateway, in order, with the demo's real port.
fn readme_curl_blocks(port: u16) -> String {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .expect("README.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```bash") => current = Some(String::new()),
            (Some(block), "```") => {
                if block.contains("curl http") || block.contains("curl 'http") {
                    blocks.push(block.replace("127.0.0.1:8000", &format!("127.0.0.1:{port}")));
                }
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks.join("\n")
}

#[tokio::test]
async fn the_readme_curl_examples_work_against_the_demo() {
    let port = free_port();
    let mut demo = spawn_demo(port, Stdio::null());
    let health = format!("http://127.0.0.1:{port}/health");
    let deadline = Instant::now() + Duration::from_secs(15);
    while reqwest::get(&health).await.is_err() {
        assert!(Instant::now() < deadline, "the demo did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let blocks = readme_curl_blocks(port);
    assert!(
        blocks.matches("curl ").count() >= 8,
        "the README's examples were found:\n{blocks}"
    );
    // The README's lines run as written; curl fails on any HTTP error status.
    let script =
        format!("set -e\ncurl() {{ command curl -sS --fail-with-body \"$@\"; echo; }}\n{blocks}");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .output()
    })
    .await
    .expect("join")
    .expect("run sh");
    let _ = demo.kill();
    let _ = demo.wait();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Hello from mock-"), "{stdout}");
    assert!(stdout.contains("\"selected_upstream\""), "{stdout}");
}
