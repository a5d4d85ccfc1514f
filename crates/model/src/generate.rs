//! Text generation: KV-cached decoding with greedy, temperature, top-k, top-p and
//! repetition-penalty sampling, stop tokens and stop strings, streamed as it goes.
//!
//! Sampling runs on the host over one row of logits per step: it needs sorting and a seeded
//! RNG whose stream does not depend on the device, so the same seed gives the same text on
//! the CPU and the GPU up to float differences in the logits.

use std::time::Instant;

use burn::prelude::*;
use ember_tokenizer::Tokenizer;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::attention::KvCache;
use crate::error::{ModelError, Result};
use crate::gpt::Gpt;

/// Sampling settings.
#[derive(Clone, Debug)]
pub struct SamplingConfig {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// Softmax temperature; 0 means greedy (always the most likely token).
    pub temperature: f32,
    /// Keep only the k most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probability reaches p (1: all).
    pub top_p: f32,
    /// Divide positive logits (multiply negative ones) of tokens already in the sequence by
    /// this (1: off), as in the CTRL paper.
    pub repetition_penalty: f32,
    /// RNG seed: the same seed, prompt and model give the same text.
    pub seed: u64,
    /// Stop after generating any of these ids (it is not part of the text returned).
    pub stop_ids: Vec<u32>,
    /// Stop when the text generated so far contains any of these (cut before it).
    pub stop_strings: Vec<String>,
    /// Added to these ids' logits before sampling (OpenAI's `logit_bias`); -100 or less bans
    /// the id outright, 100 all but forces it.
    pub logit_bias: Vec<(u32, f32)>,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            max_new_tokens: 256,
            temperature: 0.8,
            top_k: 200,
            top_p: 1.0,
            repetition_penalty: 1.0,
            seed: 1337,
            stop_ids: Vec::new(),
            stop_strings: Vec::new(),
            logit_bias: Vec::new(),
        }
    }
}

/// Why generation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `max_new_tokens` were produced.
    MaxTokens,
    /// A stop id was produced.
    StopToken(u32),
    /// A stop string appeared.
    StopString(String),
    /// The stream callback asked to stop.
    Cancelled,
}

/// What a generation produced.
#[derive(Clone, Debug)]
pub struct Generation {
    /// The new ids (without the prompt or the stop token).
    pub ids: Vec<u32>,
    /// Their text (cut before a stop string).
    pub text: String,
    /// Why it ended.
    pub stop: StopReason,
    /// Tokens per second of the decoding loop (prompt processing included).
    pub tokens_per_sec: f64,
}

impl SamplingConfig {
    /// Checks every field's range; the error names the field, the value and what is allowed.
    /// Library callers get the same checks as the command line's flags.
    // The negated comparisons are deliberate: they reject NaN, which every `<` test passes.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, value: String, expected: &str| ModelError::Config {
            field,
            value,
            expected: expected.to_string(),
        };
        if self.max_new_tokens == 0 {
            return Err(bad("max_new_tokens", "0".into(), "at least 1"));
        }
        if !(self.temperature >= 0.0 && self.temperature <= 10.0) {
            return Err(bad(
                "temperature",
                self.temperature.to_string(),
                "a number from 0 (greedy) to 10",
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(bad(
                "top_p",
                self.top_p.to_string(),
                "a number above 0 and at most 1",
            ));
        }
        if let Some((id, b)) = self
            .logit_bias
            .iter()
            .find(|(_, b)| !(*b >= -100.0 && *b <= 100.0))
        {
            return Err(bad(
                "logit_bias",
                format!("{id}: {b}"),
                "a bias from -100 to 100",
            ));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty <= 10.0) {
            return Err(bad(
                "repetition_penalty",
                self.repetition_penalty.to_string(),
                "a number above 0 and at most 10 (1: off)",
            ));
        }
        Ok(())
    }
}

