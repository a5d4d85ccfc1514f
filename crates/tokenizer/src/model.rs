//! The BPE model: token byte strings, merge ranks, and encoding of one pre-token piece.
//!
//! Semantics are those of Hugging Face `tokenizers`' BPE with `ignore_merges = true`: a piece
//! that is itself a token becomes that token; otherwise, starting from byte tokens, the adjacent
//! pair with the lowest merge rank is merged (leftmost first) until no merge applies.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;

/// Pieces longer than this many bytes are merged with a heap (O(n log n)) instead of the
/// quadratic scan that is fastest for the short pieces of ordinary text. This keeps
/// pathological input (megabytes of one character) fast.
const HEAP_THRESHOLD: usize = 128;

/// A byte-level BPE vocabulary with its merges. Ids of special tokens are not in here.
#[derive(Clone, Debug)]
pub struct Bpe {
    /// Bytes of every ordinary token, indexed by id (`None` where the id is a special token).
    pub(crate) tokens: Vec<Option<Box<[u8]>>>,
    /// Id of each single byte.
    pub(crate) byte_ids: [u32; 256],
    /// Bytes → id for ordinary tokens.
    pub(crate) vocab: FxHashMap<Box<[u8]>, u32>,
    /// Merges in rank order: (left id, right id) → result id at index = rank.
    pub(crate) merges: Vec<(u32, u32, u32)>,
    /// (left id, right id) → (rank, result id).
    pub(crate) merge_of: FxHashMap<u64, (u32, u32)>,
    /// Whether a piece that is already a token skips the merges (`ignore_merges`).
    pub(crate) ignore_merges: bool,
}

#[inline(always)]
fn key(a: u32, b: u32) -> u64 {
    (a as u64) << 32 | b as u64
}

impl Bpe {
    /// Builds the model from token bytes (by id; `None` for ids used by specials), and merges as
    /// (left, right) id pairs in rank order. The caller has validated that every merge result
    /// exists; merges whose result is missing are ignored here.
    pub(crate) fn new(
        tokens: Vec<Option<Box<[u8]>>>,
        merge_pairs: &[(u32, u32)],
        ignore_merges: bool,
    ) -> Self {
        let mut vocab = FxHashMap::default();
        let mut byte_ids = [u32::MAX; 256];
        for (id, t) in tokens.iter().enumerate() {
            if let Some(t) = t {
                if t.len() == 1 {
                    byte_ids[t[0] as usize] = id as u32;
                }
                vocab.insert(t.clone(), id as u32);
            }
        }
        let mut merges = Vec::with_capacity(merge_pairs.len());
        let mut merge_of = FxHashMap::default();
        for &(a, b) in merge_pairs {
            let (Some(Some(ta)), Some(Some(tb))) = (tokens.get(a as usize), tokens.get(b as usize))
            else {
                continue;
            };
            let joined: Vec<u8> = [&ta[..], &tb[..]].concat();
            if let Some(&id) = vocab.get(&joined[..]) {
                let rank = merges.len() as u32;
                merge_of.entry(key(a, b)).or_insert((rank, id));
                merges.push((a, b, id));
            }
        }
        Bpe {
            tokens,
            byte_ids,
            vocab,
            merges,
            merge_of,
            ignore_merges,
        }
    }

    #[inline(always)]
    fn merge(&self, a: u32, b: u32) -> Option<(u32, u32)> {
        self.merge_of.get(&key(a, b)).copied()
    }

    /// Appends the ids of one pre-token piece to `out`.
    #[inline]
    pub fn encode_piece(&self, piece: &[u8], out: &mut Vec<u32>) {
        if piece.len() == 1 {
            out.push(self.byte_ids[piece[0] as usize]);
            return;
        }
        if self.ignore_merges
            && let Some(&id) = self.vocab.get(piece)
        {
            out.push(id);
            return;
        }
        if piece.len() <= HEAP_THRESHOLD {
            self.merge_short(piece, out);
        } else {
            self.merge_long(piece, out);
        }
    }

