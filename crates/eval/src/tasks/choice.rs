//! Zero-shot multiple choice, scored as lm-evaluation-harness scores it.
//!
//! Each choice is the continuation `" " + choice` of the context; its score is the summed
//! log-likelihood of its tokens. `acc`: the gold choice has the highest score; `acc_norm`: the
//! highest score divided by the choice's length in characters. A tie with the gold choice
//! counts as wrong (lm-evaluation-harness's argmax would credit whichever came first).
//! BLiMP has no context: each sentence is scored after `<|endoftext|>` (the harness's EOT
//! prefix), the good sentence must score strictly higher, and the result is the mean of the
//! paradigms' accuracies.

use std::collections::BTreeMap;
use std::path::Path;

use ember_tokenizer::{ENDOFTEXT, Tokenizer};
use serde::{Deserialize, Serialize};

use crate::data::{Loaded, choices, label, read_jsonl, text};
use crate::error::{EvalError, Result};
use crate::loglik::{Request, Scorer};
use crate::stats::Accuracy;

/// One question.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceItem {
    /// Text before the choices (empty for BLiMP).
    pub context: String,
    /// The candidate continuations.
    pub choices: Vec<String>,
    /// Index of the correct one.
    pub label: usize,
    /// Group for a mean over groups (BLiMP's paradigm).
    pub group: Option<String>,
}

/// Reads HellaSwag (`{"context","endings","label"}`).
pub fn load_hellaswag(path: &Path) -> Result<Loaded<ChoiceItem>> {
    read_jsonl("hellaswag", path, |v| {
        let choices = choices(v, "endings")?;
        Ok(ChoiceItem {
            context: text(v, "context")?,
            label: label(v, "label", choices.len())?,
            choices,
            group: None,
        })
    })
}

/// Reads ARC (`{"question","choices","label"}`); the context is `Question: …\nAnswer:` as in
/// lm-evaluation-harness's `arc_easy`.
pub fn load_arc(path: &Path) -> Result<Loaded<ChoiceItem>> {
    read_jsonl("arc-easy", path, |v| {
        let choices = choices(v, "choices")?;
        Ok(ChoiceItem {
            context: format!("Question: {}\nAnswer:", text(v, "question")?),
            label: label(v, "label", choices.len())?,
            choices,
            group: None,
        })
    })
}

/// Reads BLiMP pairs (`{"UID","sentence_good","sentence_bad"}`).
pub fn load_blimp(path: &Path) -> Result<Loaded<ChoiceItem>> {
    read_jsonl("blimp", path, |v| {
        Ok(ChoiceItem {
            context: String::new(),
            choices: vec![text(v, "sentence_good")?, text(v, "sentence_bad")?],
            label: 0,
            group: Some(text(v, "UID")?),
        })
    })
}

/// Context and continuation ids as lm-evaluation-harness splits them: trailing whitespace of
/// the context moves to the continuation, the pair is encoded whole, and the continuation is
/// what follows the context's own encoding (so a merge across the boundary cannot hide it).
pub fn encode_pair(tok: &Tokenizer, context: &str, continuation: &str) -> (Vec<u32>, Vec<u32>) {
    let kept = context.trim_end();
    let moved = format!("{}{continuation}", &context[kept.len()..]);
    let ctx = tok.encode(kept);
    let whole = tok.encode(&format!("{kept}{moved}"));
    let cont = whole[ctx.len().min(whole.len())..].to_vec();
    (ctx, cont)
}

/// The requests of one item, one per choice.
pub fn requests(tok: &Tokenizer, item: &ChoiceItem) -> Result<Vec<Request>> {
    let eot = tok
        .token_to_id(ENDOFTEXT)
        .ok_or_else(|| EvalError::Usage(format!("the tokenizer has no {ENDOFTEXT} token")))?;
    Ok(item
        .choices
        .iter()
        .map(|c| {
            let cont = format!(" {c}");
            if item.context.is_empty() {
                Request {
                    context: vec![eot],
                    continuation: tok.encode(&cont),
                }
            } else {
                let (context, continuation) = encode_pair(tok, &item.context, &cont);
                Request {
                    context,
                    continuation,
                }
            }
        })
        .collect())
}

