//! The [`Tokenizer`]: pre-tokenizer + BPE model + special tokens, with encode and decode.

use aho_corasick::{AhoCorasick, MatchKind};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::model::Bpe;
use crate::pretokenizer::split;

/// Document boundary; also what pretraining puts between documents.
pub const ENDOFTEXT: &str = "<|endoftext|>";
/// Starts a system message in the chat template.
pub const SYSTEM: &str = "<|system|>";
/// Starts a user turn in the chat template.
pub const USER: &str = "<|user|>";
/// Starts an assistant turn in the chat template.
pub const ASSISTANT: &str = "<|assistant|>";
/// Ends a turn of any role.
pub const END: &str = "<|end|>";
/// The special tokens every tokenizer Ember trains carries, in id order after the merges.
pub const DEFAULT_SPECIALS: [&str; 5] = [ENDOFTEXT, SYSTEM, USER, ASSISTANT, END];

/// A byte-level BPE tokenizer. Cheap to share across threads (`&Tokenizer` is `Sync`).
#[derive(Clone, Debug)]
pub struct Tokenizer {
    pub(crate) bpe: Bpe,
    /// (content, id) of each special token, in id order.
    pub(crate) specials: Vec<(String, u32)>,
    special_matcher: Option<AhoCorasick>,
}

impl Tokenizer {
    /// Assembles a tokenizer; `specials` must use ids that `bpe.tokens` leaves as `None`.
    pub(crate) fn from_parts(bpe: Bpe, mut specials: Vec<(String, u32)>) -> Self {
        specials.sort_by_key(|s| s.1);
        let special_matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(specials.iter().map(|s| s.0.as_str()))
            .ok()
            .filter(|_| !specials.is_empty());
        Tokenizer {
            bpe,
            specials,
            special_matcher,
        }
    }

    /// Number of ids: ordinary tokens plus special tokens.
    pub fn vocab_size(&self) -> usize {
        self.bpe.tokens.len()
    }

    /// Number of merges (ordinary tokens beyond the 256 bytes).
    pub fn num_merges(&self) -> usize {
        self.bpe.merges.len()
    }

    /// The special tokens and their ids, in id order.
    pub fn specials(&self) -> impl Iterator<Item = (&str, u32)> {
        self.specials.iter().map(|(s, id)| (s.as_str(), *id))
    }

    /// Id of a token: a special token by its content (`"<|user|>"`), or an ordinary token
    /// whose bytes are the UTF-8 of `token` (`" the"`).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.specials
            .iter()
            .find(|s| s.0 == token)
            .map(|s| s.1)
            .or_else(|| self.bpe.vocab.get(token.as_bytes()).copied())
    }

    /// Bytes of token `id` (a special token's bytes are its content), or `None` if out of range.
    pub fn id_to_bytes(&self, id: u32) -> Option<&[u8]> {
        match self.bpe.tokens.get(id as usize)? {
            Some(bytes) => Some(bytes),
            None => self
                .specials
                .iter()
                .find(|s| s.1 == id)
                .map(|s| s.0.as_bytes()),
        }
    }

    /// UTF-8 bytes of text that id `id` stands for: 0 for special tokens and unknown ids.
    /// Bits-per-byte figures divide by this, so they measure text, not markup.
    pub fn text_len(&self, id: u32) -> usize {
        if self.specials.iter().any(|s| s.1 == id) {
            return 0;
        }
        self.id_to_bytes(id).map_or(0, <[u8]>::len)
    }

    /// Encodes ordinary text. Special-token strings in `text` (a user typing `<|user|>`) are
    /// encoded as the ordinary bytes they are, never as special ids.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        self.encode_into(text, &mut out);
        out
    }

    /// Like [`encode`](Self::encode), appending to `out`.
    pub fn encode_into(&self, text: &str, out: &mut Vec<u32>) {
        for piece in split(text) {
            self.bpe.encode_piece(piece.as_bytes(), out);
        }
    }

    /// Encodes text in which special-token strings are meant as special tokens (a chat
    /// template, a corpus with `<|endoftext|>` separators). This is what Hugging Face
    /// `tokenizers` does for every input.
    pub fn encode_with_specials(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 1);
        let Some(matcher) = &self.special_matcher else {
            self.encode_into(text, &mut out);
            return out;
        };
        let mut last = 0;
        for m in matcher.find_iter(text) {
            self.encode_into(&text[last..m.start()], &mut out);
            out.push(self.specials[m.pattern().as_usize()].1);
            last = m.end();
        }
        self.encode_into(&text[last..], &mut out);
        out
    }

    /// Encodes one long text on all cores (rayon's pool), giving exactly the ids of
    /// [`encode`](Self::encode): the text is cut only after a newline followed by a
    /// non-space character, where the split pattern always ends a piece.
    pub fn encode_parallel(&self, text: &str) -> Vec<u32> {
        self.encode_chunked(text, 1 << 20)
    }

    /// [`encode_parallel`](Self::encode_parallel) with chunks of about `chunk_bytes` (a chunk
    /// grows until a safe cut point; tests use small sizes to put many cuts in a text).
    pub fn encode_chunked(&self, text: &str, chunk_bytes: usize) -> Vec<u32> {
        let ranges = crate::input::independent_ranges(text, chunk_bytes);
        let parts: Vec<Vec<u32>> = ranges
            .par_iter()
            .map(|r| self.encode(&text[r.clone()]))
            .collect();
        parts.concat()
    }

    /// Encodes many texts in parallel (on rayon's pool; `RAYON_NUM_THREADS` sets its size).
    pub fn encode_batch<S: AsRef<str> + Sync>(&self, texts: &[S]) -> Vec<Vec<u32>> {
        texts.par_iter().map(|t| self.encode(t.as_ref())).collect()
    }

    /// Bytes of a sequence of ids. An id outside the vocabulary is an error
    /// ([`Error::UnknownId`]); nothing is skipped silently.
    pub fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let bytes = self.id_to_bytes(id).ok_or(Error::UnknownId {
                id,
                vocab_size: self.vocab_size(),
            })?;
            out.extend_from_slice(bytes);
        }
        Ok(out)
    }

    /// Decodes ids to text. `decode(encode(s)) == s` for every string. A sequence that ends in
    /// the middle of a multi-byte character (a cut-off generation) gets U+FFFD for the
    /// incomplete bytes, as in Hugging Face's byte-level decoder; use
    /// [`decode_bytes`](Self::decode_bytes) to stream exact bytes. Out-of-range ids: error.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let bytes = self.decode_bytes(ids)?;
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }
}
