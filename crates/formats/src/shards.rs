//! Token shards: a 64-byte header and the ids as little-endian u16 (vocabularies up to 65,536)
//! or u32, read through a memory map so a corpus larger than RAM trains without loading it.
//!
//! ```text
//! 0   8  magic "EMBERTOK"
//! 8   4  format version (1), u32 LE
//! 12  4  bytes per token (2 or 4), u32 LE
//! 16  8  number of tokens, u64 LE
//! 24  4  tokenizer vocabulary size, u32 LE
//! 28  4  reserved (0)
//! 32 32  SHA-256 of the tokenizer.json the ids come from
//! 64  …  the ids
//! ```

use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{FormatError, Result};
pub use ember_files::{hex, unhex32};

/// `format` of the `meta.json` that `ember prepare` writes beside the shards.
pub const META_FORMAT: &str = "ember-shards";

/// Magic bytes at the start of every shard.
pub const MAGIC: &[u8; 8] = b"EMBERTOK";
/// Shard format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 64;

/// The header of a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// 2 (u16) or 4 (u32).
    pub width: u32,
    /// Tokens in the shard.
    pub tokens: u64,
    /// Vocabulary size of the tokenizer.
    pub vocab_size: u32,
    /// SHA-256 of the tokenizer.json, raw bytes.
    pub tokenizer_sha256: [u8; 32],
}

/// Bytes per token for a vocabulary: u16 when every id fits.
pub fn width_for(vocab_size: usize) -> u32 {
    if vocab_size <= 1 << 16 { 2 } else { 4 }
}

impl Header {
    /// The 64 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&self.width.to_le_bytes());
        h[16..24].copy_from_slice(&self.tokens.to_le_bytes());
        h[24..28].copy_from_slice(&self.vocab_size.to_le_bytes());
        h[32..64].copy_from_slice(&self.tokenizer_sha256);
        h
    }

    /// Parses and checks a header; `path` and `file_len` are for the error messages.
    pub fn parse(bytes: &[u8], path: &Path, file_len: u64) -> Result<Header> {
        let bad = |reason: String| FormatError::damaged(path.to_path_buf(), reason);
        if bytes.len() < HEADER_LEN {
            return Err(bad(format!(
                "{file_len} bytes is shorter than the {HEADER_LEN}-byte header (truncated or not a shard)"
            )));
        }
        if &bytes[..8] != MAGIC {
            return Err(bad(format!(
                "does not start with {:?} (starts with {:?}): not an Ember token shard",
                String::from_utf8_lossy(MAGIC),
                String::from_utf8_lossy(&bytes[..8])
            )));
        }
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let version = u32_at(8);
        if version != VERSION {
            return Err(bad(format!(
                "format version {version}; this build reads version {VERSION}"
            )));
        }
        let width = u32_at(12);
        if width != 2 && width != 4 {
            return Err(bad(format!(
                "bytes per token is {width}, expected 2 or 4 (damaged header)"
            )));
        }
        let mut t = [0u8; 8];
        t.copy_from_slice(&bytes[16..24]);
        let tokens = u64::from_le_bytes(t);
        let mut sha = [0u8; 32];
        sha.copy_from_slice(&bytes[32..64]);
        let want = tokens
            .checked_mul(u64::from(width))
            .and_then(|n| n.checked_add(HEADER_LEN as u64));
        if want != Some(file_len) {
            return Err(bad(format!(
                "is {file_len} bytes but its header promises {tokens} tokens × {width} bytes + {HEADER_LEN} = {} bytes: the shard is truncated or damaged; run `ember prepare` again",
                want.map(|w| w.to_string())
                    .unwrap_or_else(|| "an impossible size".into())
            )));
        }
        Ok(Header {
            width,
            tokens,
            vocab_size: u32_at(24),
            tokenizer_sha256: sha,
        })
    }
}

/// The ids as shard bytes (after the header).
pub fn encode_ids(ids: &[u32], width: u32, out: &mut Vec<u8>) {
    if width == 2 {
        out.extend(ids.iter().flat_map(|&id| (id as u16).to_le_bytes()));
    } else {
        out.extend(ids.iter().flat_map(|&id| id.to_le_bytes()));
    }
}

