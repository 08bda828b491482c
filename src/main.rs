//! The composition root: reads the configuration, picks and wires the adapters, runs the server.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use apiproxy::app::reload::{Reloader, Source as ReloadSource, read_environment};
use apiproxy::app::{Options, Stores, assemble};
use apiproxy::config::Settings;
use apiproxy::domain::health::BreakerPolicy;
use apiproxy::domain::model::{LogicalModel, PhysicalModel};
use apiproxy::domain::ports::{Clock, LogicalModelStore};
use apiproxy::domain::provider::ProviderRegistry;
use apiproxy::domain::service::catalog::Reload;
use apiproxy::domain::service::chat::{ChatSettings, Timeouts};
use apiproxy::outbound::memory::MemoryStores;
use apiproxy::outbound::redis::RedisStores;
use apiproxy::outbound::system::SystemClock;
use apiproxy::outbound::upstream::{HttpUpstream, HttpUpstreamSettings, MaskHeaders};
use base64::Engine;
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "apiproxy",
    version,
    about = "An AI gateway: one OpenAI- and Anthropic-compatible endpoint in front of many LLM providers"
)]
struct Cli {
    /// Bind address (overrides HOST).
    #[arg(long, global = true)]
    host: Option<String>,
    /// Port (overrides PORT; 0 picks a free one).
    #[arg(long, global = true)]
    port: Option<u16>,
    /// The .env file to load (overrides APIPROXY_ENV_FILE; default .env).
    #[arg(long, global = true)]
    env_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Serve,
    /// Run the gateway with two built-in mock providers and a logical model `demo`: no account needed.
    Demo,
    /// Print the Base64 form of a gateway token and the header to send.
    EncodeToken { token: String },
    /// Validate the configuration, print the resolved providers (keys masked) and logical models.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::EncodeToken { ref token }) => encode_token(token),
        Some(Command::CheckConfig) => match load_settings(&cli) {
            Ok((settings, warnings)) => check_config(&settings, &warnings),
            Err(message) => fail(&message),
        },
        Some(Command::Demo) => run(&cli, true),
        Some(Command::Serve) | None => run(&cli, false),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("apiproxy: {message}");
    ExitCode::FAILURE
}

