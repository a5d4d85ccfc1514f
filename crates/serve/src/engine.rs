//! The model's own thread: it loads the checkpoint, then decodes one request at a time from a
//! queue, streaming text back over a channel. A request whose client has gone (its receiver
//! dropped) is skipped if still queued and stopped within one token if decoding.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};

use ember_model::{SamplingConfig, SelectedDevice, StopReason, checkpoint, generate};
use ember_tokenizer::Tokenizer;
use tokio::sync::mpsc as tmpsc;

/// What the model thread sends back for one request.
#[derive(Debug)]
pub enum Event {
    /// More text of the reply (never empty).
    Text(String),
    /// The reply is complete.
    Done {
        /// Why it ended.
        stop: StopReason,
        /// Tokens generated.
        tokens: usize,
    },
    /// Generation failed.
    Failed(String),
}

/// One request for the model thread.
pub struct Job {
    /// Prompt ids.
    pub prompt: Vec<u32>,
    /// Sampling settings (stop ids and strings included).
    pub cfg: SamplingConfig,
    /// Where the events go; closed when the client disconnects.
    pub events: tmpsc::Sender<Event>,
    /// Holds a place in the queue until the job is finished or dropped.
    pub slot: Slot,
}

/// The loaded model's description.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The id clients name it by.
    pub id: String,
    /// Context length in tokens.
    pub context_length: usize,
    /// `fp_` and the first 12 hex digits of the SHA-256 of the checkpoint's manifest.
    pub fingerprint: String,
    /// The checkpoint directory.
    pub checkpoint: PathBuf,
    /// The checkpoint's tokenizer.
    pub tokenizer: Arc<Tokenizer>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Completion requests accepted into the queue.
    pub requests: AtomicU64,
    /// Requests refused with an error status.
    pub errors: AtomicU64,
    /// Requests whose client went away before the end.
    pub cancelled: AtomicU64,
    /// Prompt tokens processed.
    pub prompt_tokens: AtomicU64,
    /// Tokens generated.
    pub generated_tokens: AtomicU64,
    /// Total time of finished generations, in microseconds.
    pub busy_micros: AtomicU64,
    /// Generations finished.
    pub generations: AtomicU64,
}

/// State shared by the HTTP side and the model thread.
pub struct Shared {
    /// Set once the model is loaded.
    pub info: OnceLock<ModelInfo>,
    /// Set if loading failed (the message).
    pub load_error: OnceLock<String>,
    /// Requests queued or decoding.
    pub in_flight: Arc<AtomicUsize>,
    /// Counters.
    pub metrics: Metrics,
    /// Set when the server is shutting down.
    pub closing: AtomicBool,
}

/// A place in the queue, given back when dropped (so no request can leave a slot busy).
pub struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// Takes a place if fewer than `limit` requests are in flight.
    pub fn take(in_flight: &Arc<AtomicUsize>, limit: usize) -> Option<Slot> {
        in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(Arc::clone(in_flight)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts the model thread: it loads `checkpoint` on `device`, then serves jobs until the
/// sender is dropped (or the process exits: nothing is left to save). `delay_ms` slows each token (tests of cancellation and queueing).
pub fn start(
    checkpoint_dir: PathBuf,
    id: String,
    device: SelectedDevice,
    shared: Arc<Shared>,
    delay_ms: u64,
) -> std::io::Result<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("ember-model".into())
        .spawn(move || {
            let ck = match checkpoint::load(&checkpoint_dir, &device.device) {
                Ok(ck) => ck,
                Err(e) => {
                    let _ = shared.load_error.set(e.to_string());
                    return;
                }
            };
            let manifest = std::fs::read(checkpoint_dir.join("manifest.json")).unwrap_or_default();
            let tokenizer = Arc::new(ck.tokenizer.clone());
            let _ = shared.info.set(ModelInfo {
                id,
                context_length: ck.config.block_size,
                fingerprint: format!("fp_{}", &ember_files::sha256_hex(&manifest)[..12]),
                checkpoint: checkpoint_dir.clone(),
                tokenizer,
            });
            for job in rx {
                run(&ck, job, &shared, delay_ms);
            }
        })?;
    Ok(tx)
}

fn run(ck: &checkpoint::Checkpoint, job: Job, shared: &Shared, delay_ms: u64) {
    let Job {
        prompt,
        cfg,
        events,
        slot,
    } = job;
    let m = &shared.metrics;
    if events.is_closed() {
        m.cancelled.fetch_add(1, Ordering::Relaxed);
        drop(slot);
        return;
    }
    let t0 = std::time::Instant::now();
    m.prompt_tokens
        .fetch_add(prompt.len() as u64, Ordering::Relaxed);
    let result = generate(&ck.model, &ck.tokenizer, &prompt, &cfg, |piece| {
        if delay_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        }
        if !piece.is_empty() {
            return events.blocking_send(Event::Text(piece.to_string())).is_ok();
        }
        !events.is_closed()
    });
    m.busy_micros
        .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
    m.generations.fetch_add(1, Ordering::Relaxed);
    // The slot is free before the client hears the end, so a next request (or /metrics) sent
    // on receiving the reply never finds it still taken.
    drop(slot);
    match result {
        Ok(g) => {
            m.generated_tokens
                .fetch_add(g.ids.len() as u64, Ordering::Relaxed);
            if g.stop == StopReason::Cancelled {
                m.cancelled.fetch_add(1, Ordering::Relaxed);
            }
            let _ = events.blocking_send(Event::Done {
                tokens: g.ids.len() + usize::from(matches!(g.stop, StopReason::StopToken(_))),
                stop: g.stop,
            });
        }
        Err(e) => {
            let _ = events.blocking_send(Event::Failed(e.to_string()));
        }
    }
}
