//! `ember serve` under load and over time: concurrent requests decoded together (each gets the
//! text it gets alone), a non-streaming request stopped when its client leaves, keep-alive
//! pings on an idle stream.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http::Server;

fn completion(i: u64) -> Value {
    let prompts = ["ROMEO:", "JULIET:", "First Citizen:", "KING"];
    json!({"prompt": prompts[i as usize % 4], "max_tokens": 12, "temperature": 0.9, "seed": i})
}

#[test]
fn concurrent_requests_decode_together_and_each_gets_its_own_text() {
    // 40 ms per step: four requests sent together are all in the batch within a step or two.
    let s = Arc::new(Server::start(
        &["--max-batch", "4"],
        &[("EMBER_SERVE_TOKEN_DELAY_MS", "40")],
    ));
    let alone: Vec<(String, u64)> = (0..4)
        .map(|i| {
            let r = s.post("/v1/completions", &completion(i)).json();
            let tokens = r["usage"]["completion_tokens"].as_u64().unwrap();
            (
                r["choices"][0]["text"].as_str().unwrap().to_string(),
                tokens,
            )
        })
        .collect();
    let (steps0, tokens0, passes0) = (
        s.metric("ember_decode_steps_total"),
        s.metric("ember_generated_tokens_total"),
        s.metric("ember_prompt_passes_total"),
    );
    let go = Arc::new(Barrier::new(4));
    let together: Vec<String> = (0..4)
        .map(|i| {
            let (s, go) = (Arc::clone(&s), Arc::clone(&go));
            std::thread::spawn(move || {
                go.wait();
                let r = s.post("/v1/completions", &completion(i));
                assert_eq!(r.status, 200, "{}", r.body);
                r.json()["choices"][0]["text"].as_str().unwrap().to_string()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    for (i, (text, _)) in alone.iter().enumerate() {
        assert_eq!(
            &together[i], text,
            "request {i}: batched text differs from alone"
        );
    }
    // Prompts that arrive while a step runs are run together (the first alone, the other three
    // during its 40 ms step): one pass each would be four.
    let passes = s.metric("ember_prompt_passes_total") - passes0;
    assert!(
        passes < 4,
        "{passes} prompt passes for 4 requests sent together"
    );
    let steps = s.metric("ember_decode_steps_total") - steps0;
    let tokens = s.metric("ember_generated_tokens_total") - tokens0;
    let longest = alone.iter().map(|a| a.1).max().unwrap();
    // Decoded one after another, the four would take `tokens` steps; together, about as many
    // as the longest reply (a few more if one joins late).
    assert!(
        tokens > longest && steps <= longest + 4,
        "{steps} steps for {tokens} tokens (longest reply {longest}): not decoded together"
    );
}

#[test]
fn a_non_streaming_request_stops_when_its_client_leaves() {
    let s = Server::start(&[], &[("EMBER_SERVE_TOKEN_DELAY_MS", "100")]);
    let body = json!({"prompt": "ROMEO:", "max_tokens": 50, "seed": 3, "stop": [],
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
    let t0 = Instant::now();
    while s.metric("ember_decoding") == 0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(c);
    while s.metric("ember_cancelled_total") == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "generation went on after the client left"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(s.metric("ember_generated_tokens_total") < 50);
    assert_eq!(s.metric("ember_decoding"), 0);
}

#[test]
fn an_idle_stream_gets_keep_alive_pings() {
    // Each step waits 600 ms and pings come every 150 ms: the stream is idle between tokens.
    let s = Server::start(
        &[],
        &[
            ("EMBER_SERVE_TOKEN_DELAY_MS", "600"),
            ("EMBER_SERVE_PING_MS", "150"),
        ],
    );
    let body = json!({"prompt": "ROMEO:", "max_tokens": 2, "seed": 1, "stream": true}).to_string();
    let mut c = TcpStream::connect(&s.addr).unwrap();
    write!(
        c,
        "POST /v1/completions HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        s.addr,
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).unwrap();
    let r = crate::http::Resp::parse(&raw);
    assert_eq!(r.status, 200);
    let pings = r.body.matches(": ping\n").count();
    assert!(pings >= 2, "{pings} pings in {}", r.body);
    assert_eq!(r.events().last().map(String::as_str), Some("[DONE]"));
}

#[test]
fn the_chat_page_streams_and_stops_in_a_real_browser() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chat_page.py");
    let has = std::process::Command::new("python3")
        .args(["-c", "import playwright"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has || !std::path::Path::new("/usr/bin/chromium").exists() {
        eprintln!(
            "SKIPPED: needs Playwright (pip install playwright) and Debian's chromium at /usr/bin/chromium"
        );
        return;
    }
    // The base model (it rarely ends a reply on its own) at 150 ms per step: a reply streams
    // for seconds, time enough to press Stop.
    let s = Server::start_on(
        &crate::battery::fixture().p("run"),
        &[],
        &[("EMBER_SERVE_TOKEN_DELAY_MS", "150")],
    );
    let end_ids: Vec<String> = crate::http::end_ids("run")
        .iter()
        .map(u32::to_string)
        .collect();
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(format!("http://{}", s.addr))
        .arg(end_ids.join(","))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = s.metric("ember_generated_tokens_total");
    // Stopped early: the two replies (up to 10 and 30 tokens) did not run to their end.
    assert!(generated < 10 + 30, "{generated} tokens generated");
}
