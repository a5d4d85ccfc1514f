//! The OpenAI wire format: requests checked field by field (every refusal names the parameter
//! and what is allowed), error objects, and the response bodies.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ember_tokenizer::{Message, Role};
use serde_json::{Value, json};

/// An OpenAI error object with its HTTP status.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong and what is allowed.
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `server_error`, ...
    pub kind: &'static str,
    /// The request parameter at fault.
    pub param: Option<String>,
    /// A machine-readable code (`context_length_exceeded`, `invalid_api_key`, ...).
    pub code: Option<&'static str>,
}

impl ApiError {
    /// A 400 naming `param`.
    pub fn bad(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: Some(param.into()),
            code: None,
        }
    }

    /// An error of any status without a parameter.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
        }
    }

    /// With a code.
    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// The JSON body: `{"error": {"message", "type", "param", "code"}}`.
    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// Sampling settings of a request, checked.
#[derive(Debug, Clone)]
pub struct Sampling {
    /// `max_completion_tokens` or `max_tokens`; `None`: as many as fit.
    pub max_tokens: Option<usize>,
    /// 0–2; 0 is greedy.
    pub temperature: f32,
    /// (0, 1].
    pub top_p: f32,
    /// Ember extension (as llama.cpp and vLLM accept): keep the k most likely (0: all).
    pub top_k: usize,
    /// Stop strings.
    pub stop: Vec<String>,
    /// RNG seed; `None`: a fresh one.
    pub seed: Option<u64>,
    /// Token id → bias from -100 (banned) to 100, added to the logits before sampling.
    pub logit_bias: Vec<(u32, f32)>,
    /// Stream the reply as server-sent events.
    pub stream: bool,
    /// Send usage as a last chunk (`stream_options.include_usage`).
    pub include_usage: bool,
}

/// Most messages a request may carry.
pub const MAX_MESSAGES: usize = 512;
/// Most stop strings.
pub const MAX_STOP: usize = 16;
/// Most `logit_bias` entries (OpenAI's limit).
pub const MAX_BIAS: usize = 300;

/// `logit_bias`: an object from token ids (as strings, JSON keys) to biases from -100 to 100.
fn logit_bias(v: &Value) -> Result<Vec<(u32, f32)>, ApiError> {
    let map = match v.get("logit_bias") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(m)) if m.len() <= MAX_BIAS => m,
        Some(other) => {
            return Err(ApiError::bad(
                "logit_bias",
                format!(
                    "logit_bias = {other}: expected an object of at most {MAX_BIAS} token ids mapped to biases from -100 to 100"
                ),
            ));
        }
    };
    let mut out = Vec::with_capacity(map.len());
    for (key, b) in map {
        let id = key.parse::<u32>().map_err(|_| {
            ApiError::bad(
                "logit_bias",
                format!("logit_bias key {key:?}: expected a token id (a whole number)"),
            )
        })?;
        let b = b
            .as_f64()
            .filter(|b| (-100.0..=100.0).contains(b))
            .ok_or_else(|| {
                ApiError::bad(
                    "logit_bias",
                    format!("logit_bias[{key:?}] = {b}: expected a number from -100 to 100"),
                )
            })?;
        out.push((id, b as f32));
    }
    Ok(out)
}

fn number(v: &Value, param: &str, lo: f64, hi: f64, what: &str) -> Result<Option<f64>, ApiError> {
    match v.get(param) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if x >= lo && x <= hi {
                Ok(Some(x))
            } else {
                Err(ApiError::bad(
                    param,
                    format!("{param} = {n}: expected {what}"),
                ))
            }
        }
        Some(other) => Err(ApiError::bad(
            param,
            format!("{param} = {other}: expected {what}"),
        )),
    }
}

fn count(v: &Value, param: &str) -> Result<Option<usize>, ApiError> {
    match v.get(param) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => Ok(Some(
            usize::try_from(n.as_u64().unwrap_or(1)).unwrap_or(usize::MAX),
        )),
        Some(other) => Err(ApiError::bad(
            param,
            format!("{param} = {other}: expected a whole number of tokens, at least 1"),
        )),
    }
}

