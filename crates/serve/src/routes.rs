//! HTTP: the endpoints, the guard every request passes (Host, API key), and the two ways a reply
//! goes out (one JSON body, or server-sent events).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use ember_model::SamplingConfig;
use ember_tokenizer::{ENDOFTEXT, render_prompt, stop_ids};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::api::{self, ApiError, Sampling};
use crate::engine::ModelInfo;
use crate::reply::{Kind, answer};
use crate::{App, Options};

/// The chat page served at `/`.
const PAGE: &str = include_str!("page.html");

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn request_id(prefix: &str, app: &App) -> String {
    let n = app.next_id.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{:x}{n:06x}", now())
}

/// Checks the Host header (DNS rebinding) and the API key; counts refusals.
pub async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if let Err(e) = check(&app.options, req.headers(), req.uri().path()) {
        app.shared.metrics.errors.fetch_add(1, Ordering::Relaxed);
        return e.into_response();
    }
    let res = next.run(req).await;
    if res.status().is_client_error() || res.status().is_server_error() {
        app.shared.metrics.errors.fetch_add(1, Ordering::Relaxed);
    }
    res
}

fn check(o: &Options, headers: &HeaderMap, path: &str) -> Result<(), ApiError> {
    if !o.allowed_hosts.is_empty() {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let name = match host.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or(""),
            None => host.rsplit_once(':').map_or(host, |(h, _)| h),
        };
        if !o.allowed_hosts.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                format!(
                    "Host {host:?} is not one this server answers to ({}); pass --allowed-host to add it",
                    o.allowed_hosts.join(", ")
                ),
            )
            .code("host_not_allowed"));
        }
    }
    let open = matches!(path, "/" | "/health");
    if let (Some(key), false) = (&o.api_key, open) {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(key.as_bytes())) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "Incorrect API key provided: pass the server's --api-key as `Authorization: Bearer KEY`",
            )
            .code("invalid_api_key"));
        }
    }
    Ok(())
}

/// `GET /`: the chat page.
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

fn loaded(app: &App) -> Result<&ModelInfo, ApiError> {
    if let Some(e) = app.shared.load_error.get() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            format!("the model failed to load: {e}"),
        ));
    }
    app.shared.info.get().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the model is still loading; retry when GET /health answers 200",
        )
    })
}

/// `GET /health`: 200 once the model is loaded, 503 before.
pub async fn health(State(app): State<Arc<App>>) -> Response {
    match loaded(&app) {
        Ok(_) => Json(json!({"status": "ok"})).into_response(),
        Err(e) => (
            e.status,
            Json(json!({"status": "loading", "error": e.message})),
        )
            .into_response(),
    }
}

/// `GET /v1/models`.
pub async fn models(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    let info = loaded(&app)?;
    Ok(Json(
        json!({"object": "list", "data": [model_entry(info, app.started)]}),
    ))
}

fn model_entry(info: &ModelInfo, created: u64) -> Value {
    json!({"id": info.id, "object": "model", "created": created, "owned_by": "ember",
        "context_length": info.context_length, "checkpoint": info.checkpoint.display().to_string(),
        "fingerprint": info.fingerprint})
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    let m = &app.shared.metrics;
    let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let body = format!(
        "# TYPE ember_requests_total counter\nember_requests_total {}\n\
         # TYPE ember_errors_total counter\nember_errors_total {}\n\
         # TYPE ember_cancelled_total counter\nember_cancelled_total {}\n\
         # TYPE ember_prompt_tokens_total counter\nember_prompt_tokens_total {}\n\
         # TYPE ember_prompt_passes_total counter\nember_prompt_passes_total {}\n\
         # TYPE ember_generated_tokens_total counter\nember_generated_tokens_total {}\n\
         # TYPE ember_queue_depth gauge\nember_queue_depth {}\n\
         # TYPE ember_decoding gauge\nember_decoding {}\n\
         # TYPE ember_decode_steps_total counter\nember_decode_steps_total {}\n\
         # TYPE ember_generation_seconds summary\nember_generation_seconds_sum {:.6}\nember_generation_seconds_count {}\n",
        g(&m.requests),
        g(&m.errors),
        g(&m.cancelled),
        g(&m.prompt_tokens),
        g(&m.prompt_passes),
        g(&m.generated_tokens),
        (app.shared.in_flight.load(Ordering::SeqCst) as u64).saturating_sub(g(&m.decoding)),
        g(&m.decoding),
        g(&m.steps),
        g(&m.busy_micros) as f64 / 1e6,
        g(&m.generations),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Reads a JSON body: 415 if it is not declared JSON, 413 if larger than the limit, 400 if it
/// does not parse.
async fn json_body(app: &App, req: Request) -> Result<Value, ApiError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !ct.to_ascii_lowercase().starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request_error",
            format!("Content-Type {ct:?}: expected application/json"),
        ));
    }
    let limit = app.options.max_body_bytes;
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!("the request body is larger than the server's limit of {limit} bytes"),
            )
        })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad("body", format!("the body is not valid JSON: {e}")))
}

