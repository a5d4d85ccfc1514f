//! A minimal HTTP/1.1 client over `TcpStream` for the `ember serve` tests (no client crate):
//! requests with `Connection: close`, chunked bodies, server-sent events, OpenAI errors.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::battery::fixture;

/// The ids that end a generation for the fixture's run `run` ("run" or "sft"), from its newest
/// checkpoint's tokenizer.
pub fn end_ids(run: &str) -> Vec<u32> {
    let dir = std::path::PathBuf::from(fixture().p(&format!("{run}/checkpoints")));
    let newest = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .max()
        .unwrap_or_else(|| panic!("no checkpoint in {}", dir.display()));
    let tok = ember_tokenizer::Tokenizer::load(&newest.join("tokenizer.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    let ids = ember_tokenizer::chat::stop_ids(&tok);
    assert!(!ids.is_empty(), "no end ids in {}", newest.display());
    ids
}

/// `logit_bias` banning [`end_ids`]: a reply of a test that stops it early cannot end on its
/// own first (whether it would depends on the machine's floating point, through the model).
pub fn no_end(run: &str) -> Value {
    Value::Object(
        end_ids(run)
            .into_iter()
            .map(|i| (i.to_string(), Value::from(-100)))
            .collect(),
    )
}

/// A running `ember serve` on a free port, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    /// Serves the fine-tuned test model.
    pub fn start(extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_on(&fixture().p("sft"), extra, env)
    }

    /// Serves `checkpoint` (a checkpoint or run directory).
    pub fn start_on(checkpoint: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ember"))
            .args([
                "serve",
                "--checkpoint",
                checkpoint,
                "--port",
                "0",
                "--device",
                "cpu",
            ])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\n") {
            if out.read(&mut b).unwrap() == 0 {
                panic!("ember serve exited: {:?}", child.wait());
            }
            line.push(b[0]);
        }
        let line = String::from_utf8(line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("first line: {line}"))
            .to_string();
        let s = Server { child, addr };
        let t0 = Instant::now();
        while s.get("/health").status != 200 {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "the model never loaded"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    pub fn send(&self, raw: &str) -> Resp {
        let mut c = TcpStream::connect(&self.addr).unwrap();
        c.write_all(raw.as_bytes()).unwrap();
        let mut bytes = Vec::new();
        c.read_to_end(&mut bytes).unwrap();
        Resp::parse(&bytes)
    }

    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let mut raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        raw.push_str(body);
        self.send(&raw)
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[], "")
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            &body.to_string(),
        )
    }

    pub fn metric(&self, name: &str) -> u64 {
        let m = self.get("/metrics").body;
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {m}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn parse(bytes: &[u8]) -> Resp {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `data:` payloads of a server-sent event stream.
    pub fn events(&self) -> Vec<String> {
        self.body
            .split("\n\n")
            .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(String::from)
            .collect()
    }

    /// Asserts an OpenAI error object with this status and parameter.
    pub fn refused(&self, status: u16, param: Option<&str>, says: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        let e = &self.json()["error"];
        assert!(e["message"].as_str().unwrap().contains(says), "{e}");
        assert!(e["type"].is_string(), "{e}");
        if let Some(p) = param {
            assert_eq!(e["param"], p, "{e}");
        }
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n.min(rest.len())]);
        s = rest.get(n + 2..).unwrap_or("");
    }
    out
}
