//! Tasks that generate: `gsm8k` (greedy, chat template, last number = the answer) and
//! `samples` (fixed prompts, fixed seed).

use std::path::Path;

use ember_model::{Gpt, SamplingConfig, generate};
use ember_tokenizer::{Message, Role, Tokenizer, render_prompt};
use serde::{Deserialize, Serialize};

use crate::data::{Loaded, read_jsonl, text};
use crate::error::Result;
use crate::stats::Accuracy;

/// A GSM8K problem.
#[derive(Debug, Clone, PartialEq)]
pub struct MathItem {
    /// The question.
    pub question: String,
    /// The reference answer, normalised (the number after `####`).
    pub answer: String,
}

/// Reads GSM8K (`{"question","answer"}`, the answer ending `#### N`).
pub fn load_gsm8k(path: &Path) -> Result<Loaded<MathItem>> {
    read_jsonl("gsm8k", path, |v| {
        let full = text(v, "answer")?;
        let tail = full
            .rsplit_once("####")
            .map(|(_, t)| t)
            .ok_or("the answer has no \"#### N\" line")?;
        let answer = last_number(tail).ok_or("no number after \"####\"")?;
        Ok(MathItem {
            question: text(v, "question")?,
            answer,
        })
    })
}

/// The last number in `s`, normalised: thousands commas and a leading `$` dropped, a
/// trailing `.` or `.0…` removed (`"$1,234.00"` → `"1234"`).
pub fn last_number(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut best = None;
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let mut j = i;
            while j < b.len()
                && (b[j].is_ascii_digit()
                    || ((b[j] == b',' || b[j] == b'.')
                        && j + 1 < b.len()
                        && b[j + 1].is_ascii_digit()))
            {
                j += 1;
            }
            let neg = i > 0 && b[i - 1] == b'-';
            best = Some((neg, &s[i..j]));
            i = j;
        } else {
            i += 1;
        }
    }
    let (neg, raw) = best?;
    let mut n = raw.replace(',', "");
    if let Some((int, frac)) = n.split_once('.')
        && frac.chars().all(|c| c == '0')
    {
        n = int.to_string();
    }
    Some(if neg { format!("-{n}") } else { n })
}

/// One GSM8K reply, kept for the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MathReply {
    /// The question.
    pub question: String,
    /// The model's reply.
    pub reply: String,
    /// The number taken from it.
    pub extracted: Option<String>,
    /// The reference.
    pub answer: String,
}

/// GSM8K's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MathResult {
    /// The data file.
    pub source: String,
    /// Exact match of the last number.
    pub acc: Accuracy,
    /// Questions whose prompt leaves no room to answer (scored wrong).
    pub too_long: u64,
    /// Unusable lines in the file.
    pub malformed: u64,
    /// The first few replies.
    pub examples: Vec<MathReply>,
}

/// Answers each question greedily (at most `max_new` tokens) and checks the last number.
pub fn gsm8k(
    model: &Gpt,
    tok: &Tokenizer,
    items: &[MathItem],
    loaded: &Loaded<MathItem>,
    block: usize,
    max_new: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<MathResult> {
    let (mut correct, mut too_long, mut examples) = (0, 0, Vec::new());
    for (k, item) in items.iter().enumerate() {
        let prompt = render_prompt(tok, &[Message::new(Role::User, item.question.clone())])?;
        let room = block.saturating_sub(prompt.len());
        let reply = if room == 0 {
            too_long += 1;
            String::new()
        } else {
            let cfg = SamplingConfig {
                max_new_tokens: max_new.min(room),
                temperature: 0.0,
                stop_ids: ember_tokenizer::stop_ids(tok),
                ..SamplingConfig::default()
            };
            generate(model, tok, &prompt, &cfg, |_| true)?.text
        };
        let extracted = last_number(&reply);
        correct += u64::from(extracted.as_deref() == Some(item.answer.as_str()));
        if examples.len() < 5 {
            examples.push(MathReply {
                question: item.question.clone(),
                reply,
                extracted,
                answer: item.answer.clone(),
            });
        }
        progress(k + 1, items.len());
    }
    Ok(MathResult {
        source: loaded.path.display().to_string(),
        acc: Accuracy::of(correct, items.len() as u64),
        too_long,
        malformed: loaded.malformed.len() as u64,
        examples,
    })
}

/// Prompts for a pretrained (text) model.
pub const TEXT_PROMPTS: [&str; 6] = [
    "Once upon a time",
    "It was a dark and stormy night, and",
    "The old man looked at the sea and said",
    "In the morning, the children",
    "Chapter I\n\n",
    "The most important thing about a good book is",
];

/// Prompts for a chat model (one user turn each).
pub const CHAT_PROMPTS: [&str; 6] = [
    "Hello! Who are you?",
    "What is your favourite book, and why?",
    "Can you tell me a short story about a dragon?",
    "What is the capital of France?",
    "How do I make a cup of tea?",
    "Do you like music?",
];

/// One generated sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The prompt (a user message for a chat model).
    pub prompt: String,
    /// The text generated.
    pub text: String,
}

/// Samples' result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplesResult {
    /// Whether prompts went through the chat template.
    pub chat: bool,
    /// The seed (sample i uses seed + i, wrapping past 2⁶⁴).
    pub seed: u64,
    /// Temperature used.
    pub temperature: f32,
    /// The samples.
    pub samples: Vec<Sample>,
}

/// `n` samples from `prompts`, or the fixed prompts when it is empty (cycled), seeded.
#[allow(clippy::too_many_arguments)]
pub fn samples(
    model: &Gpt,
    tok: &Tokenizer,
    chat: bool,
    prompts: &[String],
    n: usize,
    seed: u64,
    block: usize,
    max_new: usize,
) -> Result<SamplesResult> {
    let temperature = 0.8;
    let mut out = Vec::new();
    for i in 0..n {
        let prompt = if !prompts.is_empty() {
            prompts[i % prompts.len()].as_str()
        } else if chat {
            CHAT_PROMPTS[i % CHAT_PROMPTS.len()]
        } else {
            TEXT_PROMPTS[i % TEXT_PROMPTS.len()]
        };
        let ids = if chat {
            render_prompt(tok, &[Message::new(Role::User, prompt)])?
        } else {
            tok.encode(prompt)
        };
        let cfg = SamplingConfig {
            max_new_tokens: max_new.min(block.saturating_sub(ids.len())),
            temperature,
            top_k: 200,
            seed: seed.wrapping_add(i as u64),
            stop_ids: ember_tokenizer::stop_ids(tok),
            ..SamplingConfig::default()
        };
        let text = generate(model, tok, &ids, &cfg, |_| true)?.text;
        out.push(Sample {
            prompt: prompt.to_string(),
            text,
        });
    }
    Ok(SamplesResult {
        chat,
        seed,
        temperature,
        samples: out,
    })
}
