//! `ember serve`: an OpenAI-compatible server for a checkpoint (see the `ember-serve` crate).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::device_args::DeviceArgs;

/// Flags of `ember serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Checkpoint directory, or a run directory (its newest complete checkpoint).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Address to bind: 127.0.0.1 (this machine only) unless you mean to expose the server.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Require `Authorization: Bearer KEY` on the API (or set EMBER_API_KEY).
    #[arg(long, env = "EMBER_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Requests decoded together: each step feeds all of their tokens through the model at once.
    #[arg(long, default_value_t = 8, value_parser = crate::checks::at_least_one)]
    max_batch: usize,
    /// Requests that may wait while a full batch decodes; more are answered 503 with Retry-After.
    #[arg(long, default_value_t = 16)]
    max_queue: usize,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 4 << 20, value_parser = crate::checks::at_least_one)]
    max_body_bytes: usize,
    /// Origins allowed to call the API from web pages (CORS); repeat for several. None: no CORS.
    #[arg(long)]
    cors_origin: Vec<String>,
    /// More Host names to answer to (a reverse proxy's name); the bind address's names always are.
    #[arg(long)]
    allowed_host: Vec<String>,
    /// The model id clients use (default: the run or checkpoint directory's name).
    #[arg(long)]
    model_name: Option<String>,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Runs `ember serve` until SIGTERM or Ctrl-C.
pub fn run(a: ServeArgs) -> Result<()> {
    let path = ember_formats::resolve_checkpoint(&a.checkpoint);
    // Refuse a bad checkpoint before binding: a server that can never load is an error now.
    ember_model::checkpoint::verify(&path)
        .with_context(|| format!("checking {}", path.display()))?;
    if a.api_key.as_deref() == Some("") {
        bail!("--api-key is empty: give a key, or leave the flag out to serve without one");
    }
    let model_id = a.model_name.clone().unwrap_or_else(|| {
        let dir = if a.checkpoint.join("checkpoints").is_dir() {
            &a.checkpoint
        } else {
            &path
        };
        dir.canonicalize()
            .unwrap_or_else(|_| dir.clone())
            .file_name()
            .map_or_else(|| "ember".to_string(), |n| n.to_string_lossy().into_owned())
    });
    let addr = SocketAddr::new(a.host, a.port);
    let mut allowed_hosts = ember_serve::default_hosts(&addr);
    if !allowed_hosts.is_empty() {
        allowed_hosts.extend(a.allowed_host.iter().cloned());
    }
    let token_delay_ms = std::env::var("EMBER_SERVE_TOKEN_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // Test hook: a shorter keep-alive interval, so a test sees pings without waiting 15 s.
    let ping_ms = std::env::var("EMBER_SERVE_PING_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15_000);
    let device = a.device.select()?;
    ember_serve::run(
        ember_serve::Options {
            checkpoint: path,
            model_id,
            addr,
            api_key: a.api_key,
            max_batch: a.max_batch,
            max_queue: a.max_queue,
            max_body_bytes: a.max_body_bytes,
            cors_origins: a.cors_origin,
            allowed_hosts,
            ping_interval: std::time::Duration::from_millis(ping_ms),
            token_delay_ms,
        },
        device,
    )
}