    /// Quadratic merge loop over a small array, keeping each pair's rank so that a merge only
    /// re-looks-up its two new neighbours.
    fn merge_short(&self, piece: &[u8], out: &mut Vec<u32>) {
        let mut ids: Vec<u32> = piece.iter().map(|&b| self.byte_ids[b as usize]).collect();
        let none = (u32::MAX, 0);
        let mut ranks: Vec<(u32, u32)> = ids
            .windows(2)
            .map(|w| self.merge(w[0], w[1]).unwrap_or(none))
            .collect();
        loop {
            let mut best = none;
            let mut at = usize::MAX;
            for (i, &r) in ranks.iter().enumerate() {
                if r.0 < best.0 {
                    best = r;
                    at = i;
                }
            }
            if at == usize::MAX {
                break;
            }
            ids[at] = best.1;
            ids.remove(at + 1);
            ranks.remove(at);
            if at > 0 {
                ranks[at - 1] = self.merge(ids[at - 1], ids[at]).unwrap_or(none);
            }
            if at < ranks.len() {
                ranks[at] = self.merge(ids[at], ids[at + 1]).unwrap_or(none);
            }
        }
        out.extend_from_slice(&ids);
    }

    /// Heap-driven merging over a linked list of symbols, O(n log n) in the piece length.
    fn merge_long(&self, piece: &[u8], out: &mut Vec<u32>) {
        const DEAD: u32 = u32::MAX;
        let n = piece.len();
        let mut id: Vec<u32> = piece.iter().map(|&b| self.byte_ids[b as usize]).collect();
        let mut next: Vec<usize> = (1..=n).collect(); // n means "no next"
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        let mut heap = BinaryHeap::new();
        for i in 0..n - 1 {
            if let Some((rank, _)) = self.merge(id[i], id[i + 1]) {
                heap.push(Reverse((rank, i)));
            }
        }
        while let Some(Reverse((rank, i))) = heap.pop() {
            if id[i] == DEAD || next[i] >= n {
                continue;
            }
            let j = next[i];
            let Some((r, new)) = self.merge(id[i], id[j]) else {
                continue;
            };
            if r != rank {
                continue;
            }
            id[i] = new;
            id[j] = DEAD;
            next[i] = next[j];
            if next[j] < n {
                prev[next[j]] = i;
            }
            if prev[i] < n
                && let Some((r, _)) = self.merge(id[prev[i]], id[i])
            {
                heap.push(Reverse((r, prev[i])));
            }
            if next[i] < n
                && let Some((r, _)) = self.merge(id[i], id[next[i]])
            {
                heap.push(Reverse((r, i)));
            }
        }
        out.extend(id.into_iter().filter(|&t| t != DEAD));
    }
}

#[cfg(test)]
mod tests {
    use crate::{TrainerConfig, train_from_texts};

    #[test]
    fn heap_and_quadratic_merging_agree() {
        let corpus = [
            "abcab cabbage abba ".repeat(50),
            "aaaa bbbb abab baba ".repeat(30),
        ];
        let (tok, _) =
            train_from_texts(&corpus, &TrainerConfig::new(300)).unwrap_or_else(|e| panic!("{e}"));
        let mut state = 12345u64;
        for len in [2usize, 3, 7, 40, 129, 300, 1000] {
            for _ in 0..20 {
                let piece: Vec<u8> = (0..len)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        b"abce"[(state >> 33) as usize % 4]
                    })
                    .collect();
                let (mut short, mut long) = (Vec::new(), Vec::new());
                tok.bpe.merge_short(&piece, &mut short);
                tok.bpe.merge_long(&piece, &mut long);
                assert_eq!(short, long, "piece {:?}", String::from_utf8_lossy(&piece));
            }
        }
    }
}