impl SamplingConfig {
    /// Checks every biased id is in a vocabulary of `vocab` ids and that the bias leaves at
    /// least one id to draw.
    pub fn check_bias(&self, vocab: usize) -> Result<()> {
        if let Some((id, _)) = self.logit_bias.iter().find(|(id, _)| *id as usize >= vocab) {
            return Err(ModelError::Config {
                field: "logit_bias",
                value: id.to_string(),
                expected: format!("a token id from 0 to {}", vocab.saturating_sub(1)),
            });
        }
        let banned: std::collections::BTreeSet<u32> = self
            .logit_bias
            .iter()
            .filter(|(_, b)| *b <= -100.0)
            .map(|(id, _)| *id)
            .collect();
        if banned.len() >= vocab {
            return Err(ModelError::Config {
                field: "logit_bias",
                value: format!("-100 for all {vocab} ids"),
                expected: "at least one id left to generate".into(),
            });
        }
        Ok(())
    }
}

/// Checks the request fits the context window; the error quotes all three numbers.
pub fn check_fits(prompt_len: usize, max_new: usize, block_size: usize) -> Result<()> {
    if prompt_len == 0 {
        return Err(ModelError::Generate(
            "the prompt is empty; give at least one token".into(),
        ));
    }
    let total = prompt_len.checked_add(max_new);
    if total.is_none_or(|t| t > block_size) {
        return Err(ModelError::Generate(format!(
            "prompt of {prompt_len} tokens + max new tokens {max_new} = {} exceeds the context length {block_size}; \
             shorten the prompt or lower --max-new-tokens",
            total.map_or_else(|| "more than 2^64".to_string(), |t| t.to_string())
        )));
    }
    Ok(())
}

/// Chooses the next id from one row of logits. `history` is the sequence so far.
pub fn sample(logits: &mut [f32], history: &[u32], cfg: &SamplingConfig, rng: &mut StdRng) -> u32 {
    if cfg.repetition_penalty != 1.0 {
        let mut seen = vec![false; logits.len()];
        for &id in history {
            if let Some(s) = seen.get_mut(id as usize).filter(|s| !**s) {
                *s = true;
                let l = &mut logits[id as usize];
                *l = if *l > 0.0 {
                    *l / cfg.repetition_penalty
                } else {
                    *l * cfg.repetition_penalty
                };
            }
        }
    }
    for &(id, b) in &cfg.logit_bias {
        if let Some(l) = logits.get_mut(id as usize) {
            // A ban is exact (not a very unlikely draw), as OpenAI documents -100.
            *l = if b <= -100.0 {
                f32::NEG_INFINITY
            } else {
                *l + b
            };
        }
    }
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold(0, |best, (i, &l)| if l > logits[best] { i } else { best }) as u32
    };
    if cfg.temperature <= 0.0 {
        return argmax();
    }
    // Candidates by descending logit, ties by id, so the order (and the draw) is deterministic.
    // Without top-k or top-p every id is a candidate and the order does not change which
    // distribution is drawn from, so the ids stay in id order: sorting the vocabulary for every
    // token was about a fifth of a `perf` profile of the server with 8 clients (4096 ids;
    // benches/RESULTS.md, "Serving").
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    let key = |i: &u32| logits[*i as usize];
    let k = if cfg.top_k == 0 {
        order.len()
    } else {
        cfg.top_k.min(order.len())
    };
    if k < order.len() {
        order.select_nth_unstable_by(k - 1, |a, b| key(b).total_cmp(&key(a)).then(a.cmp(b)));
        order.truncate(k);
    }
    if k < logits.len() || cfg.top_p < 1.0 {
        order.sort_by(|a, b| key(b).total_cmp(&key(a)).then(a.cmp(b)));
    }
    let max = order.iter().map(key).fold(f32::NEG_INFINITY, f32::max);
    // The vectorised exp of the kernels, not a libm call per id: `exp` on f64 was about 4% of a
    // `perf` profile of the server with 8 clients, serial on the model thread while the other
    // compute thread waited (benches/RESULTS.md, "Serving"). A banned id (−∞) stays exactly
    // impossible.
    let mut scaled: Vec<f32> = order
        .iter()
        .map(|i| (key(i) - max) / cfg.temperature)
        .collect();
    ember_kernels::exp_slice(&mut scaled);
    let mut probs: Vec<f64> = order
        .iter()
        .zip(&scaled)
        .map(|(i, &p)| {
            if key(i) == f32::NEG_INFINITY {
                0.0
            } else {
                f64::from(p)
            }
        })
        .collect();
    let total: f64 = probs.iter().sum();
    if cfg.top_p < 1.0 {
        let mut cum = 0.0;
        let mut keep = probs.len();
        for (j, p) in probs.iter().enumerate() {
            cum += p / total;
            if cum >= cfg.top_p as f64 {
                keep = j + 1;
                break;
            }
        }
        probs.truncate(keep);
    }
    let total: f64 = probs.iter().sum();
    let mut r = rng.random::<f64>() * total;
    for (j, p) in probs.iter().enumerate() {
        r -= p;
        if r <= 0.0 {
            return order[j];
        }
    }
    order[probs.len() - 1]
}