/// The settings shared by both completion endpoints.
pub fn sampling(v: &Value) -> Result<Sampling, ApiError> {
    if !v.is_object() {
        return Err(ApiError::bad("body", "the body must be a JSON object"));
    }
    number(v, "n", 1.0, 1.0, "1 (one choice per request)")?;
    let temperature =
        number(v, "temperature", 0.0, 2.0, "a number from 0 (greedy) to 2")?.unwrap_or(1.0) as f32;
    let top_p = number(v, "top_p", 0.0, 1.0, "a number above 0 and at most 1")?.unwrap_or(1.0);
    if top_p == 0.0 {
        return Err(ApiError::bad(
            "top_p",
            "top_p = 0: expected a number above 0 and at most 1",
        ));
    }
    let top_k =
        number(v, "top_k", 0.0, 1e9, "a whole number, 0 for all tokens")?.unwrap_or(0.0) as usize;
    let max_tokens = match count(v, "max_completion_tokens")? {
        Some(n) => Some(n),
        None => count(v, "max_tokens")?,
    };
    let stop = match v.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) if a.len() <= MAX_STOP => a
            .iter()
            .map(|s| s.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::bad("stop", "stop: expected a string or a list of strings"))?,
        Some(_) => {
            return Err(ApiError::bad(
                "stop",
                format!("stop: expected a string or a list of at most {MAX_STOP} strings"),
            ));
        }
    };
    if stop.iter().any(String::is_empty) {
        return Err(ApiError::bad(
            "stop",
            "stop: an empty stop string would stop at once",
        ));
    }
    let seed = match v.get("seed") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_i64().is_some() || n.as_u64().is_some() => {
            Some(n.as_u64().unwrap_or_else(|| n.as_i64().unwrap_or(0) as u64))
        }
        Some(other) => {
            return Err(ApiError::bad(
                "seed",
                format!("seed = {other}: expected an integer"),
            ));
        }
    };
    let logit_bias = logit_bias(v)?;
    let stream = match v.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ApiError::bad(
                "stream",
                format!("stream = {other}: expected true or false"),
            ));
        }
    };
    let include_usage = v
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Sampling {
        max_tokens,
        temperature,
        top_p: top_p as f32,
        top_k,
        stop,
        seed,
        logit_bias,
        stream,
        include_usage,
    })
}

/// The `messages` of a chat request: roles `system`/`developer`/`user`/`assistant`, content a
/// string or a list of text parts.
pub fn messages(v: &Value) -> Result<Vec<Message>, ApiError> {
    let Some(list) = v.get("messages").and_then(Value::as_array) else {
        return Err(ApiError::bad(
            "messages",
            "messages: expected a list of messages",
        ));
    };
    if list.is_empty() || list.len() > MAX_MESSAGES {
        return Err(ApiError::bad(
            "messages",
            format!(
                "messages has {} entries: expected 1 to {MAX_MESSAGES}",
                list.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let role = match m.get("role").and_then(Value::as_str) {
            Some("system" | "developer") => Role::System,
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            other => {
                return Err(ApiError::bad(
                    format!("messages[{i}].role"),
                    format!(
                        "messages[{i}].role = {}: expected system, developer, user or assistant",
                        other.map_or("missing".to_string(), |r| format!("{r:?}"))
                    ),
                ));
            }
        };
        let content = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => {
                let mut text = Vec::new();
                for (j, p) in parts.iter().enumerate() {
                    match (
                        p.get("type").and_then(Value::as_str),
                        p.get("text").and_then(Value::as_str),
                    ) {
                        (Some("text"), Some(t)) => text.push(t),
                        (t, _) => {
                            return Err(ApiError::bad(
                                format!("messages[{i}].content[{j}]"),
                                format!(
                                    "messages[{i}].content[{j}] is of type {}: only text parts ({{\"type\": \"text\", \"text\": ...}}) are supported",
                                    t.unwrap_or("unknown")
                                ),
                            ));
                        }
                    }
                }
                text.join("\n")
            }
            Some(Value::Null) | None if role == Role::Assistant => String::new(),
            _ => {
                return Err(ApiError::bad(
                    format!("messages[{i}].content"),
                    format!("messages[{i}].content: expected a string or a list of text parts"),
                ));
            }
        };
        out.push(Message::new(role, content));
    }
    Ok(out)
}

/// Why a generation ended, as OpenAI names it.
pub fn finish_reason(stop: &ember_model::StopReason) -> &'static str {
    match stop {
        ember_model::StopReason::MaxTokens => "length",
        _ => "stop",
    }
}

/// `usage`.
pub fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}
