//! Redis Cluster and Sentinel (SPEC 2.1, 7): the gateway on a real three-master cluster with
//! replicas, and on a Sentinel set (one master, one replica), with chat traffic running while
//! the master holding the keys in use is killed. Every chat is answered, the gateway writes
//! again by itself once a replica has taken over, and the logical model and the virtual key
//! created before are still there. Each test starts its own `redis-server` processes (killed on
//! drop, also on panic).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "../common/redis_cluster.rs"]
mod deployments;

use crate::support::*;
use deployments::{RedisCluster, RedisSentinel};

/// Where the gateway keeps virtual keys (one hash tag: every key record is on this slot).
const KEYS_INDEX: &str = "{apx:keys}:index";

/// The answers of the chats sent while a master failed over.
struct Traffic {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(u16, String)>>,
}

impl Traffic {
    /// Sends chats with `credential` for `model` one after another until stopped; every other
    /// one in a session, so stickiness is read and written too.
    fn start(gateway: &Gateway, credential: &str, model: &str) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, url, credential, model) = (
            stop.clone(),
            gateway.url.clone(),
            credential.to_string(),
            model.to_string(),
        );
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a client");
            let mut answers = Vec::new();
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                n += 1;
                let mut request = client
                    .post(format!("{url}/v1/chat/completions"))
                    .header("authorization", &credential)
                    .json_body(&chat_body(&model, "Hi"));
                if n.is_multiple_of(2) {
                    request = request.header("x-session-id", format!("s-{}", n % 8));
                }
                let answer = match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body = response.text().await.unwrap_or_default();
                        (status, body)
                    }
                    Err(e) => (0, format!("no answer: {e}")),
                };
                answers.push(answer);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            answers
        });
        Traffic { stop, task }
    }

    /// Stops the traffic and checks that every chat was answered with a completion.
    async fn every_chat_was_answered(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let answers = self.task.await.expect("the traffic task");
        let failed: Vec<&(u16, String)> = answers
            .iter()
            .filter(|(status, body)| *status != 200 || !body.contains("chat.completion"))
            .collect();
        assert!(
            failed.is_empty(),
            "{} of {} chats failed during the fail-over, e.g. {:?}",
            failed.len(),
            answers.len(),
            failed.first()
        );
        answers.len()
    }
}

