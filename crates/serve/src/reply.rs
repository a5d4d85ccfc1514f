//! A reply on its way out: the request waits for a queue slot, goes to the model thread, and
//! comes back as one JSON body or as server-sent events.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event as Sse, KeepAlive};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::App;
use crate::api::{self, ApiError};
use crate::engine::{Event, Job, Slot};
use crate::routes::{Prepared, now, request_id};

/// Which endpoint a reply is for.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Text,
}

/// Queues the request and answers it whole or as a stream.
pub(crate) async fn answer(app: Arc<App>, p: Prepared, kind: Kind) -> Response {
    let limit = app.options.max_queue + app.options.max_batch;
    let Some(slot) = Slot::take(&app.shared.in_flight, limit) else {
        let mut r = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            format!(
                "the server is busy ({limit} requests in flight: --max-batch {} decoding, --max-queue {} waiting); retry shortly",
                app.options.max_batch, app.options.max_queue
            ),
        )
        .code("queue_full")
        .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    if app.shared.closing.load(Ordering::SeqCst) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the server is shutting down",
        )
        .into_response();
    }
    app.shared.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::unbounded_channel();
    let job = Job {
        prompt: p.prompt.clone(),
        cfg: p.cfg.clone(),
        events: tx,
        slot,
    };
    let sent = app
        .jobs
        .lock()
        .map(|j| j.send(job).is_ok())
        .unwrap_or(false);
    if !sent {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the model thread has stopped",
        )
        .into_response();
    }
    let id = request_id(
        match kind {
            Kind::Chat => "chatcmpl",
            Kind::Text => "cmpl",
        },
        &app,
    );
    if p.s.stream {
        stream(p, kind, id, rx, app.options.ping_interval)
    } else {
        whole(p, kind, id, rx).await
    }
}

/// Collects the reply and answers with one JSON body. If the client goes away, dropping this
/// future drops the receiver, which stops the model thread within one token.
async fn whole(
    p: Prepared,
    kind: Kind,
    id: String,
    mut rx: mpsc::UnboundedReceiver<Event>,
) -> Response {
    let mut text = String::new();
    while let Some(e) = rx.recv().await {
        match e {
            Event::Text(t) => text.push_str(&t),
            Event::Failed(m) => {
                return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", m)
                    .into_response();
            }
            Event::Done { stop, tokens } => {
                let choice = match kind {
                    Kind::Chat => {
                        json!({"index": 0, "message": {"role": "assistant", "content": text},
                        "logprobs": null, "finish_reason": api::finish_reason(&stop)})
                    }
                    Kind::Text => json!({"index": 0, "text": text, "logprobs": null,
                        "finish_reason": api::finish_reason(&stop)}),
                };
                let object = match kind {
                    Kind::Chat => "chat.completion",
                    Kind::Text => "text_completion",
                };
                return Json(
                    json!({"id": id, "object": object, "created": now(), "model": p.model,
                    "system_fingerprint": p.fingerprint, "choices": [choice],
                    "usage": api::usage(p.prompt.len(), tokens)}),
                )
                .into_response();
            }
        }
    }
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the model thread stopped mid-reply",
    )
    .into_response()
}

/// Server-sent events: the role first, then text deltas (never empty), a last chunk with the
/// finish reason, usage if asked, `[DONE]`. An error mid-stream is sent as a last event.
fn stream(
    p: Prepared,
    kind: Kind,
    id: String,
    rx: mpsc::UnboundedReceiver<Event>,
    ping: Duration,
) -> Response {
    let created = now();
    let object = match kind {
        Kind::Chat => "chat.completion.chunk",
        Kind::Text => "text_completion",
    };
    let chunk = move |choice: Value| -> Value {
        json!({"id": id, "object": object, "created": created, "model": p.model,
            "system_fingerprint": p.fingerprint, "choices": [choice]})
    };
    let prompt_len = p.prompt.len();
    let include_usage = p.s.include_usage;
    enum St {
        Start,
        Body,
        Usage(usize),
        Done,
        End,
    }
    let first = match kind {
        Kind::Chat => Some(chunk(
            json!({"index": 0, "delta": {"role": "assistant", "content": ""},
            "logprobs": null, "finish_reason": null}),
        )),
        Kind::Text => None,
    };
    let events = futures_util::stream::unfold(
        (St::Start, rx, first, chunk),
        move |(st, mut rx, first, chunk)| async move {
            let data = |v: &Value| Sse::default().data(v.to_string());
            match st {
                St::Start => match &first {
                    Some(f) => Some((Ok::<_, Infallible>(data(f)), (St::Body, rx, None, chunk))),
                    None => Some((
                        Ok(Sse::default().comment("start")),
                        (St::Body, rx, None, chunk),
                    )),
                },
                St::Body => match rx.recv().await {
                    Some(Event::Text(t)) => {
                        let c = match kind {
                            Kind::Chat => {
                                json!({"index": 0, "delta": {"content": t}, "logprobs": null, "finish_reason": null})
                            }
                            Kind::Text => {
                                json!({"index": 0, "text": t, "logprobs": null, "finish_reason": null})
                            }
                        };
                        Some((Ok(data(&chunk(c))), (St::Body, rx, None, chunk)))
                    }
                    Some(Event::Done { stop, tokens }) => {
                        let reason = api::finish_reason(&stop);
                        let c = match kind {
                            Kind::Chat => {
                                json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": reason})
                            }
                            Kind::Text => {
                                json!({"index": 0, "text": "", "logprobs": null, "finish_reason": reason})
                            }
                        };
                        let next = if include_usage {
                            St::Usage(tokens)
                        } else {
                            St::Done
                        };
                        Some((Ok(data(&chunk(c))), (next, rx, None, chunk)))
                    }
                    Some(Event::Failed(m)) => {
                        let e = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", m);
                        Some((Ok(data(&e.body())), (St::Done, rx, None, chunk)))
                    }
                    None => {
                        let e = ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "server_error",
                            "the model thread stopped mid-reply",
                        );
                        Some((Ok(data(&e.body())), (St::Done, rx, None, chunk)))
                    }
                },
                St::Usage(tokens) => {
                    let mut c = chunk(json!(null));
                    c["choices"] = json!([]);
                    c["usage"] = api::usage(prompt_len, tokens);
                    Some((Ok(data(&c)), (St::Done, rx, None, chunk)))
                }
                St::Done => Some((
                    Ok(Sse::default().data("[DONE]")),
                    (St::End, rx, None, chunk),
                )),
                St::End => None,
            }
        },
    );
    axum::response::Sse::new(events)
        .keep_alive(KeepAlive::new().interval(ping).text("ping"))
        .into_response()
}
