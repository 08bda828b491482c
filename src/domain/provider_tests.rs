//! Unit tests of providers: retry policies, URLs, masking and redaction, the swappable registry.

use super::*;

fn gemini(base_url: &str, key: &str, custom: &[(&str, &str)]) -> ProviderConfig {
    ProviderConfig {
        base_url: base_url.into(),
        api_key: SecretString::from(key.to_string()),
        vendor: Vendor::Gemini,
        models_path: "/v1beta/models".into(),
        chat_path: "/v1beta/models/{model}:generateContent".into(),
        responses_path: None,
        custom_headers: custom
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..provider_for_tests("gem")
    }
}

#[test]
fn a_model_in_the_url_path_stays_one_segment() {
    let p = gemini("https://g.example.com", "k", &[]);
    assert_eq!(
        p.chat_url("gemini-2.0-flash"),
        "https://g.example.com/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(
        p.chat_url("../../../admin/secret?q="),
        "https://g.example.com/v1beta/models/..%2F..%2F..%2Fadmin%2Fsecret%3Fq%3D:generateContent"
    );
    assert_eq!(encode_path_segment(".."), "%2E%2E");
    assert_eq!(encode_path_segment("a b#c"), "a%20b%23c");
}

#[test]
fn secrets_echoed_by_an_upstream_are_redacted() {
    let p = gemini(
        "https://g.example.com",
        "AIzaSy-secret-key",
        &[("x-org", "org-secret-123"), ("x-flag", "true")],
    );
    let body = Bytes::from_static(
        br#"{"error":{"message":"bad key AIzaSy-secret-key for org-secret-123 (true); AIzaSy-secret-key"}}"#,
    );
    let shown = p.redact(body);
    assert_eq!(
        &shown[..],
        br#"{"error":{"message":"bad key [redacted] for [redacted] (true); [redacted]"}}"#
    );
    let clean = Bytes::from_static(b"nothing to hide");
    assert_eq!(p.redact(clean.clone()), clean);
}

#[test]
fn credentials_in_a_base_url_are_masked_and_redacted() {
    let p = gemini(
        "https://user:pa55word@g.example.com/v1?key=secret-query-key",
        "k",
        &[],
    );
    assert_eq!(p.masked_base_url(), "https://****@g.example.com/v1?****");
    let shown = p.redact(Bytes::from_static(
        b"error sending request for url (https://user:pa55word@g.example.com/v1?key=secret-query-key)",
    ));
    let shown = String::from_utf8_lossy(&shown);
    assert!(
        !shown.contains("pa55word") && !shown.contains("secret-query-key"),
        "{shown}"
    );
    let plain = gemini("https://g.example.com/v1", "k", &[]);
    assert_eq!(plain.masked_base_url(), "https://g.example.com/v1");
}

proptest::proptest! {
    #[test]
    fn no_model_name_moves_the_upstream_url_off_its_path(model in "\\PC{0,64}") {
        let p = gemini("https://g.example.com/base", "k", &[]);
        let url = reqwest::Url::parse(&p.chat_url(&model)).expect("a valid URL");
        proptest::prop_assert_eq!(url.host_str(), Some("g.example.com"));
        proptest::prop_assert!(url.query().is_none() && url.fragment().is_none());
        let path = url.path();
        proptest::prop_assert!(path.starts_with("/base/v1beta/models/"), "{}", path);
        proptest::prop_assert!(path.ends_with(":generateContent"), "{}", path);
        let segment = &path["/base/v1beta/models/".len()..];
        proptest::prop_assert!(!segment.contains('/'), "{}", path);
    }
}

fn codes(list: &[u16]) -> RetryPolicy {
    RetryPolicy::Codes(list.iter().copied().collect())
}

#[test]
fn status_lists_and_ranges_parse() {
    assert_eq!(
        RetryPolicy::parse("429,500,502-504").unwrap(),
        codes(&[429, 500, 502, 503, 504])
    );
}

#[test]
fn whitespace_is_ignored_everywhere() {
    assert_eq!(
        RetryPolicy::parse(" 429 , 502 - 503 ,").unwrap(),
        codes(&[429, 502, 503])
    );
}

#[test]
fn duplicates_are_dropped() {
    assert_eq!(
        RetryPolicy::parse("500,500,499-501").unwrap(),
        codes(&[499, 500, 501])
    );
}

#[test]
fn none_disables_status_retries() {
    let policy = RetryPolicy::parse("None").unwrap();
    assert_eq!(policy, codes(&[]));
    assert!(!policy.is_retryable_status(500));
}

#[test]
fn bad_parts_are_rejected_with_the_part_named() {
    for bad in ["abc", "429,x", "504-502", "-5", "700", "500-", "", " , "] {
        let err = RetryPolicy::parse(bad).unwrap_err();
        assert!(!err.is_empty(), "{bad} gave an empty message");
    }
    assert!(RetryPolicy::parse("429,5o0").unwrap_err().contains("5o0"));
}

