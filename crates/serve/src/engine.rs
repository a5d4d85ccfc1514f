//! The model's own thread: it loads the checkpoint, then decodes requests from a queue,
//! streaming text back over channels. Up to `max_batch` requests decode together (continuous
//! batching): a request that arrives joins the batch at the next step once its prompt is run,
//! a finished one leaves it, and every step feeds all of their tokens through the model at once
//! ([`Gpt::decode_step`](ember_model::Gpt::decode_step)), so aggregate tokens per second grow
//! with concurrency. A request whose client has gone (its receiver dropped) is skipped if still
//! queued and stopped within one token if decoding.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};

use ember_model::generate::rows_to_host;
use ember_model::{Decoder, SamplingConfig, SelectedDevice, StopReason, checkpoint};
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
    /// Where the events go; closed when the client disconnects. Unbounded, so one slow client
    /// never holds up the batch (a reply is at most a context's worth of pieces).
    pub events: tmpsc::UnboundedSender<Event>,
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
    /// Ids the model scores (`logit_bias` keys must be below it).
    pub vocab_size: usize,
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
    /// Passes that ran prompts (several prompts that arrived together share one).
    pub prompt_passes: AtomicU64,
    /// Tokens generated.
    pub generated_tokens: AtomicU64,
    /// Total time of finished generations, in microseconds.
    pub busy_micros: AtomicU64,
    /// Generations finished.
    pub generations: AtomicU64,
    /// Requests decoding together in the current step.
    pub decoding: AtomicU64,
    /// Decoding steps run (one per token of every request in the batch).
    pub steps: AtomicU64,
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

/// Starts the model thread: it loads `checkpoint` on `device`, then serves jobs, up to
/// `max_batch` at once, until the sender is dropped (or the process exits: nothing is left to
/// save). `delay_ms` slows each step (tests of cancellation and queueing).
pub fn start(
    checkpoint_dir: PathBuf,
    id: String,
    device: SelectedDevice,
    shared: Arc<Shared>,
    max_batch: usize,
    delay_ms: u64,
) -> std::io::Result<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("ember-model".into())
        .spawn(move || {
            on_own_pool(move || {
                let ck = match checkpoint::load(&checkpoint_dir, &device.device) {
                    Ok(ck) => ck,
                    Err(e) => {
                        let _ = shared.load_error.set(e.to_string());
                        return;
                    }
                };
                let manifest =
                    std::fs::read(checkpoint_dir.join("manifest.json")).unwrap_or_default();
                let tokenizer = Arc::new(ck.tokenizer.clone());
                let _ = shared.info.set(ModelInfo {
                    id,
                    context_length: ck.config.block_size,
                    vocab_size: ck.config.vocab_size,
                    fingerprint: format!("fp_{}", &ember_files::sha256_hex(&manifest)[..12]),
                    checkpoint: checkpoint_dir.clone(),
                    tokenizer,
                });
                decode_loop(&ck, &rx, &shared, max_batch.max(1), delay_ms);
            })
        })?;
    Ok(tx)
}

/// Runs `work` as a thread of a compute pool of its own, the size of the global one. Why: the
/// process's first thread belongs to the global pool (`ember_model::on_compute_threads`) but
/// runs the HTTP runtime here, so it never takes a share of parallel work; and a caller
/// outside a pool sleeps and wakes through every parallel operation. As a pool thread the
/// model thread works on a share itself: from a plain thread one stream decoded at less than
/// half the speed (benches/RESULTS.md, "Serving").
fn on_own_pool(work: impl FnOnce() + Send) {
    let threads = rayon::current_num_threads();
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("ember-compute-{i}"))
        .use_current_thread()
        .build()
    {
        Ok(pool) => pool.install(work),
        Err(_) => work(),
    }
}

/// A request decoding in the batch.
struct Active<'t> {
    decoder: Decoder<'t>,
    /// The logits its next token is drawn from.
    logits: Vec<f32>,
    /// The token to feed at this step.
    next: u32,
    events: tmpsc::UnboundedSender<Event>,
    slot: Slot,
    t0: std::time::Instant,
}

