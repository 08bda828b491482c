//! Applying a reloaded configuration to the catalog, against small in-memory fakes of its ports.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::*;
use crate::domain::model::{LogicalModel, Model, PhysicalModel};
use crate::domain::ports::{
    CachedModelList, LogicalModelStore, MockClock, MockUpstreamClient, ModelCacheStore,
    ModelListEntry, StoreError, StoreResult,
};
use crate::domain::provider::{ProviderConfig, ProviderRegistry, ProviderSet, provider_for_tests};

/// Logical models in a map; `broken` makes every call fail like an unreachable store.
#[derive(Default)]
struct Models {
    map: Mutex<HashMap<String, LogicalModel>>,
    puts: AtomicUsize,
    broken: bool,
}

impl Models {
    fn fail(&self) -> StoreResult<()> {
        if self.broken {
            Err(StoreError("store down".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl LogicalModelStore for Models {
    async fn get(&self, id: &str) -> StoreResult<Option<LogicalModel>> {
        self.fail()?;
        Ok(self.map.lock().get(id).cloned())
    }
    async fn list(&self) -> StoreResult<Vec<LogicalModel>> {
        self.fail()?;
        Ok(self.map.lock().values().cloned().collect())
    }
    async fn put(&self, model: LogicalModel) -> StoreResult<()> {
        self.fail()?;
        self.puts.fetch_add(1, Ordering::SeqCst);
        self.map.lock().insert(model.logical_id.clone(), model);
        Ok(())
    }
    async fn delete(&self, id: &str) -> StoreResult<bool> {
        self.fail()?;
        Ok(self.map.lock().remove(id).is_some())
    }
}

/// Provider model lists in a map (no expiry); counts aggregate clears.
#[derive(Default)]
struct Cache {
    lists: Mutex<HashMap<String, CachedModelList>>,
    aggregate_clears: AtomicUsize,
}

#[async_trait]
impl ModelCacheStore for Cache {
    async fn provider_models(&self, id: &str) -> StoreResult<Option<CachedModelList>> {
        Ok(self.lists.lock().get(id).cloned())
    }
    async fn put_provider_models(
        &self,
        id: &str,
        list: CachedModelList,
        _ttl: Duration,
    ) -> StoreResult<()> {
        self.lists.lock().insert(id.to_string(), list);
        Ok(())
    }
    async fn aggregate(&self) -> StoreResult<Option<Vec<ModelListEntry>>> {
        Ok(None)
    }
    async fn put_aggregate(&self, _: Vec<ModelListEntry>, _: Duration) -> StoreResult<()> {
        Ok(())
    }
    async fn clear_aggregate(&self) -> StoreResult<()> {
        self.aggregate_clears.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn upstream_of(provider: &str, model: &str) -> PhysicalModel {
    PhysicalModel {
        provider_id: provider.into(),
        model_id: model.into(),
        endpoint: String::new(),
        base_weight: 1.0,
        region: None,
        max_qps: None,
        meta_hash: None,
        updated_at: 0.0,
        pricing: None,
    }
}

fn model(id: &str, provider: &str, upstream_model: &str) -> LogicalModel {
    LogicalModel::dynamic(id, vec![upstream_of(provider, upstream_model)], 0.0)
}

fn model_list(ids: &[&str]) -> Vec<Model> {
    ids.iter()
        .map(|id| Model {
            model_id: id.to_string(),
            provider_id: String::new(),
            family: String::new(),
            display_name: id.to_string(),
            context_length: 0,
            capabilities: Vec::new(),
            pricing: None,
            metadata: None,
            meta_hash: None,
        })
        .collect()
}

struct World {
    catalog: Catalog,
    models: Arc<Models>,
    cache: Arc<Cache>,
    fetches: Arc<AtomicUsize>,
}

/// A catalog over providers `providers`, the store holding `stored`, an upstream whose model
/// list is always `["fresh"]` (counted).
fn world(providers: Vec<ProviderConfig>, stored: Vec<LogicalModel>, broken: bool) -> World {
    let models = Arc::new(Models {
        broken,
        ..Models::default()
    });
    for m in stored {
        models.map.lock().insert(m.logical_id.clone(), m);
    }
    let cache = Arc::new(Cache::default());
    let fetches = Arc::new(AtomicUsize::new(0));
    let mut upstream = MockUpstreamClient::new();
    let counted = fetches.clone();
    upstream.expect_list_models().returning(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok(model_list(&["fresh"]))
    });
    let mut clock = MockClock::new();
    clock.expect_now().return_const(5000.0);
    let catalog = Catalog::new(
        Arc::new(ProviderRegistry::new(providers)),
        models.clone(),
        cache.clone(),
        Arc::new(upstream),
        Arc::new(clock),
        Duration::from_secs(300),
    );
    World {
        catalog,
        models,
        cache,
        fetches,
    }
}

fn next(providers: Vec<ProviderConfig>, file_models: Vec<LogicalModel>) -> Reconfiguration {
    Reconfiguration {
        providers: ProviderSet::new(providers),
        file_models,
    }
}

#[tokio::test]
async fn providers_are_swapped_and_the_changes_reported() {
    let w = world(
        vec![provider_for_tests("a"), provider_for_tests("b")],
        vec![],
        false,
    );
    let held = w.catalog.providers();
    let b_rotated = ProviderConfig {
        api_key: secrecy::SecretString::from("another-key".to_string()),
        ..provider_for_tests("b")
    };
    let report = w
        .catalog
        .reconfigure(next(vec![b_rotated, provider_for_tests("c")], vec![]))
        .await
        .expect("applied");
    assert_eq!(report.providers.added, vec!["c"]);
    assert_eq!(report.providers.removed, vec!["a"]);
    assert_eq!(report.providers.changed, vec!["b"]);
    let now: Vec<String> = w.catalog.providers().iter().map(|p| p.id.clone()).collect();
    assert_eq!(now, vec!["b", "c"]);
    // A request that took its set before the reload still sees the old one.
    assert!(held.get("a").is_some() && held.get("c").is_none());
    assert_eq!(w.cache.aggregate_clears.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn file_models_are_upserted_only_when_their_definition_changed() {
    let stored_same = LogicalModel {
        updated_at: 123.0,
        ..model("same", "a", "m1")
    };
    let w = world(
        vec![provider_for_tests("a")],
        vec![stored_same, model("edited", "a", "old")],
        false,
    );
    w.catalog
        .remember_file_models(&[model("same", "a", "m1"), model("edited", "a", "old")]);
    let report = w
        .catalog
        .reconfigure(next(
            vec![provider_for_tests("a")],
            vec![
                model("same", "a", "m1"),
                model("edited", "a", "new"),
                model("added", "a", "m2"),
            ],
        ))
        .await
        .expect("applied");
    assert_eq!(report.logical_models.upserted, vec!["added", "edited"]);
    assert_eq!(w.models.puts.load(Ordering::SeqCst), 2);
    let edited = w.models.map.lock()["edited"].clone();
    assert_eq!(edited.upstreams[0].model_id, "new");
    assert_eq!(edited.updated_at, 5000.0);
    // Untouched: the store keeps its own time stamp.
    assert_eq!(w.models.map.lock()["same"].updated_at, 123.0);
}

#[tokio::test]
async fn models_dropped_from_the_file_go_unless_changed_through_the_api() {
    let w = world(
        vec![provider_for_tests("a")],
        vec![
            model("untouched", "a", "m1"),
            // What the file put was m1; an operator's PUT changed it since.
            model("edited-by-api", "a", "m9"),
            model("api-only", "a", "m3"),
        ],
        false,
    );
    w.catalog.remember_file_models(&[
        model("untouched", "a", "m1"),
        model("edited-by-api", "a", "m1"),
        model("deleted-by-api", "a", "m1"),
    ]);
    let report = w
        .catalog
        .reconfigure(next(vec![provider_for_tests("a")], vec![]))
        .await
        .expect("applied");
    assert_eq!(report.logical_models.removed, vec!["untouched"]);
    assert_eq!(report.logical_models.kept, vec!["edited-by-api"]);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("edited-by-api") && w.contains("kept")),
        "{:?}",
        report.warnings
    );
    let left: std::collections::BTreeSet<String> = w.models.map.lock().keys().cloned().collect();
    assert_eq!(
        left.into_iter().collect::<Vec<_>>(),
        vec!["api-only", "edited-by-api"]
    );

    // The next reload no longer counts the deleted model as the file's.
    let again = w
        .catalog
        .reconfigure(next(vec![provider_for_tests("a")], vec![]))
        .await
        .expect("applied");
    assert!(again.logical_models.removed.is_empty(), "{again:?}");
}

#[tokio::test]
async fn models_left_naming_a_removed_provider_are_warned_about() {
    let w = world(
        vec![provider_for_tests("a"), provider_for_tests("gone")],
        vec![model("api-made", "gone", "m1")],
        false,
    );
    let report = w
        .catalog
        .reconfigure(next(vec![provider_for_tests("a")], vec![]))
        .await
        .expect("applied");
    assert_eq!(report.providers.removed, vec!["gone"]);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("'api-made'") && w.contains("'gone'")),
        "{:?}",
        report.warnings
    );
}

#[tokio::test]
async fn an_unreadable_store_refuses_the_reload_and_changes_nothing() {
    let w = world(vec![provider_for_tests("a")], vec![], true);
    let refused = w
        .catalog
        .reconfigure(next(vec![provider_for_tests("b")], vec![]))
        .await
        .expect_err("refused");
    assert_eq!(refused.cause, RefusalCause::StoreUnavailable);
    assert!(
        refused.to_string().contains("nothing was changed"),
        "{refused}"
    );
    let ids: Vec<String> = w.catalog.providers().iter().map(|p| p.id.clone()).collect();
    assert_eq!(ids, vec!["a"]);
}

#[tokio::test]
async fn a_changed_provider_s_cached_model_list_is_fetched_again_once() {
    let w = world(
        vec![provider_for_tests("a"), provider_for_tests("b")],
        vec![],
        false,
    );
    for id in ["a", "b"] {
        w.cache.lists.lock().insert(
            id.to_string(),
            CachedModelList::Models {
                models: model_list(&["cached"]),
            },
        );
    }
    let a_moved = ProviderConfig {
        base_url: "http://elsewhere.test".into(),
        ..provider_for_tests("a")
    };
    w.catalog
        .reconfigure(next(vec![a_moved, provider_for_tests("b")], vec![]))
        .await
        .expect("applied");

    let a = w.catalog.provider_models("a").await.expect("a's models");
    assert_eq!(a[0].model_id, "fresh");
    assert_eq!(w.fetches.load(Ordering::SeqCst), 1);
    // Unchanged provider: its cache still serves.
    let b = w.catalog.provider_models("b").await.expect("b's models");
    assert_eq!(b[0].model_id, "cached");
    // The refetched list is cached now; no second fetch.
    let again = w.catalog.provider_models("a").await.expect("a's models");
    assert_eq!(again[0].model_id, "fresh");
    assert_eq!(w.fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn what_the_api_did_to_an_entry_the_file_did_not_change_stands() {
    let w = world(
        vec![provider_for_tests("a")],
        // `tuned` was changed by a PUT since start-up; `deleted` was deleted by a DELETE.
        vec![model("tuned", "a", "by-api")],
        false,
    );
    w.catalog
        .remember_file_models(&[model("tuned", "a", "m1"), model("deleted", "a", "m1")]);
    let report = w
        .catalog
        .reconfigure(next(
            vec![provider_for_tests("a")],
            vec![model("tuned", "a", "m1"), model("deleted", "a", "m1")],
        ))
        .await
        .expect("applied");
    assert!(report.logical_models.upserted.is_empty(), "{report:?}");
    assert_eq!(w.models.puts.load(Ordering::SeqCst), 0);
    assert_eq!(w.models.map.lock()["tuned"].upstreams[0].model_id, "by-api");
    assert!(!w.models.map.lock().contains_key("deleted"));

    // Once the file changes the entry, the file's version goes in.
    let report = w
        .catalog
        .reconfigure(next(
            vec![provider_for_tests("a")],
            vec![model("tuned", "a", "m2"), model("deleted", "a", "m1")],
        ))
        .await
        .expect("applied");
    assert_eq!(report.logical_models.upserted, vec!["tuned"]);
    assert_eq!(w.models.map.lock()["tuned"].upstreams[0].model_id, "m2");
}