#[test]
fn well_known_ids_default_to_the_short_list_and_others_to_every_5xx() {
    let openai = RetryPolicy::default_for("OpenAI");
    assert!(openai.is_retryable_status(503) && !openai.is_retryable_status(501));
    let other = RetryPolicy::default_for("a4f");
    assert!(other.is_retryable_status(501) && other.is_retryable_status(429));
    assert!(!other.is_retryable_status(404));
}

#[test]
fn vendor_is_inferred_from_the_id() {
    assert_eq!(Vendor::infer_from_id("my-claude"), Vendor::Anthropic);
    assert_eq!(Vendor::infer_from_id("Google-AI"), Vendor::Gemini);
    assert_eq!(Vendor::infer_from_id("deepseek"), Vendor::OpenAi);
}

#[test]
fn urls_never_double_the_version_segment() {
    assert_eq!(
        join_url("https://api.openai.com/v1/", "/v1/models"),
        "https://api.openai.com/v1/models"
    );
    assert_eq!(
        join_url("https://api.openai.com", "v1/models"),
        "https://api.openai.com/v1/models"
    );
    assert_eq!(
        join_url("https://x.test/v1beta", "/v1beta/models/m:generateContent"),
        "https://x.test/v1beta/models/m:generateContent"
    );
    assert_eq!(
        join_url("https://x.test/api", "/v1/models"),
        "https://x.test/api/v1/models"
    );
}

#[test]
fn keys_are_masked_to_their_last_four_characters() {
    assert_eq!(mask_secret("sk-1234567890abcd"), "****abcd");
    assert_eq!(mask_secret("short"), "****");
}

#[test]
fn a_snapshot_taken_before_a_swap_keeps_its_providers() {
    let registry = ProviderRegistry::new(vec![provider_for_tests("a")]);
    let before = registry.snapshot();
    let replaced = registry.replace(ProviderSet::new(vec![provider_for_tests("b")]));
    assert!(Arc::ptr_eq(&before, &replaced));
    assert!(before.get("a").is_some() && before.get("b").is_none());
    let after = registry.snapshot();
    assert!(after.get("a").is_none() && after.get("b").is_some());
    assert_eq!(after.len(), 1);
}

#[test]
fn a_swap_while_readers_load_never_shows_a_mixed_set() {
    // Every set the writer installs is all `x` or all `y`: a reader sees one or the other.
    let registry = Arc::new(ProviderRegistry::new(vec![
        provider_for_tests("x1"),
        provider_for_tests("x2"),
    ]));
    let writer = {
        let registry = registry.clone();
        std::thread::spawn(move || {
            for round in 0..2_000 {
                let prefix = if round % 2 == 0 { "y" } else { "x" };
                registry.replace(ProviderSet::new(vec![
                    provider_for_tests(&format!("{prefix}1")),
                    provider_for_tests(&format!("{prefix}2")),
                ]));
            }
        })
    };
    for _ in 0..20_000 {
        let set = registry.snapshot();
        let first: Vec<char> = set.iter().filter_map(|p| p.id.chars().next()).collect();
        assert_eq!(first.len(), 2);
        assert_eq!(first[0], first[1], "a mixed set: {first:?}");
    }
    writer.join().expect("writer thread");
}

#[test]
fn changes_name_added_removed_and_changed_providers() {
    let old = ProviderSet::new(vec![
        provider_for_tests("kept"),
        provider_for_tests("gone"),
        provider_for_tests("rotated"),
    ]);
    let rotated = ProviderConfig {
        api_key: SecretString::from("a-new-key".to_string()),
        ..provider_for_tests("rotated")
    };
    let new = ProviderSet::new(vec![
        provider_for_tests("kept"),
        rotated,
        provider_for_tests("new"),
    ]);
    let changes = old.changes_to(&new);
    assert_eq!(changes.added, vec!["new"]);
    assert_eq!(changes.removed, vec!["gone"]);
    assert_eq!(changes.changed, vec!["rotated"]);
    let touched: Vec<&String> = changes.touched().collect();
    assert_eq!(touched, vec!["new", "rotated"]);
    assert_eq!(old.changes_to(&old), ProviderChanges::default());
}

#[test]
fn unchanged_providers_keep_their_instance_across_a_reload() {
    let old = ProviderSet::new(vec![
        provider_for_tests("same"),
        provider_for_tests("moved"),
    ]);
    let moved = ProviderConfig {
        base_url: "http://elsewhere.test".into(),
        ..provider_for_tests("moved")
    };
    let new = ProviderSet::carried_over(&old, vec![provider_for_tests("same"), moved]);
    let (Some(old_same), Some(new_same)) = (old.get("same"), new.get("same")) else {
        panic!("`same` is in both sets");
    };
    assert!(Arc::ptr_eq(old_same, new_same));
    let (Some(old_moved), Some(new_moved)) = (old.get("moved"), new.get("moved")) else {
        panic!("`moved` is in both sets");
    };
    assert!(!Arc::ptr_eq(old_moved, new_moved));
    assert_eq!(new_moved.base_url, "http://elsewhere.test");
}