/// `POST /tokenize`: `{"content": TEXT}` → `{"tokens": [...]}` (special-token text stays text).
pub async fn tokenize(State(app): State<Arc<App>>, req: Request) -> Result<Json<Value>, ApiError> {
    let info = loaded(&app)?.clone();
    let v = json_body(&app, req).await?;
    let text = v
        .get("content")
        .or_else(|| v.get("text"))
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad("content", "content: expected the text to tokenize"))?;
    let ids = info.tokenizer.encode(text);
    Ok(Json(json!({"tokens": ids, "count": ids.len()})))
}

/// A request ready for the model.
pub(crate) struct Prepared {
    pub prompt: Vec<u32>,
    pub cfg: SamplingConfig,
    pub s: Sampling,
    pub model: String,
    pub fingerprint: String,
}

fn prepare(
    info: &ModelInfo,
    s: Sampling,
    prompt: Vec<u32>,
    stops: Vec<u32>,
) -> Result<Prepared, ApiError> {
    let ctx = info.context_length;
    let room = ctx.saturating_sub(prompt.len());
    let max = s.max_tokens.unwrap_or(room);
    if prompt.is_empty() {
        return Err(ApiError::bad("messages", "the prompt is empty"));
    }
    if prompt.len() + s.max_tokens.unwrap_or(1) > ctx || max == 0 {
        let param = if s.max_tokens.is_some() {
            "max_tokens"
        } else {
            "messages"
        };
        return Err(ApiError::bad(
            param,
            format!(
                "This model's maximum context length is {ctx} tokens. However, you requested {} tokens ({} in the messages, {} in the completion). Please reduce the length of the messages or completion.",
                prompt.len() + s.max_tokens.unwrap_or(1),
                prompt.len(),
                s.max_tokens.unwrap_or(1)
            ),
        )
        .code("context_length_exceeded"));
    }
    let cfg = SamplingConfig {
        max_new_tokens: max,
        temperature: s.temperature,
        top_k: s.top_k,
        top_p: s.top_p,
        repetition_penalty: 1.0,
        // No seed: a fresh one per request, as OpenAI samples.
        seed: s.seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        }),
        stop_ids: stops,
        stop_strings: s.stop.clone(),
        logit_bias: s.logit_bias.clone(),
    };
    cfg.check_bias(info.vocab_size)
        .map_err(|e| ApiError::bad("logit_bias", e.to_string()))?;
    Ok(Prepared {
        prompt,
        cfg,
        s,
        model: info.id.clone(),
        fingerprint: info.fingerprint.clone(),
    })
}

/// `POST /v1/chat/completions`.
pub async fn chat(State(app): State<Arc<App>>, req: Request) -> Response {
    let result = async {
        let info = loaded(&app)?.clone();
        let v = json_body(&app, req).await?;
        let s = api::sampling(&v)?;
        let messages = api::messages(&v)?;
        let prompt = render_prompt(&info.tokenizer, &messages)
            .map_err(|e| ApiError::bad("messages", e.to_string()))?;
        prepare(&info, s, prompt, stop_ids(&info.tokenizer))
    }
    .await;
    match result {
        Ok(p) => answer(app, p, Kind::Chat).await,
        Err(e) => e.into_response(),
    }
}

/// `POST /v1/completions`: plain text continued (special-token text stays text); ends at
/// `<|endoftext|>`.
pub async fn completions(State(app): State<Arc<App>>, req: Request) -> Response {
    let result = async {
        let info = loaded(&app)?.clone();
        let v = json_body(&app, req).await?;
        let s = api::sampling(&v)?;
        let text = match v.get("prompt") {
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
                a[0].as_str().unwrap_or_default().to_string()
            }
            _ => {
                return Err(ApiError::bad(
                    "prompt",
                    "prompt: expected a string (or a list of one string)",
                ));
            }
        };
        let stops = info.tokenizer.token_to_id(ENDOFTEXT).into_iter().collect();
        prepare(&info, s, info.tokenizer.encode(&text), stops)
    }
    .await;
    match result {
        Ok(p) => answer(app, p, Kind::Text).await,
        Err(e) => e.into_response(),
    }
}

/// 404 as an OpenAI error.
pub async fn not_found(req: Request<Body>) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("no such endpoint: {} {}", req.method(), req.uri().path()),
    )
    .code("not_found")
}

/// 405 as an OpenAI error.
pub async fn wrong_method(req: Request<Body>) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
    .code("method_not_allowed")
}