/// A logical model over the mock's `up-a`, created through the API.
async fn create_model(gateway: &Gateway, id: &str) {
    let (status, body) = gateway
        .put_json(
            &format!("/logical-models/{id}"),
            &json!({"upstreams": [{"provider_id": "a", "model_id": "up-a"}]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// A virtual key without limits (a limited key is refused while its ledger is unreachable,
/// by design); returns the key object with its secret.
async fn create_key(gateway: &Gateway, name: &str) -> Value {
    let (status, body) = gateway.post_json("/keys", &json!({"name": name})).await;
    assert_eq!(status, 201, "{body}");
    body
}

fn bearer(key: &Value) -> String {
    format!("Bearer {}", key["key"].as_str().expect("the key's secret"))
}

/// Waits until a write through the API that lands on the failed-over slots succeeds (a new
/// virtual key: the key records share one slot) and `model` reads back, and returns how long
/// that took.
async fn writes_succeed_again(gateway: &Gateway, model: &str, within: Duration) -> Duration {
    let started = Instant::now();
    eventually(
        within,
        "a write through the API to succeed again",
        || async {
            let (status, _) = gateway
                .post_json("/keys", &json!({"name": "after-failover"}))
                .await;
            let (read, _) = gateway.get_json(&format!("/logical-models/{model}")).await;
            (status == 201 && read == 200).then_some(())
        },
    )
    .await;
    started.elapsed()
}

/// What must hold once the fail-over is over: the model and the key are there and work, and
/// `/health` is ok again; then the gateway stays up (no connection left behind on the old
/// topology fails later: 20 rounds of reads over two seconds all succeed).
async fn nothing_was_lost(gateway: &Gateway, model: &str, key: &Value) {
    eventually(Duration::from_secs(10), "/health ok again", || async {
        let response = gateway
            .client
            .get(format!("{}/health", gateway.url))
            .send()
            .await
            .ok()?;
        (json_of(response).await == json!({"status": "ok"})).then_some(())
    })
    .await;
    let id = key["id"].as_str().expect("the key's id");
    for _ in 0..20 {
        let (status, body) = gateway.get_json(&format!("/logical-models/{model}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["upstreams"][0]["model_id"], "up-a");
        let (status, body) = gateway.get_json(&format!("/keys/{id}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["name"], key["name"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, listed) = gateway.get_json("/logical-models").await;
    assert_eq!(status, 200);
    assert!(listed.to_string().contains(model), "{listed}");
    let response = gateway
        .client
        .post(format!("{}/v1/chat/completions", gateway.url))
        .header("authorization", bearer(key))
        .json_body(&chat_body(model, "Hi"))
        .send()
        .await
        .expect("a chat");
    assert_eq!(response.status(), 200);
}

/// `apiproxy_store_errors_total` from `/metrics`.
async fn store_errors(gateway: &Gateway) -> u64 {
    gateway
        .metrics_text()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("apiproxy_store_errors_total "))
        .and_then(|n| n.trim().parse().ok())
        .expect("apiproxy_store_errors_total in /metrics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_master_failing_over_under_traffic_loses_no_model_or_key() {
    let mut cluster = tokio::task::block_in_place(|| RedisCluster::start(3, 1, Some("c-secret")));
    let mock = Mock::start("a", &["up-a"]);
    let gateway = Gateway::builder()
        .provider("a", &mock.url)
        .redis(&cluster.url())
        .start()
        .await;
    // The master holding the virtual keys; the logical model is put on the same master, so
    // both are on the shard that fails over.
    let doomed = cluster.master_of(KEYS_INDEX);
    let model = (0..)
        .map(|i| format!("failover-{i}"))
        .find(|id| cluster.master_of(&format!("llm:logical:{id}")) == doomed)
        .expect("a model id on the doomed master");
    create_model(&gateway, &model).await;
    let key = create_key(&gateway, "cluster-app").await;
    for _ in 0..3 {
        let response = gateway
            .client
            .post(format!("{}/v1/chat/completions", gateway.url))
            .header("authorization", bearer(&key))
            .json_body(&chat_body(&model, "Hi"))
            .send()
            .await
            .expect("a chat");
        assert_eq!(response.status(), 200);
    }
    assert!(
        cluster
            .node(doomed)
            .cli(&["GET", &format!("llm:logical:{model}")])
            .contains("up-a"),
        "the model is stored on the master about to die"
    );
    tokio::task::block_in_place(|| cluster.wait_replicated(doomed, Duration::from_secs(10)));
    let errors_before = store_errors(&gateway).await;

    let traffic = Traffic::start(&gateway, &bearer(&key), &model);
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.kill(doomed);
    let killed = Instant::now();
    let promoted = tokio::task::block_in_place(|| {
        cluster.wait_for_new_master(KEYS_INDEX, doomed, Duration::from_secs(30))
    });
    let took = writes_succeed_again(&gateway, &model, Duration::from_secs(20)).await;
    eprintln!(
        "master {doomed} killed; replica {promoted} took over, and the gateway wrote again {:?} \
         after the kill ({took:?} after the promotion was seen)",
        killed.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let chats = traffic.every_chat_was_answered().await;
    assert!(chats >= 20, "only {chats} chats ran during the fail-over");
    assert!(
        store_errors(&gateway).await > errors_before,
        "the fail-over's store errors are counted"
    );

    nothing_was_lost(&gateway, &model, &key).await;
    let new_master = cluster.node(promoted);
    assert!(
        new_master
            .cli(&["GET", &format!("llm:logical:{model}")])
            .contains("up-a")
    );
    let key_id = key["id"].as_str().expect("the key's id");
    assert_eq!(
        new_master.cli(&["SISMEMBER", KEYS_INDEX, key_id]),
        "1",
        "the key is on the promoted replica"
    );
    assert_eq!(
        cluster.slot_of(KEYS_INDEX),
        cluster.slot_of(&format!("{{apx:keys}}:id:{key_id}")),
        "the key index and the key's record share a slot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_fail_over_under_traffic_loses_no_model_or_key() {
    let mut set = tokio::task::block_in_place(|| RedisSentinel::start(2, Some("s-secret")));
    let mock = Mock::start("a", &["up-a"]);
    let gateway = Gateway::builder()
        .provider("a", &mock.url)
        .redis(&set.url())
        .start()
        .await;
    let model = "sentinel-model";
    create_model(&gateway, model).await;
    let key = create_key(&gateway, "sentinel-app").await;
    assert!(
        set.master
            .cli(&["GET", &format!("llm:logical:{model}")])
            .contains("up-a"),
        "the gateway writes to the master the Sentinels name"
    );
    tokio::task::block_in_place(|| set.wait_replicated(Duration::from_secs(10)));
    let errors_before = store_errors(&gateway).await;

    let traffic = Traffic::start(&gateway, &bearer(&key), model);
    tokio::time::sleep(Duration::from_millis(500)).await;
    set.master.kill();
    let killed = Instant::now();
    tokio::task::block_in_place(|| set.wait_for_promotion(Duration::from_secs(30)));
    let took = writes_succeed_again(&gateway, model, Duration::from_secs(20)).await;
    eprintln!(
        "master killed; the Sentinels promoted the replica and the gateway wrote again {:?} \
         after the kill ({took:?} after the promotion was seen)",
        killed.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let chats = traffic.every_chat_was_answered().await;
    assert!(chats >= 20, "only {chats} chats ran during the fail-over");
    assert!(
        store_errors(&gateway).await > errors_before,
        "the fail-over's store errors are counted"
    );

    nothing_was_lost(&gateway, model, &key).await;
    let key_id = key["id"].as_str().expect("the key's id");
    assert_eq!(set.replica.cli(&["SISMEMBER", KEYS_INDEX, key_id]), "1");
    assert!(
        set.replica
            .cli(&["SMEMBERS", "llm:logical:#index"])
            .contains(model)
    );
}

/// `REDIS_CLUSTER_NODES` names a cluster without a URL; `check-config` says which store it is;
/// wrong forms stop start-up naming the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_nodes_variable_and_invalid_forms() {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(3, 0, None));
    let mock = Mock::start("a", &["up-a"]);
    let env = [
        ("LLM_PROVIDERS", "a"),
        ("LLM_PROVIDER_a_NAME", "A"),
        ("LLM_PROVIDER_a_BASE_URL", mock.url.as_str()),
        ("LLM_PROVIDER_a_API_KEY", "key-a-0123456789"),
    ];
    let seeds = cluster.seeds();
    let mut with_nodes = env.to_vec();
    with_nodes.push(("REDIS_CLUSTER_NODES", seeds.as_str()));
    let output = run_apiproxy(&["check-config"], &with_nodes);
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    assert!(
        text.contains("store: redis cluster (3 seed nodes)"),
        "{text}"
    );

    for (name, value, other) in [
        ("REDIS_URL", "redis+sentinel://:pw-hidden@127.0.0.1:1", None),
        ("REDIS_URL", "redis+cluster://:pw-hidden@h1:port", None),
        ("REDIS_CLUSTER_NODES", "h1:7000,h2:x", None),
        (
            "REDIS_CLUSTER_NODES",
            "h1:7000",
            Some(("REDIS_URL", "redis://127.0.0.1:6379")),
        ),
    ] {
        let mut vars = env.to_vec();
        vars.push((name, value));
        vars.extend(other);
        let output = run_apiproxy(&["check-config"], &vars);
        let text = output_text(&output);
        assert!(!output.status.success(), "{value} was accepted: {text}");
        assert!(text.contains(name), "{value}: {text}");
        assert!(!text.contains("pw-hidden"), "{text}");
    }

    let gateway = Gateway::builder()
        .provider("a", &mock.url)
        .env("REDIS_CLUSTER_NODES", &seeds)
        .start()
        .await;
    create_model(&gateway, "by-seeds").await;
    let key = create_key(&gateway, "seeds-app").await;
    let response = gateway
        .client
        .post(format!("{}/v1/chat/completions", gateway.url))
        .header("authorization", bearer(&key))
        .header("x-session-id", "seeded")
        .json_body(&chat_body("by-seeds", "Hi"))
        .send()
        .await
        .expect("a chat");
    assert_eq!(response.status(), 200);
    let stored = cluster
        .node(cluster.master_of("llm:logical:by-seeds"))
        .cli(&["GET", "llm:logical:by-seeds"]);
    assert!(stored.contains("up-a"), "{stored}");
    let session = cluster.master_of("llm:session:seeded");
    eventually(
        Duration::from_secs(3),
        "the session in the cluster",
        || async {
            (cluster.node(session).cli(&["EXISTS", "llm:session:seeded"]) == "1").then_some(())
        },
    )
    .await;
}