fn encode_token(token: &str) -> ExitCode {
    if token.is_empty() {
        return fail("the token must not be empty");
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(token.as_bytes());
    println!("Base64: {encoded}\n\nSend it as:\nAuthorization: Bearer {encoded}");
    ExitCode::SUCCESS
}

/// `.env` first (never overriding the real environment), then the environment, then the flags.
fn load_settings(cli: &Cli) -> Result<(Settings, Vec<String>), String> {
    let env_file = cli
        .env_file
        .clone()
        .or_else(|| std::env::var_os("APIPROXY_ENV_FILE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".env"));
    // The same reading a reload does (app::reload), so the two cannot drift apart.
    let vars = apiproxy::app::reload::read_environment(&env_file, cli.env_file.is_some())?;
    let (mut settings, warnings) = Settings::from_vars(&vars).map_err(|e| e.to_string())?;
    if let Some(host) = &cli.host {
        settings.host = host.clone();
    }
    if let Some(port) = cli.port {
        settings.port = port;
    }
    settings.check_exposure().map_err(|e| e.to_string())?;
    Ok((settings, warnings))
}

fn check_config(settings: &Settings, warnings: &[String]) -> ExitCode {
    for warning in warnings {
        println!("warning: {warning}");
    }
    let models = match settings.load_logical_models() {
        Ok(models) => models,
        Err(e) => return fail(&e.to_string()),
    };
    println!("listen: {}:{}", settings.host, settings.port);
    println!(
        "store: {}",
        settings
            .redis
            .as_ref()
            .map_or_else(|| "in-memory".to_string(), |t| t.describe())
    );
    println!("providers ({}):", settings.providers.len());
    for p in &settings.providers {
        println!(
            "  {} ({}) vendor={} base_url={} chat={} models={} weight={} key={}",
            p.id,
            p.name,
            p.vendor,
            p.masked_base_url(),
            p.chat_path,
            p.models_path,
            p.weight,
            p.masked_key()
        );
    }
    println!("logical models ({}):", models.len());
    for m in &models {
        let upstreams: Vec<String> = m
            .upstreams
            .iter()
            .map(|u| format!("{}/{}@{}", u.provider_id, u.model_id, u.base_weight))
            .collect();
        println!("  {} -> {}", m.logical_id, upstreams.join(", "));
    }
    println!("configuration OK");
    ExitCode::SUCCESS
}

fn run(cli: &Cli, demo: bool) -> ExitCode {
    let (settings, warnings) = match load_settings(cli) {
        Ok(loaded) => loaded,
        Err(message) => return fail(&message),
    };
    // This thread is serving worker 0; `app::serve` starts the others (one per core).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    apiproxy::worker::enter(0, runtime.handle().clone());
    apiproxy::logging::init(&settings);
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    match runtime.block_on(serve(settings, demo, env_file_of(cli))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

/// Demo mode: two mock providers on free ports and a logical model over both.
async fn add_demo_providers(settings: &mut Settings) -> Result<Vec<LogicalModel>, String> {
    let mut upstreams = Vec::new();
    for (id, weight) in [("mock-a", "3"), ("mock-b", "1")] {
        let config = apiproxy::mock::MockConfig {
            name: id.into(),
            models: vec!["demo-model".into()],
            reply_words: 12,
        };
        let addr = apiproxy::mock::spawn("127.0.0.1:0", config).await?;
        let vars: BTreeMap<String, String> = [
            ("LLM_PROVIDERS".to_string(), id.to_string()),
            (format!("LLM_PROVIDER_{id}_NAME"), format!("Demo {id}")),
            (
                format!("LLM_PROVIDER_{id}_BASE_URL"),
                format!("http://{addr}"),
            ),
            (format!("LLM_PROVIDER_{id}_API_KEY"), "demo-key".to_string()),
            (format!("LLM_PROVIDER_{id}_WEIGHT"), weight.to_string()),
        ]
        .into_iter()
        .collect();
        let (demo, _) = Settings::from_vars(&vars).map_err(|e| e.to_string())?;
        settings.providers.extend(demo.providers);
        upstreams.push(PhysicalModel {
            provider_id: id.into(),
            model_id: "demo-model".into(),
            endpoint: String::new(),
            base_weight: weight.parse().unwrap_or(1.0),
            region: None,
            max_qps: None,
            meta_hash: None,
            updated_at: 0.0,
            pricing: None,
        });
    }
    let mut demo = LogicalModel::dynamic("demo", upstreams, 0.0);
    demo.description = "Demo logical model over two built-in mock providers (weights 3:1)".into();
    Ok(vec![demo])
}

/// The environment file start-up read, and whether it had to exist: what a reload reads again.
fn env_file_of(cli: &Cli) -> (PathBuf, bool) {
    let path = cli
        .env_file
        .clone()
        .or_else(|| std::env::var_os("APIPROXY_ENV_FILE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".env"));
    (path, cli.env_file.is_some())
}

async fn serve(
    mut settings: Settings,
    demo: bool,
    (env_file, env_file_required): (PathBuf, bool),
) -> Result<(), String> {
    let file_models = settings.load_logical_models().map_err(|e| e.to_string())?;
    let mut logical_models = file_models.clone();
    let configured = settings.providers.len();
    if demo {
        logical_models.extend(add_demo_providers(&mut settings).await?);
    }
    // Providers the process added itself (demo mode's mocks): a reload keeps them.
    let pinned = settings.providers[configured..].to_vec();
    if settings.providers.is_empty() {
        tracing::warn!(
            "no providers are configured (LLM_PROVIDERS); chat requests will answer 404 until one is"
        );
    }

    let metrics_handle = apiproxy::outbound::prometheus::install()?;
    apiproxy::outbound::prometheus::spawn_upkeep(
        metrics_handle.clone(),
        apiproxy::outbound::prometheus::UPKEEP_PERIOD,
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // The console overview's samples: every 2 s, off the request path, always on (no backlog).
    let traffic = Arc::new(apiproxy::outbound::console_stats::TrafficRing::default());
    apiproxy::outbound::console_stats::spawn_sampler(
        metrics_handle.clone(),
        traffic.clone(),
        clock.clone(),
        apiproxy::outbound::console_stats::INTERVAL,
    )
    .map_err(|e| format!("cannot start the console's sampler thread: {e}"))?;
    let providers = Arc::new(ProviderRegistry::new(settings.providers.clone()));
    let mask = settings.mask_as_browser.then(|| MaskHeaders {
        user_agent: settings.mask_user_agent.clone(),
        origin: settings.mask_origin.clone(),
        referer: settings.mask_referer.clone(),
    });
    let upstream = Arc::new(HttpUpstream::new(
        &HttpUpstreamSettings {
            connect_timeout: settings.upstream_connect_timeout,
            mask,
            workers: settings.workers,
        },
        &providers.snapshot(),
    )?);
    let stores = open_stores(&settings, clock.clone(), logical_models).await?;
    let store_status = stores.status.clone();
    let options = Options {
        models_cache_ttl: settings.models_cache_ttl,
        breaker: BreakerPolicy {
            failure_threshold: settings.provider_failure_threshold,
            cooldown_seconds: settings.provider_cooldown.as_secs_f64(),
            probe_lease_seconds: settings.upstream_timeout.as_secs_f64(),
        },
        chat: ChatSettings {
            timeouts: Timeouts {
                first_byte: settings.upstream_first_byte_timeout,
                idle: settings.upstream_idle_timeout,
                total: settings.upstream_timeout,
            },
            session_ttl: settings.session_ttl,
            context_max_entries: settings.context_max_entries,
            context_ttl: settings.context_ttl,
            ..ChatSettings::default()
        },
        auth_token: settings.auth_token.clone(),
        admin_token: settings.admin_token.clone(),
        metrics_public: settings.metrics_public,
        max_body_bytes: settings.max_request_body_bytes,
        admission: apiproxy::inbound::http::Admission::new(
            settings.max_in_flight,
            settings.client_body_timeout,
        ),
        log_bodies: settings.log_bodies,
        metrics_handle: Some(metrics_handle),
        traffic: Some(traffic),
    };
    let state = assemble(providers.clone(), stores, upstream.clone(), clock, options);
    let source = ReloadSource {
        env_file,
        required: env_file_required,
        host: settings.host.clone(),
        port: settings.port,
    };
    // The baseline a reload compares against, to name restart-only variables that changed.
    let vars = read_environment(&source.env_file, source.required).unwrap_or_else(|e| {
        tracing::warn!("{e}; the first reload may report unchanged variables as changed");
        BTreeMap::new()
    });
    let reloader = Arc::new(Reloader::new(
        source,
        state.catalog.clone(),
        upstream,
        pinned,
        vars,
        &file_models,
    ));
    let _ = state.reload.set(reloader.clone());
    // Before listening: a SIGHUP that arrives once /health answers must reload, not terminate.
    reload_on_sighup(reloader);

    let addr = format!("{}:{}", settings.host, settings.port);
    let (sockets, bound) = apiproxy::inbound::http::bind_sockets(&addr, settings.workers)?;
    let shown = bound.to_string();
    tracing::info!(
        providers = providers.snapshot().len(),
        workers = settings.workers,
        "apiproxy listening on http://{shown}"
    );
    if demo {
        let token = base64::engine::general_purpose::STANDARD
            .encode(settings.auth_token.expose_secret().as_bytes());
        let token = if settings.auth_token_is_default {
            token
        } else {
            "<base64 of your APIPROXY_AUTH_TOKEN>".into()
        };
        println!(
            "\nAPIProxy demo is running on http://{shown} with mock providers mock-a (weight 3) and mock-b (weight 1).\nTry:\n\n  curl http://{shown}/v1/chat/completions -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' -d '{{\"model\":\"demo\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'\n\nPress Ctrl-C to stop.\n"
        );
    }

    apiproxy::app::serve::serve_workers(
        sockets,
        &addr,
        state,
        settings.shutdown_grace,
        shutdown_signal(),
    )
    .await?;
    // The last requests' bookkeeping the store still holds back (Redis: the write-behind batch).
    store_status.flush().await;
    tracing::info!("apiproxy stopped");
    Ok(())
}

async fn open_stores(
    settings: &Settings,
    clock: Arc<dyn Clock>,
    mut seed: Vec<LogicalModel>,
) -> Result<Stores, String> {
    for model in &mut seed {
        model.updated_at = clock.now();
    }
    if let Some(target) = &settings.redis {
        let redis = RedisStores::with_options(
            target,
            settings.redis_pool_size,
            clock,
            settings.context_max_sessions,
            settings.redis_write_interval,
        )?;
        if redis.backend.ping().await {
            tracing::info!("state store: {}", target.describe());
            if let Err(e) = redis.logical_models.migrate().await {
                tracing::warn!(error = %e, "could not move the logical-model index sets to their new keys");
            }
        } else {
            tracing::warn!("state store: Redis is not answering; serving without it until it does");
        }
        redis.logical_models.seed(seed);
        return Ok(Stores {
            logical_models: redis.logical_models,
            model_cache: redis.model_cache,
            sessions: redis.sessions,
            context: redis.context,
            metrics: redis.metrics,
            circuits: redis.circuits,
            qps: redis.qps,
            keys: redis.keys,
            ledger: redis.ledger,
            usage: redis.usage,
            status: Arc::new(apiproxy::outbound::redis::RedisStatus {
                backend: redis.backend,
                batch: redis.batch,
            }),
        });
    }
    let memory = MemoryStores::with_context_bound(clock, settings.context_max_sessions);
    for model in seed {
        memory
            .logical_models
            .put(model)
            .await
            .map_err(|e| e.to_string())?;
    }
    tracing::info!("state store: in memory (set REDIS_URL to share state between instances)");
    Ok(memory.into())
}

/// Every `SIGHUP` reloads the configuration (SPEC 8); the reloader logs the outcome (a refusal at
/// error level, with its reasons).
fn reload_on_sighup(reloader: Arc<Reloader>) {
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hangups) => {
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    let _ = reloader.reload("SIGHUP").await;
                }
            });
        }
        Err(e) => {
            tracing::warn!(error = %e, "SIGHUP cannot be caught; POST /admin/reload still reloads")
        }
    }
    #[cfg(not(unix))]
    drop(reloader);
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