fn decode_loop(
    ck: &checkpoint::Checkpoint,
    rx: &mpsc::Receiver<Job>,
    shared: &Shared,
    max_batch: usize,
    delay_ms: u64,
) {
    let m = &shared.metrics;
    let mut active: Vec<Active> = Vec::new();
    loop {
        // Admit waiting requests: block while idle, otherwise take what has arrived; their
        // prompts run together.
        let mut arrived = Vec::new();
        if active.is_empty() {
            match rx.recv() {
                Ok(job) => arrived.push(job),
                Err(_) => return,
            }
        }
        while active.len() + arrived.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => arrived.push(job),
                Err(_) => break,
            }
        }
        admit(ck, arrived, shared, &mut active);
        if delay_ms > 0 && !active.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        }
        // Draw every request's next token and send its text; finish those that ended.
        let mut i = 0;
        while i < active.len() {
            let a = &mut active[i];
            let step = a.decoder.step(&mut a.logits);
            let delivered = if step.text.is_empty() {
                !a.events.is_closed()
            } else {
                a.events.send(Event::Text(step.text)).is_ok()
            };
            match step.next {
                Some(next) if delivered => {
                    a.next = next;
                    i += 1;
                }
                _ => {
                    if step.next.is_some() {
                        a.decoder.cancel();
                    }
                    finish(active.swap_remove(i), shared);
                }
            }
        }
        m.decoding.store(active.len() as u64, Ordering::Relaxed);
        if active.is_empty() {
            continue;
        }
        m.steps.fetch_add(1, Ordering::Relaxed);
        let tokens: Vec<u32> = active.iter().map(|a| a.next).collect();
        let mut caches: Vec<&mut ember_model::KvCache> =
            active.iter_mut().map(|a| &mut a.decoder.cache).collect();
        match rows_to_host(ck.model.decode_step(&tokens, &mut caches)) {
            Ok(rows) => {
                for (a, row) in active.iter_mut().zip(rows) {
                    a.logits = row;
                }
            }
            Err(e) => {
                for a in active.drain(..) {
                    drop(a.slot);
                    let _ = a.events.send(Event::Failed(e.to_string()));
                }
            }
        }
    }
}

/// Runs the prompts of requests that arrived together as one pass ([`Gpt::prefill`]) and adds
/// them to the batch; a request whose client has gone, or that cannot run, is answered at once.
/// Eight requests that end in the same step send their next prompts together: one at a time,
/// the eighth waited for the seven before it (first token p50 383 ms with 8 clients on a
/// 27M-parameter model, benches/RESULTS.md, "Serving").
///
/// [`Gpt::prefill`]: ember_model::Gpt::prefill
fn admit<'t>(
    ck: &'t checkpoint::Checkpoint,
    jobs: Vec<Job>,
    shared: &Shared,
    active: &mut Vec<Active<'t>>,
) {
    let m = &shared.metrics;
    let t0 = std::time::Instant::now();
    let fail = |job: Job, e: String| {
        drop(job.slot);
        let _ = job.events.send(Event::Failed(e));
    };
    let mut ready = Vec::with_capacity(jobs.len());
    for job in jobs {
        if job.events.is_closed() {
            m.cancelled.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        m.prompt_tokens
            .fetch_add(job.prompt.len() as u64, Ordering::Relaxed);
        match Decoder::check(&ck.model, &job.prompt, &job.cfg) {
            Ok(()) => ready.push(job),
            Err(e) => fail(job, e.to_string()),
        }
    }
    if ready.is_empty() {
        return;
    }
    m.prompt_passes.fetch_add(1, Ordering::Relaxed);
    let prompts: Vec<&[u32]> = ready.iter().map(|j| j.prompt.as_slice()).collect();
    let (caches, logits) = ck.model.prefill(&prompts);
    match rows_to_host(logits) {
        Ok(rows) => {
            for ((job, cache), logits) in ready.into_iter().zip(caches).zip(rows) {
                let decoder =
                    Decoder::after_prompt(&ck.tokenizer, &job.prompt, &job.cfg, cache, t0);
                active.push(Active {
                    decoder,
                    logits,
                    next: 0,
                    events: job.events,
                    slot: job.slot,
                    t0,
                });
            }
        }
        Err(e) => ready.into_iter().for_each(|job| fail(job, e.to_string())),
    }
}

/// Counts a request that left the batch and tells its client how it ended.
fn finish(a: Active, shared: &Shared) {
    let m = &shared.metrics;
    let g = a.decoder.finish();
    m.busy_micros
        .fetch_add(a.t0.elapsed().as_micros() as u64, Ordering::Relaxed);
    m.generations.fetch_add(1, Ordering::Relaxed);
    m.generated_tokens
        .fetch_add(g.ids.len() as u64, Ordering::Relaxed);
    if g.stop == StopReason::Cancelled {
        m.cancelled.fetch_add(1, Ordering::Relaxed);
    }
    // The slot is free before the client hears the end, so a next request (or /metrics) sent
    // on receiving the reply never finds it still taken.
    drop(a.slot);
    let _ = a.events.send(Event::Done {
        tokens: g.ids.len() + usize::from(matches!(g.stop, StopReason::StopToken(_))),
        stop: g.stop,
    });
}
