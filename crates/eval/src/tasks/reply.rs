//! Does a reply fit what the user said? Two measures on held-out conversations, both scored
//! through the chat template with the conversation so far as context:
//!
//! - `dialogue-choice` (reply ranking): every assistant turn's true reply against 3 replies
//!   drawn (seeded) from other conversations, each scored by its mean log-probability per token
//!   (its `<|end|>` included); accuracy, chance 25%. Replies shorter than
//!   [`MIN_DISTRACTOR_TOKENS`] tokens, and replies that occur in more than one conversation
//!   ("Hello!"), are never drawn as distractors: they fit almost anything.
//! - `context-gain`: the true reply's mean negative log-likelihood per token after another
//!   conversation's context (drawn seeded) minus after its own, in nats per token. 0 means the
//!   model ignores what the user said; a model that listens scores above 0.
//!
//! Contexts longer than the model's window keep their end (`loglik`'s rule); the reply is
//! never cut.

use std::collections::{BTreeMap, BTreeSet};

use ember_formats::dialogue::Conversation;
use ember_tokenizer::{ChatTokens, Role, Tokenizer, render_prompt};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::loglik::{Request, Scorer};
use crate::stats::Accuracy;
use crate::tasks::choice::{ChoiceResult, ItemScores};

/// Replies shorter than this many tokens are not used as distractors.
pub const MIN_DISTRACTOR_TOKENS: usize = 4;
/// Distractors per item (so chance is 1 in 4).
pub const DISTRACTORS: usize = 3;

/// One assistant turn of one conversation: its context (the prompt up to `<|assistant|>`) and
/// its reply (the text's ids and `<|end|>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// Index of the conversation it belongs to.
    pub conversation: usize,
    /// The rendered prompt.
    pub context: Vec<u32>,
    /// The reply's ids, `<|end|>` included.
    pub reply: Vec<u32>,
    /// The reply's text.
    pub text: String,
}

/// Every assistant turn of `convs`, in order.
pub fn turns(tok: &Tokenizer, convs: &[Conversation]) -> Result<Vec<Turn>> {
    let end = ChatTokens::of(tok)?.end;
    let mut out = Vec::new();
    for (ci, c) in convs.iter().enumerate() {
        for (i, m) in c.messages.iter().enumerate() {
            if m.role != Role::Assistant {
                continue;
            }
            let mut reply = tok.encode(&m.content);
            reply.push(end);
            out.push(Turn {
                conversation: ci,
                context: render_prompt(tok, &c.messages[..i])?,
                reply,
                text: m.content.trim().to_string(),
            });
        }
    }
    Ok(out)
}

/// SplitMix64: a seeded, platform-independent stream for the draws.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One ranking item: the candidates' indices into the turns, and which is true.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankItem {
    /// The turn whose context is the question.
    pub turn: usize,
    /// Candidate replies (indices into the turns); `candidates[label] == turn`.
    pub candidates: Vec<usize>,
    /// Position of the true reply.
    pub label: usize,
}

/// The ranking items of `turns`, drawn with `seed`: for each turn, [`DISTRACTORS`] replies of
/// other conversations from the eligible pool (long enough, unique to one conversation, not the
/// true reply's text), and the true reply at a seeded position. Turns for which the pool has
/// too few replies from other conversations are left out (the count is returned).
pub fn rank_items(turns: &[Turn], seed: u64) -> (Vec<RankItem>, usize) {
    let mut seen_in: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    for t in turns {
        seen_in
            .entry(t.text.as_str())
            .or_default()
            .insert(t.conversation);
    }
    // One entry per distinct eligible text (its first turn), so no text is drawn twice.
    let mut first: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, t) in turns.iter().enumerate() {
        let unique = seen_in.get(t.text.as_str()).is_some_and(|c| c.len() == 1);
        if unique && t.reply.len() > MIN_DISTRACTOR_TOKENS {
            first.entry(t.text.as_str()).or_insert(i);
        }
    }
    let pool: Vec<usize> = {
        let mut p: Vec<usize> = first.into_values().collect();
        p.sort_unstable();
        p
    };
    let (mut items, mut left_out) = (Vec::new(), 0);
    for (i, t) in turns.iter().enumerate() {
        let mut state = seed ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
        let eligible: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|&j| turns[j].conversation != t.conversation && turns[j].text != t.text)
            .collect();
        if eligible.len() < DISTRACTORS {
            left_out += 1;
            continue;
        }
        // A partial Fisher–Yates shuffle draws the distractors without repeats.
        let mut e = eligible;
        for k in 0..DISTRACTORS {
            let r = k + (splitmix(&mut state) % (e.len() - k) as u64) as usize;
            e.swap(k, r);
        }
        let mut candidates: Vec<usize> = e[..DISTRACTORS].to_vec();
        let label = (splitmix(&mut state) % (DISTRACTORS as u64 + 1)) as usize;
        candidates.insert(label, i);
        items.push(RankItem {
            turn: i,
            candidates,
            label,
        });
    }
    (items, left_out)
}