/// Bytes at the end of `text` that begin some stop string (and so may not be shown yet).
fn held_back(text: &str, stops: &[String]) -> usize {
    let mut keep = 0;
    for s in stops {
        for (i, _) in s.char_indices().skip(1) {
            if i > keep && text.ends_with(&s[..i]) {
                keep = i;
            }
        }
    }
    keep
}

/// One sequence being generated, one token at a time: its cache, RNG, history and the text
/// produced so far. [`generate`] drives one; a server drives many, feeding all of their next
/// tokens to [`Gpt::decode_step`] together (each decoder's result does not depend on the others).
pub struct Decoder<'t> {
    tokenizer: &'t Tokenizer,
    cfg: SamplingConfig,
    rng: StdRng,
    /// The sequence's keys and values (prompt and every token fed back so far).
    pub cache: KvCache,
    history: Vec<u32>,
    ids: Vec<u32>,
    bytes: Vec<u8>,
    text: String,
    emitted: usize,
    stop: Option<StopReason>,
    started: Instant,
}

/// What one [`Decoder::step`] produced.
#[derive(Debug)]
pub struct Step {
    /// Text completed by this token, safe to show (may be empty: a character is incomplete, or
    /// the text could still become a stop string). The pieces add up to [`Generation::text`].
    pub text: String,
    /// The token to feed to the model for the next step; `None` once generation has ended.
    pub next: Option<u32>,
}

impl<'t> Decoder<'t> {
    /// Checks the settings and that the request fits, then runs the prompt through the model.
    /// Returns the decoder and the logits of the first new token.
    pub fn start(
        model: &Gpt,
        tokenizer: &'t Tokenizer,
        prompt: &[u32],
        cfg: &SamplingConfig,
    ) -> Result<(Decoder<'t>, Vec<f32>)> {
        Self::check(model, prompt, cfg)?;
        let started = Instant::now();
        let (mut caches, logits) = model.prefill(&[prompt]);
        let logits = rows_to_host(logits)?.remove(0);
        let cache = caches.remove(0);
        Ok((
            Self::after_prompt(tokenizer, prompt, cfg, cache, started),
            logits,
        ))
    }

    /// What [`Decoder::start`] checks before running a prompt: the settings, and that the
    /// prompt and the tokens asked for fit the model.
    pub fn check(model: &Gpt, prompt: &[u32], cfg: &SamplingConfig) -> Result<()> {
        cfg.validate()?;
        cfg.check_bias(model.wte.weight.dims()[0])?;
        check_fits(prompt.len(), cfg.max_new_tokens, model.block_size)
    }