/// The scores of one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemScores {
    /// Summed log-likelihood of each choice.
    pub logliks: Vec<f64>,
    /// Index of the correct choice.
    pub label: usize,
    /// Each choice's length in characters (for `acc_norm`).
    pub chars: Vec<usize>,
}

impl ItemScores {
    fn strictly_best(&self, score: impl Fn(usize) -> f64) -> bool {
        let gold = score(self.label);
        (0..self.logliks.len()).all(|i| i == self.label || score(i) < gold)
    }

    /// The correct choice has the strictly highest log-likelihood.
    pub fn correct(&self) -> bool {
        self.strictly_best(|i| self.logliks[i])
    }

    /// The correct choice has the strictly highest log-likelihood per character.
    pub fn correct_norm(&self) -> bool {
        self.strictly_best(|i| self.logliks[i] / self.chars[i].max(1) as f64)
    }

    /// Some other choice scores exactly as the correct one.
    pub fn tied(&self) -> bool {
        let gold = self.logliks[self.label];
        (0..self.logliks.len()).any(|i| i != self.label && self.logliks[i] == gold)
    }
}

/// Scores items in chunks, calling `progress(done, total)` after each.
pub fn score(
    scorer: &mut dyn Scorer,
    tok: &Tokenizer,
    items: &[ChoiceItem],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<ItemScores>> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(32) {
        let mut reqs = Vec::new();
        for item in chunk {
            reqs.extend(requests(tok, item)?);
        }
        let lls = scorer.loglik(&reqs)?;
        let mut k = 0;
        for item in chunk {
            let n = item.choices.len();
            out.push(ItemScores {
                logliks: lls[k..k + n].to_vec(),
                label: item.label,
                chars: item.choices.iter().map(|c| c.chars().count()).collect(),
            });
            k += n;
        }
        progress(out.len(), items.len());
    }
    Ok(out)
}

/// A multiple-choice task's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceResult {
    /// The data file.
    pub source: String,
    /// Accuracy (highest summed log-likelihood; ties wrong).
    pub acc: Accuracy,
    /// Accuracy with scores divided by the choice's length in characters (not for BLiMP).
    pub acc_norm: Option<Accuracy>,
    /// Expected accuracy of guessing.
    pub chance: f64,
    /// Items whose correct choice tied with another.
    pub ties: u64,
    /// Unusable lines in the file (counted, not scored).
    pub malformed: u64,
    /// The first few of them, `file:line: reason`.
    pub malformed_examples: Vec<String>,
    /// Per-group accuracy (BLiMP paradigms), when the task has groups.
    pub groups: BTreeMap<String, Accuracy>,
}

/// Aggregates item scores; with groups, `acc` is the mean of the groups' accuracies.
pub fn summarize(
    items: &[ChoiceItem],
    scores: &[ItemScores],
    loaded_from: &Loaded<ChoiceItem>,
) -> ChoiceResult {
    let n = scores.len() as u64;
    let correct = scores.iter().filter(|s| s.correct()).count() as u64;
    let mut groups: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (item, s) in items.iter().zip(scores) {
        if let Some(g) = &item.group {
            let e = groups.entry(g.clone()).or_default();
            e.0 += u64::from(s.correct());
            e.1 += 1;
        }
    }
    let grouped = !groups.is_empty();
    let acc = if grouped {
        Accuracy::mean_of_groups(&groups.values().copied().collect::<Vec<_>>())
    } else {
        Accuracy::of(correct, n)
    };
    let acc_norm = (!grouped)
        .then(|| Accuracy::of(scores.iter().filter(|s| s.correct_norm()).count() as u64, n));
    let chance = items
        .iter()
        .map(|i| 1.0 / i.choices.len() as f64)
        .sum::<f64>()
        / n.max(1) as f64;
    ChoiceResult {
        source: loaded_from.path.display().to_string(),
        acc,
        acc_norm,
        chance,
        ties: scores.iter().filter(|s| s.tied()).count() as u64,
        malformed: loaded_from.malformed.len() as u64,
        malformed_examples: loaded_from.malformed.iter().take(5).cloned().collect(),
        groups: groups
            .into_iter()
            .map(|(g, (c, n))| (g, Accuracy::of(c, n)))
            .collect(),
    }
}
