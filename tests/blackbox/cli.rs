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