    /// A decoder for a prompt already run (checked with [`Decoder::check`]; `cache` holds its
    /// keys and values, as [`Gpt::prefill`] leaves them), timed from `started`.
    pub fn after_prompt(
        tokenizer: &'t Tokenizer,
        prompt: &[u32],
        cfg: &SamplingConfig,
        cache: KvCache,
        started: Instant,
    ) -> Decoder<'t> {
        Decoder {
            tokenizer,
            cfg: cfg.clone(),
            rng: StdRng::seed_from_u64(cfg.seed),
            cache,
            history: prompt.to_vec(),
            ids: Vec::new(),
            bytes: Vec::new(),
            text: String::new(),
            emitted: 0,
            stop: None,
            started,
        }
    }

    /// Chooses the next token from `logits` (the model's output for the previous one) and
    /// advances the text. Once the generation has ended (a stop token or string, the token
    /// limit), `next` is `None` and the text still held back is in this step's `text`.
    pub fn step(&mut self, logits: &mut [f32]) -> Step {
        if self.stop.is_some() {
            return Step {
                text: String::new(),
                next: None,
            };
        }
        // Only ids the tokenizer can write: a model may have more rows than it (a padded
        // vocabulary, the hybrid objective's mask token), never trained as targets but never
        // exactly impossible either.
        let ids = self.tokenizer.vocab_size().min(logits.len());
        let next = sample(&mut logits[..ids], &self.history, &self.cfg, &mut self.rng);
        if self.cfg.stop_ids.contains(&next) {
            return self.end(StopReason::StopToken(next), String::new());
        }
        self.ids.push(next);
        self.history.push(next);
        let bytes = &mut self.bytes;
        bytes.extend_from_slice(self.tokenizer.id_to_bytes(next).unwrap_or_default());
        // Emit only whole characters; keep an incomplete UTF-8 tail for the next token.
        let valid = match std::str::from_utf8(bytes) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_some() => bytes.len(), // invalid, not just cut: emit lossily
            Err(e) => e.valid_up_to(),
        };
        let piece = String::from_utf8_lossy(&bytes[..valid]).into_owned();
        bytes.drain(..valid);
        self.text.push_str(&piece);
        let text = &mut self.text;
        if let Some((pos, s)) = self
            .cfg
            .stop_strings
            .iter()
            .filter_map(|s| text.find(s.as_str()).map(|p| (p, s)))
            .min()
        {
            let s = s.clone();
            text.truncate(pos);
            let rest = text.get(self.emitted..).unwrap_or_default().to_string();
            self.emitted = self.emitted.max(pos);
            return self.end(StopReason::StopString(s), rest);
        }
        // Text that could be the start of a stop string is held back until the next tokens
        // show it is not, so a stop string spanning tokens never reaches the stream.
        let safe = text.len() - held_back(text, &self.cfg.stop_strings);
        let piece = text.get(self.emitted..safe).unwrap_or_default().to_string();
        self.emitted = self.emitted.max(safe);
        if self.ids.len() >= self.cfg.max_new_tokens {
            let rest = self.text[self.emitted..].to_string();
            self.emitted = self.text.len();
            return self.end(StopReason::MaxTokens, piece + &rest);
        }
        Step {
            text: piece,
            next: Some(next),
        }
    }

    /// Ends the generation early (the caller's client went away).
    pub fn cancel(&mut self) {
        self.stop.get_or_insert(StopReason::Cancelled);
    }

    /// Tokens generated so far.
    pub fn generated(&self) -> usize {
        self.ids.len()
    }

    /// Whether the generation has ended, and why.
    pub fn stopped(&self) -> Option<&StopReason> {
        self.stop.as_ref()
    }

    /// The result (call once `step` has returned `next: None`, or after [`Decoder::cancel`]).
    pub fn finish(self) -> Generation {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        Generation {
            tokens_per_sec: self.ids.len() as f64 / secs,
            ids: self.ids,
            text: self.text,
            stop: self.stop.unwrap_or(StopReason::MaxTokens),
        }
    }

    fn end(&mut self, stop: StopReason, text: String) -> Step {
        self.stop = Some(stop);
        Step { text, next: None }
    }
}

/// Logits `[rows, vocab]` on the host, one `Vec` per row.
pub fn rows_to_host(logits: Tensor<2>) -> Result<Vec<Vec<f32>>> {
    let [_, v] = logits.dims();
    let flat = logits
        .into_data()
        .try_to_vec_as::<f32>()
        .map_err(|e| ModelError::Generate(format!("reading logits from the device: {e:?}")))?;
    Ok(flat.chunks(v.max(1)).map(<[f32]>::to_vec).collect())
}

/// Generates a continuation of `prompt` with a KV cache. `on_text` is called after every new
/// token with the text it completed (empty while a character is incomplete or the text could
/// still turn into a stop string, which is never shown); returning `false` stops generation
/// within that token. The pieces add up to [`Generation::text`].
pub fn generate(
    model: &Gpt,
    tokenizer: &Tokenizer,
    prompt: &[u32],
    cfg: &SamplingConfig,
    mut on_text: impl FnMut(&str) -> bool,
) -> Result<Generation> {
    let (mut decoder, mut logits) = Decoder::start(model, tokenizer, prompt, cfg)?;
    loop {
        let step = decoder.step(&mut logits);
        let keep_going = on_text(&step.text);
        let Some(next) = step.next else { break };
        if !keep_going {
            decoder.cancel();
            break;
        }
        logits = rows_to_host(model.decode_step(&[next], &mut [&mut decoder.cache]))?.remove(0);
    }
    Ok(decoder.finish())
}