/// Reply ranking: accuracy of the true reply having the strictly highest mean log-probability
/// per token (ties count as wrong).
pub fn dialogue_choice(
    scorer: &mut dyn Scorer,
    turns: &[Turn],
    items: &[RankItem],
    source: String,
    left_out: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(ChoiceResult, Vec<ItemScores>)> {
    let mut scores = Vec::with_capacity(items.len());
    for chunk in items.chunks(16) {
        let reqs: Vec<Request> = chunk
            .iter()
            .flat_map(|it| {
                it.candidates.iter().map(|&c| Request {
                    context: turns[it.turn].context.clone(),
                    continuation: turns[c].reply.clone(),
                })
            })
            .collect();
        let lls = scorer.loglik(&reqs)?;
        let mut k = 0;
        for it in chunk {
            let n = it.candidates.len();
            let lens: Vec<usize> = it
                .candidates
                .iter()
                .map(|&c| turns[c].reply.len())
                .collect();
            scores.push(ItemScores {
                logliks: lls[k..k + n]
                    .iter()
                    .zip(&lens)
                    .map(|(ll, &len)| ll / len as f64)
                    .collect(),
                label: it.label,
                chars: lens,
            });
            k += n;
        }
        progress(scores.len(), items.len());
    }
    let correct = scores.iter().filter(|s| s.correct()).count() as u64;
    let result = ChoiceResult {
        source,
        acc: Accuracy::of(correct, scores.len() as u64),
        acc_norm: None,
        chance: 1.0 / (DISTRACTORS as f64 + 1.0),
        ties: scores.iter().filter(|s| s.tied()).count() as u64,
        malformed: left_out as u64,
        malformed_examples: Vec::new(),
        groups: BTreeMap::new(),
    };
    Ok((result, scores))
}

/// `context-gain`'s result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GainResult {
    /// What was scored.
    pub source: String,
    /// Mean NLL per reply token after another conversation's context minus after its own, in
    /// nats per token (token-weighted over all replies).
    pub gain: f64,
    /// 95% interval of `gain` (normal approximation over replies).
    pub lo: f64,
    /// Upper end of the interval.
    pub hi: f64,
    /// NLL per token after the reply's own context.
    pub own_nll: f64,
    /// NLL per token after another conversation's context.
    pub shuffled_nll: f64,
    /// Replies scored.
    pub replies: u64,
    /// Reply tokens scored (each reply twice).
    pub tokens: u64,
}

/// Context gain: each turn's reply after its own context and after the context of a turn of
/// another conversation (drawn with `seed`). Needs turns from at least two conversations.
pub fn context_gain(
    scorer: &mut dyn Scorer,
    turns: &[Turn],
    seed: u64,
    source: String,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<GainResult> {
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for (i, t) in turns.iter().enumerate() {
        let others: Vec<usize> = (0..turns.len())
            .filter(|&j| turns[j].conversation != t.conversation)
            .collect();
        if others.is_empty() {
            continue;
        }
        let mut state = seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407);
        pairs.push((
            i,
            others[(splitmix(&mut state) % others.len() as u64) as usize],
        ));
    }
    let (mut own, mut shuffled, mut tokens) = (0f64, 0f64, 0u64);
    let mut diffs = Vec::with_capacity(pairs.len());
    for (done, chunk) in pairs.chunks(32).enumerate() {
        let reqs: Vec<Request> = chunk
            .iter()
            .flat_map(|&(i, j)| {
                [
                    Request {
                        context: turns[i].context.clone(),
                        continuation: turns[i].reply.clone(),
                    },
                    Request {
                        context: turns[j].context.clone(),
                        continuation: turns[i].reply.clone(),
                    },
                ]
            })
            .collect();
        let lls = scorer.loglik(&reqs)?;
        for (k, &(i, _)) in chunk.iter().enumerate() {
            let n = turns[i].reply.len() as f64;
            let (a, b) = (-lls[2 * k], -lls[2 * k + 1]);
            own += a;
            shuffled += b;
            tokens += turns[i].reply.len() as u64;
            diffs.push((b - a) / n);
        }
        progress((done * 32 + chunk.len()).min(pairs.len()), pairs.len());
    }
    let n = diffs.len() as f64;
    let t = tokens.max(1) as f64;
    let gain = (shuffled - own) / t;
    let mean = diffs.iter().sum::<f64>() / n.max(1.0);
    let var = diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    let half = 1.96 * (var / n.max(1.0)).sqrt();
    Ok(GainResult {
        source,
        gain,
        lo: gain - half,
        hi: gain + half,
        own_nll: own / t,
        shuffled_nll: shuffled / t,
        replies: diffs.len() as u64,
        tokens,
    })
}
