//! `ember serve`: an OpenAI-compatible HTTP server for a checkpoint, and a web chat page.
//!
//! The HTTP side runs on a small tokio runtime (one worker thread, so it never competes with
//! the compute pool); the model lives on its own thread and takes requests from a bounded queue
//! (`engine`). Endpoints (`routes`): `POST /v1/chat/completions` and `POST /v1/completions`
//! (whole or streamed as server-sent events; concurrent requests are decoded together), `GET /v1/models`, `GET /health`, `GET /metrics`,
//! `POST /tokenize`, and the chat page at `/`. Requests are checked field by field and refused
//! with OpenAI error objects (`api`).
//!
//! Safe by default: it binds 127.0.0.1, answers only to Host names that point at the bind
//! address (DNS rebinding), sends no CORS headers unless origins are listed, caps body size and
//! message count, and checks an optional API key in constant time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::http::{HeaderValue, Method, header};
use axum::routing::{get, post};
use ember_model::SelectedDevice;

pub mod api;
pub mod engine;
mod reply;
mod routes;

/// Settings of the server.
#[derive(Debug, Clone)]
pub struct Options {
    /// The checkpoint directory to serve.
    pub checkpoint: PathBuf,
    /// The model id clients name (default: the run or checkpoint directory's name).
    pub model_id: String,
    /// Address to bind.
    pub addr: SocketAddr,
    /// Require `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// Requests decoded together (continuous batching).
    pub max_batch: usize,
    /// Requests that may wait while a full batch decodes; more get 503 with `Retry-After`.
    pub max_queue: usize,
    /// Largest request body in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Origins allowed to call the API from a browser (CORS); none: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Host names the server answers to (empty: any).
    pub allowed_hosts: Vec<String>,
    /// How often an idle stream gets a `: ping` comment (15 s; tests shorten it).
    pub ping_interval: std::time::Duration,
    /// Milliseconds to wait before each decoding step (tests of cancellation and queueing).
    pub token_delay_ms: u64,
}

/// What the handlers share.
pub struct App {
    options: Options,
    shared: Arc<engine::Shared>,
    jobs: Mutex<std::sync::mpsc::Sender<engine::Job>>,
    next_id: AtomicU64,
    started: u64,
}

/// The Host names that reach a server bound to `addr`: for a loopback address, the loopback
/// names; for a specific address, that address; for 0.0.0.0 or ::, any (empty list).
pub fn default_hosts(addr: &SocketAddr) -> Vec<String> {
    let ip = addr.ip();
    if ip.is_loopback() {
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
    } else if ip.is_unspecified() {
        Vec::new()
    } else {
        vec![ip.to_string()]
    }
}

/// Runs the server until SIGTERM or Ctrl-C: binds, prints `listening on http://ADDR`, loads the
/// model on its own thread (`/health` answers 503 until it is ready), then serves. On the
/// signal it stops accepting, lets requests in flight finish, and returns.
pub fn run(options: Options, device: SelectedDevice) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("ember-http")
        .enable_all()
        .build()?;
    rt.block_on(serve(options, device))
}

async fn serve(options: Options, device: SelectedDevice) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", options.addr))?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(engine::Shared {
        info: OnceLock::new(),
        load_error: OnceLock::new(),
        in_flight: Arc::new(AtomicUsize::new(0)),
        metrics: engine::Metrics::default(),
        closing: AtomicBool::new(false),
    });
    let jobs = engine::start(
        options.checkpoint.clone(),
        options.model_id.clone(),
        device,
        Arc::clone(&shared),
        options.max_batch,
        options.token_delay_ms,
    )?;
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let cors = options.cors_origins.clone();
    let app = Arc::new(App {
        options,
        shared: Arc::clone(&shared),
        jobs: Mutex::new(jobs),
        next_id: AtomicU64::new(0),
        started,
    });
    let mut router = Router::new()
        .route("/", get(routes::page))
        .route("/health", get(routes::health))
        .route("/metrics", get(routes::metrics))
        .route("/v1/models", get(routes::models))
        .route("/v1/chat/completions", post(routes::chat))
        .route("/v1/completions", post(routes::completions))
        .route("/tokenize", post(routes::tokenize))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::wrong_method)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            routes::guard,
        ))
        .with_state(Arc::clone(&app));
    if !cors.is_empty() {
        let origins: Vec<HeaderValue> = cors
            .iter()
            .map(|o| HeaderValue::from_str(o))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("--cors-origin: {e}"))?;
        router = router.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]),
        );
    }
    println!("listening on http://{addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let closing = Arc::clone(&shared);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            closing.closing.store(true, Ordering::SeqCst);
            eprintln!("shutting down: no new connections; finishing requests in flight");
        })
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