/// One memory-mapped shard.
#[derive(Debug)]
pub struct Shard {
    path: PathBuf,
    map: Mmap,
    /// Its header.
    pub header: Header,
}

impl Shard {
    /// Opens and checks `path`; `tokenizer_sha256` (hex) must match the header's.
    pub fn open(path: &Path, tokenizer_sha256: &str) -> Result<Shard> {
        let file = std::fs::File::open(path).map_err(|e| FormatError::io(path, "open", e))?;
        let len = file
            .metadata()
            .map_err(|e| FormatError::io(path, "stat", e))?
            .len();
        let map = map_file(&file).map_err(|e| FormatError::io(path, "memory-map", e))?;
        let header = Header::parse(&map[..map.len().min(HEADER_LEN)], path, len)?;
        let got = hex(&header.tokenizer_sha256);
        if got != tokenizer_sha256 {
            return Err(FormatError::damaged(
                path,
                format!(
                    "was written with another tokenizer (SHA-256 {got}, the run's tokenizer.json is {tokenizer_sha256}); prepare the data again with this tokenizer"
                ),
            ));
        }
        let shard = Shard {
            path: path.to_path_buf(),
            map,
            header,
        };
        shard.check_ids()?;
        Ok(shard)
    }

    /// Checks that every id is below the header's vocabulary size, so a damaged shard is
    /// refused when opened instead of failing inside an embedding lookup mid-run. One
    /// vectorised pass over the map per 1 MiB block (`ember_kernels::max_u16_le`), several
    /// times cheaper than re-hashing the file (`benches/RESULTS.md`, "Shard checks"); the
    /// first offender's position is found only when a block has one.
    pub fn check_ids(&self) -> Result<()> {
        let vocab = self.header.vocab_size;
        let ids = &self.map[HEADER_LEN..];
        let w = self.header.width as usize;
        let block = 1 << 20;
        for (b, chunk) in ids.chunks(block).enumerate() {
            let max = if w == 2 {
                ember_kernels::max_u16_le(chunk)
            } else {
                ember_kernels::max_u32_le(chunk)
            };
            if max.is_some_and(|m| m >= vocab) {
                let mut at = Vec::new();
                let first = b * block / w;
                self.read(first, block / w, &mut at);
                let (i, id) = at
                    .iter()
                    .enumerate()
                    .find(|(_, id)| **id >= vocab)
                    .map_or((0, 0), |(i, id)| (i, *id));
                return Err(FormatError::damaged(
                    &self.path,
                    format!(
                        "token {} is id {id}, but the tokenizer has {vocab} ids (0 to {}): the shard is damaged; run `ember prepare` again",
                        first + i,
                        vocab.saturating_sub(1)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Tokens in the shard.
    pub fn len(&self) -> usize {
        self.header.tokens as usize
    }

    /// True for a shard without tokens.
    pub fn is_empty(&self) -> bool {
        self.header.tokens == 0
    }

    /// Appends ids `start..start + n` to `out`. Ranges past the end are a caller bug and are
    /// clamped.
    pub fn read(&self, start: usize, n: usize, out: &mut Vec<u32>) {
        let end = start.saturating_add(n).min(self.len());
        let start = start.min(end);
        let w = self.header.width as usize;
        let bytes = &self.map[HEADER_LEN + start * w..HEADER_LEN + end * w];
        if w == 2 {
            out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| u32::from(u16::from_le_bytes([c[0], c[1]]))),
            );
        } else {
            out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

// The one use of `unsafe` in Ember. Mapping a file is unsafe because another process could
// change it while mapped; shards are written once (atomically, by rename) and never modified
// in place, and a truncation under a live map is the only way to fault — the same risk every
// memory-mapped data loader (nanoGPT's np.memmap included) accepts.
#[allow(unsafe_code)]
fn map_file(file: &std::fs::File) -> std::io::Result<Mmap> {
    // SAFETY: see above; the map is read-only and only read through bounds-checked slices.
    unsafe { Mmap::map(file) }
}
