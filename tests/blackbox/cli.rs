//! The command line (SPEC 8): `check-config` and `encode-token`.

use crate::support::*;

const SECRET_KEY: &str = "sk-blackbox-super-secret-9876";

fn provider_env(weight: Option<&str>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("LLM_PROVIDERS", "a".to_string()),
        ("LLM_PROVIDER_a_NAME", "Provider A".to_string()),
        ("LLM_PROVIDER_a_BASE_URL", "http://127.0.0.1:9".to_string()),
        ("LLM_PROVIDER_a_API_KEY", SECRET_KEY.to_string()),
    ];
    if let Some(weight) = weight {
        env.push(("LLM_PROVIDER_a_WEIGHT", weight.to_string()));
    }
    env
}

fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn check_config_fails_naming_the_variable_when_a_weight_is_zero() {
    let env = provider_env(Some("0"));

    let output = run_apiproxy(&["check-config"], &as_refs(&env));

    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("LLM_PROVIDER_a_WEIGHT"), "{stderr}");
    let all = format!("{stderr}{}", String::from_utf8_lossy(&output.stdout));
    assert!(!all.contains(SECRET_KEY), "the key leaked: {all}");
}

#[test]
fn check_config_prints_the_provider_with_its_key_masked() {
    let env = provider_env(None);

    let output = run_apiproxy(&["check-config"], &as_refs(&env));

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("a "))
        .unwrap_or_else(|| panic!("provider a is listed: {stdout}"));
    assert!(line.contains("****9876"), "masked key shown: {line}");
    assert!(
        !stdout.contains(SECRET_KEY),
        "key leaked to stdout: {stdout}"
    );
    assert!(
        !stderr.contains(SECRET_KEY),
        "key leaked to stderr: {stderr}"
    );
}

#[test]
fn check_config_exits_non_zero_on_a_bad_base_url() {
    let mut env = provider_env(None);
    env[2].1 = "not a url".to_string();

    let output = run_apiproxy(&["check-config"], &as_refs(&env));

    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("LLM_PROVIDER_a_BASE_URL"), "{stderr}");
}

#[test]
fn encode_token_prints_the_base64_form() {
    let output = run_apiproxy(&["encode-token", "timeline"], &[]);

    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("dGltZWxpbmU="), "{stdout}");
    assert!(
        stdout.contains("Authorization: Bearer dGltZWxpbmU="),
        "{stdout}"
    );
}

/// Runs `apiproxy check-config` with `env_text` as its env file (and only PATH in the environment,
/// plus `env`).
fn check_config_with_file(env_text: &str, env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let env_file = dir.path().join("given.env");
    std::fs::write(&env_file, env_text).expect("write env file");
    let mut command = clean_command(apiproxy_bin());
    command
        .arg("check-config")
        .arg("--env-file")
        .arg(&env_file)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run apiproxy")
}

/// SPEC 2: what python-dotenv accepts (the original's loader), so a file moved from it works.
#[test]
fn a_dotenv_file_in_python_dotenv_syntax_is_accepted() {
    let output = check_config_with_file(
        "# providers\n\
         export LLM_PROVIDERS=a,b\n\
         LLM_PROVIDER_a_NAME=From dotenv   # unquoted, with a space\n\
         LLM_PROVIDER_a_BASE_URL=http://127.0.0.1:9\n\
         LLM_PROVIDER_a_API_KEY='sk-single#quoted'\n\
         LLM_PROVIDER_b_NAME=\"Double \\\"quoted\\\"\"\n\
         LLM_PROVIDER_b_BASE_URL=${BASE_FROM_ENV}/v1\n\
         LLM_PROVIDER_b_API_KEY=sk-b\n\
         LLM_PROVIDER_b_WEIGHT=2 # inline comment\n",
        &[
            ("BASE_FROM_ENV", "http://127.0.0.1:7"),
            ("LLM_PROVIDER_b_WEIGHT", "3"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", output_text(&output));
    assert!(stdout.contains("a (From dotenv)"), "{stdout}");
    assert!(stdout.contains("b (Double \"quoted\")"), "{stdout}");
    assert!(
        stdout.contains("127.0.0.1:7/v1"),
        "${{NAME}} expands from the environment: {stdout}"
    );
    assert!(
        stdout.contains("weight=3"),
        "the real environment wins over the file: {stdout}"
    );
}

#[test]
fn an_invalid_dotenv_line_stops_start_up_naming_its_line_number() {
    let output = check_config_with_file(
        "LLM_PROVIDERS=a\n\nLLM_PROVIDER_a_NAME=\"never closed\nLLM_PROVIDER_a_API_KEY=k\n",
        &[],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("given.env"), "names the file: {stderr}");
    assert!(stderr.contains("line 3"), "names the line: {stderr}");
    let output = check_config_with_file("GOOD=1\nMY KEY=1\n", &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("line 2") && stderr.contains("expected '='"),
        "{stderr}"
    );
}
