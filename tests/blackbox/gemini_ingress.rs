//! The Gemini API served by the gateway (SPEC 4.7), through the real binary: Gemini providers get
//! the client's body as it is, other vendors get it translated and answer in Gemini's shape, whole,
//! as SSE and as one JSON array; tokens are counted; errors are Google's.

use serde_json::{Value, json};

use crate::support::*;

const TOKEN: &str = "timeline";

fn generate_body() -> Value {
    json!({
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Earlier question"}]},
            {"role": "model", "parts": [{"text": "Earlier answer", "thoughtSignature": "c2lnbmF0dXJl"}]},
            {"role": "user", "parts": [{"text": "Hello Gemini"}]}
        ],
        "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
        "generationConfig": {"temperature": 0.2, "maxOutputTokens": 256,
            "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": true}}
    })
}

async fn post(gateway: &Gateway, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", gateway.url))
        .header("x-goog-api-key", TOKEN)
        .json_body(body)
        .send()
        .await
        .expect("send")
}

#[tokio::test]
async fn a_gemini_provider_gets_the_clients_body_as_it_is() {
    let (mock, gateway) = vendor_gateway("gemini").await;
    let response = post(
        &gateway,
        "/v1beta/models/chat-model:generateContent",
        &generate_body(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer = json_of(response).await;
    let text = answer["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("Hello Gemini"), "{answer}");
    let stats = mock.stats().await;
    assert_eq!(
        stats["last_headers"][":path"],
        "/v1beta/models/gemini-model:generateContent"
    );
    // Thought signatures, safety settings and thinking config reach Gemini untouched.
    assert_eq!(stats["last_request"], generate_body());
    // The answer's own usageMetadata is counted (the mock reports 5 prompt, 8 candidate tokens).
    let metrics = gateway.metrics_text().await;
    let counted = |kind: &str| {
        metrics.lines().any(|line| {
            line.starts_with("apiproxy_tokens_total{")
                && line.contains(r#"provider="gemini""#)
                && line.contains(&format!(r#"kind="{kind}""#))
                && line.ends_with(if kind == "prompt" { " 5" } else { " 8" })
        })
    };
    assert!(counted("prompt") && counted("completion"), "{metrics}");
}

#[tokio::test]
async fn other_vendors_answer_in_geminis_shape() {
    for vendor in ["openai", "anthropic"] {
        let (mock, gateway) = vendor_gateway(vendor).await;
        let response = post(
            &gateway,
            "/v1/models/chat-model:generateContent",
            &generate_body(),
        )
        .await;
        assert_eq!(response.status(), 200, "{vendor}");
        let answer = json_of(response).await;
        let candidate = &answer["candidates"][0];
        assert_eq!(candidate["content"]["role"], "model", "{answer}");
        assert_eq!(candidate["finishReason"], "STOP", "{answer}");
        assert!(
            candidate["content"]["parts"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .contains("Hello Gemini"),
            "{answer}"
        );
        assert!(answer["usageMetadata"]["totalTokenCount"].as_u64() > Some(0));
        let sent = mock.stats().await["last_request"].clone();
        let system = match vendor {
            "openai" => sent["messages"][0]["content"].clone(),
            _ => sent["system"].clone(),
        };
        assert_eq!(system, "Be brief.", "{vendor}: {sent}");
    }
}

#[tokio::test]
async fn a_function_call_round_trip_through_a_chat_upstream_keeps_its_id() {
    let (mock, gateway) = vendor_gateway("openai").await;
    let tools = json!([{"functionDeclarations": [{"name": "get_weather", "description": "Weather",
        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}}]}]);
    let question = json!({"role": "user", "parts": [{"text": "Weather in Paris?"}]});
    let first = json_of(
        post(
            &gateway,
            "/v1beta/models/chat-model:generateContent",
            &json!({"contents": [question.clone()], "tools": tools.clone()}),
        )
        .await,
    )
    .await;
    let call = first["candidates"][0]["content"]["parts"][0]["functionCall"].clone();
    assert_eq!(call["name"], "get_weather", "{first}");
    assert_eq!(call["args"], json!({"city": "Paris"}), "{first}");
    let id = call["id"]
        .as_str()
        .expect("the call keeps the upstream's id")
        .to_string();
    let second = post(
        &gateway,
        "/v1beta/models/chat-model:generateContent",
        &json!({"tools": tools, "contents": [question, first["candidates"][0]["content"].clone(),
            {"role": "user", "parts": [{"functionResponse": {"id": id, "name": "get_weather",
                "response": {"content": "18 degrees"}}}]}]}),
    )
    .await;
    assert_eq!(second.status(), 200);
    let text = json_of(second).await["candidates"][0]["content"]["parts"][0]["text"].clone();
    assert!(
        text.as_str().unwrap_or_default().contains("18 degrees"),
        "{text}"
    );
    let sent = mock.stats().await["last_request"].clone();
    assert_eq!(sent["messages"][2]["tool_call_id"], id, "{sent}");
}

#[tokio::test]
async fn streams_are_sse_with_alt_sse_and_one_json_array_without() {
    for vendor in ["gemini", "openai"] {
        let (_mock, gateway) = vendor_gateway(vendor).await;
        let sse = post(
            &gateway,
            "/v1beta/models/chat-model:streamGenerateContent?alt=sse",
            &generate_body(),
        )
        .await;
        assert_eq!(sse.status(), 200);
        assert_eq!(header(&sse, "content-type"), Some("text/event-stream"));
        let events = sse_data(&sse.text().await.expect("body"));
        let chunks: Vec<Value> = events
            .iter()
            .map(|data| serde_json::from_str(data).expect("each event is JSON"))
            .collect();
        assert!(chunks.len() > 1, "{vendor}: {events:?}");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str())
            .collect();
        assert!(text.contains("Hello Gemini"), "{vendor}: {text}");
        assert_eq!(
            chunks
                .last()
                .map(|c| c["candidates"][0]["finishReason"].clone()),
            Some(json!("STOP")),
            "{vendor}"
        );

        let array = post(
            &gateway,
            "/v1beta/models/chat-model:streamGenerateContent",
            &generate_body(),
        )
        .await;
        assert_eq!(array.status(), 200);
        assert_eq!(header(&array, "content-type"), Some("application/json"));
        let whole: Value = serde_json::from_str(&array.text().await.expect("body"))
            .expect("the stream is one JSON array");
        assert_eq!(
            whole.as_array().map(Vec::len),
            Some(chunks.len()),
            "{vendor}: {whole}"
        );
    }
}

#[tokio::test]
async fn a_failure_after_the_first_byte_ends_the_stream_with_googles_error() {
    let (mock, gateway) = vendor_gateway("openai").await;
    mock.fault(json!({"drop_after_events": 3})).await;
    let response = post(
        &gateway,
        "/v1beta/models/chat-model:streamGenerateContent?alt=sse",
        &generate_body(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let events = sse_data(&response.text().await.expect("body"));
    let last: Value = serde_json::from_str(events.last().expect("events")).expect("JSON");
    assert_eq!(last["error"]["status"], "INTERNAL", "{events:?}");
    assert_eq!(last["error"]["code"], 500, "{events:?}");
}

#[tokio::test]
async fn tokens_are_counted_by_gemini_and_anthropic_and_estimated_for_openai() {
    for (vendor, counted) in [("gemini", true), ("anthropic", true), ("openai", false)] {
        let (_mock, gateway) = vendor_gateway(vendor).await;
        let response = post(
            &gateway,
            "/v1beta/models/chat-model:countTokens",
            &json!({"contents": [{"role": "user", "parts": [{"text": "How many tokens?"}]}]}),
        )
        .await;
        assert_eq!(response.status(), 200, "{vendor}");
        let how = header(&response, "x-apiproxy-token-count").map(str::to_string);
        let total = json_of(response).await["totalTokens"].as_u64();
        if counted {
            assert_eq!(
                (total, how.as_deref()),
                (Some(4242), Some("counted")),
                "{vendor}"
            );
        } else {
            assert_eq!(how.as_deref(), Some("estimated"));
            assert!(total.is_some_and(|t| t > 0 && t != 4242), "{total:?}");
        }
    }
}

#[tokio::test]
async fn errors_are_in_googles_shape() {
    let (mock, gateway) = vendor_gateway("openai").await;
    let cases = [
        (
            "/v1beta/models/no-such-model:generateContent",
            TOKEN,
            json!({"contents": "hi"}),
            404,
            "NOT_FOUND",
        ),
        (
            "/v1beta/models/chat-model:embedContent",
            TOKEN,
            json!({"contents": "hi"}),
            404,
            "NOT_FOUND",
        ),
        (
            "/v1beta/models/chat-model:generateContent",
            "wrong",
            json!({"contents": "hi"}),
            401,
            "UNAUTHENTICATED",
        ),
        (
            "/v1beta/models/chat-model:generateContent",
            TOKEN,
            json!([1]),
            400,
            "INVALID_ARGUMENT",
        ),
    ];
    for (path, key, body, status, name) in cases {
        let response = client()
            .post(format!("{}{path}?key={key}", gateway.url))
            .json_body(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), status, "{path}");
        let error = json_of(response).await;
        assert_eq!(error["error"]["status"], name, "{path}: {error}");
        assert_eq!(error["error"]["code"], status, "{path}: {error}");
    }
    mock.fault(json!({"status": 400, "times": 1})).await;
    let relayed = post(
        &gateway,
        "/v1beta/models/chat-model:generateContent",
        &json!({"contents": "hi"}),
    )
    .await;
    assert_eq!(relayed.status(), 400);
    let error = json_of(relayed).await;
    assert_eq!(error["error"]["status"], "INVALID_ARGUMENT", "{error}");
    assert_eq!(
        mock.chat_requests().await,
        1,
        "the 404s and the 401 sent nothing upstream"
    );
}

#[tokio::test]
async fn models_are_listed_in_geminis_shape() {
    let (_mock, gateway) = vendor_gateway("openai").await;
    let response = client()
        .get(format!("{}/v1beta/models", gateway.url))
        .header("x-goog-api-key", TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let list = json_of(response).await;
    let names: Vec<&str> = list["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(names.contains(&"models/chat-model"), "{list}");
    let (status, one) = {
        let response = client()
            .get(format!(
                "{}/v1beta/models/chat-model?key={TOKEN}",
                gateway.url
            ))
            .send()
            .await
            .expect("send");
        (response.status().as_u16(), json_of(response).await)
    };
    assert_eq!(status, 200);
    assert_eq!(
        one["supportedGenerationMethods"][0], "generateContent",
        "{one}"
    );
}
