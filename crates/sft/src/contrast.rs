//! `[contrast]`: the reply-ranking term of fine-tuning (`ember_train::contrast`). For each
//! ranked reply — a seeded draw of a training row and of one of its replies — the rows are the
//! reply in its context and `negatives` replies of other rows in the same context, each masked
//! on the reply's tokens and its `<|end|>`, as `dialogue-choice` scores them. Negatives come
//! from the pool of distinct training replies longer than `MIN_REPLY_TOKENS` tokens (the
//! evaluation's rule for distractors: short stock replies fit almost anything).

use ember_formats::dialogue::{Example, pad_batch};
use ember_train::config::FieldError;
use ember_train::{ContrastBatch, mix_seed};
use serde::{Deserialize, Serialize};

/// Replies of at most this many tokens (their `<|end|>` included) are never negatives.
pub const MIN_REPLY_TOKENS: usize = 4;

/// `[contrast]` of an SFT config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContrastSection {
    /// The term's weight beside the SFT loss; 0 (the default) turns it off.
    #[serde(default)]
    pub weight: f64,
    /// Replies ranked per micro-batch (each costs `1 + negatives` rows).
    #[serde(default = "default_replies")]
    pub replies: usize,
    /// Other replies each is ranked against.
    #[serde(default = "default_negatives")]
    pub negatives: usize,
    /// Inverse temperature on the scores (mean log-probability per token, in nats).
    #[serde(default = "default_scale")]
    pub scale: f64,
}

fn default_replies() -> usize {
    2
}
fn default_negatives() -> usize {
    3
}
fn default_scale() -> f64 {
    2.0
}

impl Default for ContrastSection {
    fn default() -> Self {
        ContrastSection {
            weight: 0.0,
            replies: default_replies(),
            negatives: default_negatives(),
            scale: default_scale(),
        }
    }
}

impl ContrastSection {
    /// Whether the term is on.
    pub fn on(&self) -> bool {
        self.weight > 0.0
    }

    /// Whether it is off (the section is then left out of a resolved config).
    pub fn is_off(&self) -> bool {
        !self.on()
    }

    /// Checks the values, naming the field.
    // The negated comparisons reject NaN.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn check(&self) -> Result<(), FieldError> {
        if !(self.weight >= 0.0 && self.weight <= 100.0) {
            return Err(FieldError::new(
                "contrast.weight",
                self.weight,
                "a number from 0 (off) to 100",
            ));
        }
        if !(1..=256).contains(&self.replies) {
            return Err(FieldError::new(
                "contrast.replies",
                self.replies,
                "1 to 256 ranked replies per micro-batch",
            ));
        }
        if !(1..=63).contains(&self.negatives) {
            return Err(FieldError::new(
                "contrast.negatives",
                self.negatives,
                "1 to 63 other replies per ranked one",
            ));
        }
        if !(self.scale > 0.0 && self.scale <= 1000.0) {
            return Err(FieldError::new(
                "contrast.scale",
                self.scale,
                "a number above 0 and at most 1000",
            ));
        }
        Ok(())
    }
}

/// The replies of an example: `(start, end)` of each run of trained targets in `ids`.
pub fn reply_spans(e: &Example) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &m) in e.mask.iter().enumerate() {
        match (m, start) {
            (1, None) => start = Some(i),
            (0, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, e.mask.len()));
    }
    out
}

/// Draws ranking rows from the training examples.
pub struct Contrast {
    section: ContrastSection,
    /// Distinct training replies longer than [`MIN_REPLY_TOKENS`], `<|end|>` included.
    pool: Vec<Vec<u32>>,
    seed: u64,
    /// Positions per row (the model's context).
    cap: usize,
    pad: u32,
}

impl Contrast {
    /// The term over `train`'s replies, or an error when they are too few to draw negatives.
    pub fn new(
        section: ContrastSection,
        train: &[Example],
        seed: u64,
        cap: usize,
        pad: u32,
    ) -> Result<Self, String> {
        let mut pool: Vec<Vec<u32>> = train
            .iter()
            .flat_map(|e| {
                reply_spans(e)
                    .into_iter()
                    .map(|(a, b)| e.ids[a..b].to_vec())
            })
            .filter(|r| r.len() > MIN_REPLY_TOKENS && r.len() < cap)
            .collect();
        pool.sort();
        pool.dedup();
        if pool.len() <= section.negatives {
            return Err(format!(
                "the training conversations have {} distinct replies longer than {MIN_REPLY_TOKENS} tokens; [contrast] needs more than negatives = {}",
                pool.len(),
                section.negatives
            ));
        }
        Ok(Contrast {
            section,
            pool,
            seed,
            cap,
            pad,
        })
    }

    /// Distinct replies negatives are drawn from.
    pub fn pool_size(&self) -> usize {
        self.pool.len()
    }

    /// The ranking rows of micro-batch `m` (counted over the run): `replies` groups, each the
    /// true reply and then its negatives, every one after the true reply's context.
    pub fn batch(&self, train: &[Example], m: u64) -> ContrastBatch {
        let s = &self.section;
        let mut rows: Vec<Example> = Vec::with_capacity(s.replies * (1 + s.negatives));
        let mut draw = 0u64;
        let mut next = || {
            draw += 1;
            mix_seed(self.seed, m, draw)
        };
        while rows.len() < s.replies * (1 + s.negatives) {
            let e = &train[(next() % train.len() as u64) as usize];
            let spans = reply_spans(e);
            if spans.is_empty() {
                continue;
            }
            let (a, b) = spans[(next() % spans.len() as u64) as usize];
            let truth = &e.ids[a..b];
            rows.push(self.row(&e.ids[..a], truth));
            let mut chosen: Vec<usize> = Vec::with_capacity(s.negatives);
            while chosen.len() < s.negatives {
                let k = (next() % self.pool.len() as u64) as usize;
                if self.pool[k] != truth && !chosen.contains(&k) {
                    chosen.push(k);
                }
            }
            for k in chosen {
                rows.push(self.row(&e.ids[..a], &self.pool[k]));
            }
        }
        let refs: Vec<&Example> = rows.iter().collect();
        ContrastBatch {
            rows: pad_batch(&refs, self.pad).0,
            group: 1 + s.negatives,
            scale: s.scale,
            weight: s.weight,
        }
    }

    /// `context` then `reply`, the context cut from its start to fit `cap` positions (as
    /// `dialogue-choice` does), the mask on the reply.
    fn row(&self, context: &[u32], reply: &[u32]) -> Example {
        let keep = (self.cap + 1)
            .saturating_sub(reply.len())
            .min(context.len());
        let context = &context[context.len() - keep..];
        let mut ids = context.to_vec();
        ids.extend_from_slice(reply);
        let mut mask = vec![0u8; context.len()];
        mask.resize(ids.len(), 1);
        Example {
            ids,
            mask,
            target_bytes: 0,
        }
    }
}
