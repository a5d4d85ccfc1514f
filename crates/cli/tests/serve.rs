//! `ember serve` over real sockets: the OpenAI wire format (whole and streamed), refusals by
//! parameter, the API key, the Host check, cancellation on disconnect, the bounded queue, and
//! SIGTERM; the official `openai` Python client where it is installed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::battery::fixture;
use crate::http::{Resp, Server};
use crate::regression::ember_env;

fn chat(extra: Value) -> Value {
    let mut v = json!({"model": "any", "messages": [{"role": "user", "content": "Hello! Who are you?"}],
        "temperature": 0.8, "seed": 7, "max_tokens": 12});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

#[test]
fn serve_speaks_the_openai_format_whole_and_streamed() {
    let s = Server::start(&[], &[]);
    let models = s.get("/v1/models").json();
    assert_eq!(models["data"][0]["object"], "model");
    assert_eq!(models["data"][0]["id"], "sft");
    assert_eq!(models["data"][0]["context_length"], 64);

    let whole = s.post("/v1/chat/completions", &chat(json!({})));
    assert_eq!(whole.status, 200, "{}", whole.body);
    let w = whole.json();
    assert_eq!(w["object"], "chat.completion");
    assert!(w["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(w["system_fingerprint"].as_str().unwrap().starts_with("fp_"));
    let choice = &w["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap()));
    let text = choice["message"]["content"].as_str().unwrap().to_string();
    let u = &w["usage"];
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );

    // Streamed: the role first, no empty deltas, the finish reason, usage, [DONE] last; the
    // same seed gives the same text.
    let streamed = s.post(
        "/v1/chat/completions",
        &chat(json!({"stream": true, "stream_options": {"include_usage": true}})),
    );
    assert_eq!(streamed.status, 200);
    assert!(
        streamed
            .header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = streamed.events();
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let mut joined = String::new();
    for c in &chunks[1..chunks.len() - 2] {
        assert_eq!(c["object"], "chat.completion.chunk");
        let d = c["choices"][0]["delta"]["content"].as_str().unwrap();
        assert!(!d.is_empty(), "an empty delta: {c}");
        joined.push_str(d);
    }
    assert_eq!(
        joined, text,
        "streamed and whole replies differ for one seed"
    );
    let fin = &chunks[chunks.len() - 2];
    assert_eq!(fin["choices"][0]["finish_reason"], choice["finish_reason"]);
    assert_eq!(chunks.last().unwrap()["usage"], *u);
    assert_eq!(chunks.last().unwrap()["choices"], json!([]));

    // `ember chat` with the same settings writes the same reply.
    let f = fixture();
    let (ok, out, err) = ember_env(
        &[
            "chat",
            "--checkpoint",
            &f.p("sft"),
            "--device",
            "cpu",
            "--message",
            "Hello! Who are you?",
            "--temperature",
            "0.8",
            "--top-k",
            "0",
            "--seed",
            "7",
            "--max-new-tokens",
            "12",
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert_eq!(out.strip_suffix('\n').unwrap_or(&out), text);

    // A stop string that spans tokens never reaches the stream.
    let chars: Vec<char> = text.chars().collect();
    if chars.len() >= 4 {
        let stop: String = chars[1..4].iter().collect();
        let stop = stop.as_str();
        let body = chat(json!({"stop": [stop], "stream": true}));
        let events = s.post("/v1/chat/completions", &body).events();
        let got: String = events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok())
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect();
        let want = &text[..text.find(stop).unwrap()];
        assert_eq!(got, want, "stop {stop:?}");
        let whole = s
            .post("/v1/chat/completions", &chat(json!({"stop": stop})))
            .json();
        assert_eq!(whole["choices"][0]["message"]["content"], want);
        assert_eq!(whole["choices"][0]["finish_reason"], "stop");
    }

    // Text completions, and content given as text parts.
    let c = s.post(
        "/v1/completions",
        &json!({"prompt": "ROMEO:", "max_tokens": 5, "seed": 1, "temperature": 0}),
    );
    assert_eq!(c.status, 200, "{}", c.body);
    assert_eq!(c.json()["object"], "text_completion");
    assert!(c.json()["choices"][0]["text"].is_string());
    let parts = s.post(
        "/v1/chat/completions",
        &chat(
            json!({"messages": [{"role": "developer", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hello! Who are you?"}]}]}),
        ),
    );
    assert_eq!(parts.status, 200, "{}", parts.body);

    // logit_bias: +100 makes every token a favoured id; -100 bans the one that would win.
    let greedy = |bias: Value| {
        let r = s
            .post(
                "/v1/completions",
                &json!({"prompt": "ROMEO:", "max_tokens": 4, "temperature": 0, "logit_bias": bias}),
            )
            .json();
        r["choices"][0]["text"].as_str().unwrap().to_string()
    };
    let id = |text: &str| {
        let t = s.post("/tokenize", &json!({"content": text})).json();
        assert_eq!(t["count"], 1, "{text:?} is one token");
        t["tokens"][0].as_u64().unwrap().to_string()
    };
    let (e, t) = (id("e"), id("t"));
    let both = greedy(json!({&e: 100, &t: 100}));
    assert!(both == "eeee" || both == "tttt", "{both:?}");
    let (won, other, lost) = if both == "eeee" {
        (&e, &t, "tttt")
    } else {
        (&t, &e, "eeee")
    };
    assert_eq!(greedy(json!({won: -100, other: 100})), lost);

    // Message text that spells a special token stays text.
    let t = s.post("/tokenize", &json!({"content": "<|user|>"})).json();
    assert!(t["count"].as_u64().unwrap() > 1, "{t}");
    assert!(s.metric("ember_requests_total") >= 5);
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn serve_refuses_bad_requests_with_openai_errors_naming_the_parameter() {
    let s = Server::start(&["--max-body-bytes", "4000"], &[]);
    let p = |v: Value| s.post("/v1/chat/completions", &chat(v));
    p(json!({"temperature": 3})).refused(400, Some("temperature"), "0 (greedy) to 2");
    p(json!({"top_p": 0})).refused(400, Some("top_p"), "above 0");
    p(json!({"n": 2})).refused(400, Some("n"), "one choice");
    p(json!({"max_tokens": 0})).refused(400, Some("max_tokens"), "at least 1");
    p(json!({"stop": 5})).refused(400, Some("stop"), "string");
    p(json!({"seed": "x"})).refused(400, Some("seed"), "integer");
    p(json!({"logit_bias": {"5": -101}})).refused(400, Some("logit_bias"), "-100 to 100");
    p(json!({"logit_bias": {"x": 1}})).refused(400, Some("logit_bias"), "token id");
    p(json!({"logit_bias": {"400000": 1}})).refused(400, Some("logit_bias"), "400000");
    p(json!({"logit_bias": [1]})).refused(400, Some("logit_bias"), "object");
    p(json!({"messages": []})).refused(400, Some("messages"), "1 to");
    p(json!({"messages": [{"role": "tool", "content": "x"}]})).refused(
        400,
        Some("messages[0].role"),
        "\"tool\"",
    );
    p(json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})).refused(
        400,
        Some("messages[0].content[0]"),
        "image_url",
    );
    let long = p(json!({"max_tokens": 100000}));
    long.refused(
        400,
        Some("max_tokens"),
        "maximum context length is 64 tokens",
    );
    assert_eq!(long.json()["error"]["code"], "context_length_exceeded");
    let json_ct = [("Content-Type", "application/json")];
    s.request("POST", "/v1/chat/completions", &json_ct, "{not json")
        .refused(400, Some("body"), "not valid JSON");
    s.request(
        "POST",
        "/v1/chat/completions",
        &[("Content-Type", "text/plain")],
        "{}",
    )
    .refused(415, None, "application/json");
    let big = chat(json!({"messages": [{"role": "user", "content": "x".repeat(5000)}]}));
    s.post("/v1/chat/completions", &big)
        .refused(413, None, "4000 bytes");
    s.get("/v1/chat/completions")
        .refused(405, None, "not allowed");
    s.get("/v1/nothing").refused(404, None, "no such endpoint");
    // DNS rebinding: a page on another name that resolves here is refused.
    let raw = "GET /v1/models HTTP/1.1\r\nHost: evil.example:80\r\nConnection: close\r\n\r\n";
    s.send(raw).refused(403, None, "Host");
    // The server is still fine, and no slot was left busy.
    assert_eq!(s.post("/v1/chat/completions", &chat(json!({}))).status, 200);
    assert_eq!(s.metric("ember_queue_depth"), 0);
}

#[test]
fn serve_checks_the_api_key() {
    let s = Server::start(&["--api-key", "sesame"], &[]);
    s.get("/v1/models").refused(401, None, "API key");
    let bad = [("Authorization", "Bearer sesame2")];
    s.request("GET", "/v1/models", &bad, "")
        .refused(401, None, "API key");
    let good = [("Authorization", "Bearer sesame")];
    assert_eq!(s.request("GET", "/v1/models", &good, "").status, 200);
    assert_eq!(s.get("/health").status, 200, "health needs no key");
}

#[test]
fn a_client_that_disconnects_stops_its_generation_and_a_full_queue_answers_503() {
    // 100 ms per token: a request is still decoding when the next one comes.
    let s = Server::start(
        &["--max-batch", "1", "--max-queue", "0"],
        &[("EMBER_SERVE_TOKEN_DELAY_MS", "100")],
    );
    let body = json!({"prompt": "ROMEO:", "max_tokens": 50, "seed": 3, "stream": true,
        "logit_bias": crate::http::no_end("sft")})
    .to_string();
    let mut c = TcpStream::connect(&s.addr).unwrap();
    write!(
        c,
        "POST /v1/completions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        s.addr,
        body.len()
    )
    .unwrap();
    let mut first = [0u8; 64];
    let n = c.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    // The one decoding slot is taken and no request may wait: 503 with Retry-After.
    let busy = s.post("/v1/completions", &json!({"prompt": "x", "max_tokens": 2}));
    busy.refused(503, None, "busy");
    assert_eq!(busy.header("retry-after"), Some("1"));
    drop(c);
    let t0 = Instant::now();
    while s.metric("ember_cancelled_total") == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "generation went on after the client left"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(s.metric("ember_generated_tokens_total") < 50);
    assert_eq!(s.metric("ember_queue_depth"), 0, "the slot is free again");
    assert_eq!(
        s.post("/v1/completions", &json!({"prompt": "x", "max_tokens": 2}))
            .status,
        200
    );
}

#[test]
fn sigterm_finishes_the_request_in_flight_then_exits() {
    let mut s = Server::start(&[], &[("EMBER_SERVE_TOKEN_DELAY_MS", "50")]);
    let addr = s.addr.clone();
    let pid = s.child.id();
    let req = std::thread::spawn(move || {
        let body = json!({"prompt": "ROMEO:", "max_tokens": 10, "seed": 2}).to_string();
        let mut c = TcpStream::connect(&addr).unwrap();
        write!(
            c,
            "POST /v1/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut bytes = Vec::new();
        c.read_to_end(&mut bytes).unwrap();
        Resp::parse(&bytes)
    });
    std::thread::sleep(Duration::from_millis(200));
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let r = req.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let t0 = Instant::now();
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_official_openai_client_works_unchanged() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client.py");
    let has = Command::new("python3")
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        eprintln!("SKIPPED: the openai Python package is not installed (pip install openai)");
        return;
    }
    let s = Server::start(&["--api-key", "k"], &[]);
    let out = Command::new("python3")
        .arg(&script)
        .arg(format!("http://{}/v1", s.addr))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
