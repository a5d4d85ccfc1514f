//! Pre-tokenizer: splits text into pieces with the GPT-4 (cl100k) split pattern.
//!
//! BPE merges never cross a piece boundary. The pattern is [`SPLIT_PATTERN`]; it is what the
//! saved `tokenizer.json` names, so Hugging Face `tokenizers` splits exactly as we do. Matching
//! it with a backtracking regex engine costs most of the encoding time in other tokenizers, so
//! [`split`] is a hand-written matcher of the same pattern: it tries the seven alternatives in
//! order at each position, like the regex, with Unicode classes from a precomputed table. The
//! test suite checks it piece for piece against the regex on the English and Chinese corpora
//! and on random Unicode strings.

use std::sync::OnceLock;

/// The GPT-4 split pattern (as in OpenAI's cl100k_base), in the syntax of Hugging Face
/// `tokenizers` (Oniguruma) and `fancy-regex`.
pub const SPLIT_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";

/// The class of a character, as the split pattern sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Class {
    /// `\p{L}`: general categories Lu, Ll, Lt, Lm, Lo.
    Letter = 0,
    /// `\p{N}`: Nd, Nl, No.
    Number = 1,
    /// `\s`: the Unicode White_Space property.
    Space = 2,
    /// Everything else (punctuation, symbols, marks, controls).
    Other = 3,
}

fn class_of_char(c: char) -> Class {
    use unicode_general_category::{GeneralCategory as G, get_general_category};
    if c.is_whitespace() {
        return Class::Space;
    }
    match get_general_category(c) {
        G::UppercaseLetter
        | G::LowercaseLetter
        | G::TitlecaseLetter
        | G::ModifierLetter
        | G::OtherLetter => Class::Letter,
        G::DecimalNumber | G::LetterNumber | G::OtherNumber => Class::Number,
        _ => Class::Other,
    }
}

/// Two-level lookup table over all code points: blocks of 256 classes, identical blocks shared.
struct ClassTable {
    block_of: Vec<u16>,
    blocks: Vec<[u8; 256]>,
}

fn table() -> &'static ClassTable {
    static TABLE: OnceLock<ClassTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut blocks: Vec<[u8; 256]> = Vec::new();
        let mut seen = rustc_hash::FxHashMap::default();
        let mut block_of = Vec::with_capacity(0x1100);
        for hi in 0..0x1100u32 {
            let mut block = [Class::Other as u8; 256];
            for (lo, slot) in block.iter_mut().enumerate() {
                if let Some(c) = char::from_u32(hi << 8 | lo as u32) {
                    *slot = class_of_char(c) as u8;
                }
            }
            let idx = *seen.entry(block).or_insert_with(|| {
                blocks.push(block);
                blocks.len() - 1
            });
            block_of.push(idx as u16);
        }
        ClassTable { block_of, blocks }
    })
}

const fn ascii_classes() -> [Class; 128] {
    let mut t = [Class::Other; 128];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        t[b] = if c.is_ascii_alphabetic() {
            Class::Letter
        } else if c.is_ascii_digit() {
            Class::Number
        } else if matches!(c, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ') {
            Class::Space
        } else {
            Class::Other
        };
        b += 1;
    }
    t
}
static ASCII: [Class; 128] = ascii_classes();

/// Decodes the character starting at `i` of valid UTF-8; returns (char, class, byte length).
#[inline(always)]
fn at(s: &[u8], i: usize) -> (u32, Class, usize) {
    let b0 = s[i];
    if b0 < 0x80 {
        return (b0 as u32, ASCII[b0 as usize], 1);
    }
    let (c, n) = if b0 < 0xE0 {
        (((b0 as u32 & 0x1F) << 6) | (s[i + 1] as u32 & 0x3F), 2)
    } else if b0 < 0xF0 {
        let c =
            ((b0 as u32 & 0x0F) << 12) | ((s[i + 1] as u32 & 0x3F) << 6) | (s[i + 2] as u32 & 0x3F);
        (c, 3)
    } else {
        let c = ((b0 as u32 & 0x07) << 18)
            | ((s[i + 1] as u32 & 0x3F) << 12)
            | ((s[i + 2] as u32 & 0x3F) << 6)
            | (s[i + 3] as u32 & 0x3F);
        (c, 4)
    };
    let t = table();
    let class = t.blocks[t.block_of[(c >> 8) as usize] as usize][(c & 0xFF) as usize];
    let class = match class {
        0 => Class::Letter,
        1 => Class::Number,
        2 => Class::Space,
        _ => Class::Other,
    };
    (c, class, n)
}

/// Class of the character starting at byte `i` of `s` (valid UTF-8, `i` on a boundary).
pub(crate) fn class_at(s: &[u8], i: usize) -> Class {
    at(s, i).1
}

/// Splits `text` with a regex engine running [`SPLIT_PATTERN`]: the slow reference that
/// [`split`] is tested against. An error only if the engine gives up (backtracking limit).
///
/// ```
/// use ember_tokenizer::pretokenizer::split_with_regex;
/// let text = "It's 2024!  Go";
/// assert_eq!(split_with_regex(text).unwrap(), ember_tokenizer::split(text).collect::<Vec<_>>());
/// ```
pub fn split_with_regex(text: &str) -> Result<Vec<&str>, String> {
    static RE: OnceLock<Result<fancy_regex::Regex, String>> = OnceLock::new();
    let re = RE
        .get_or_init(|| fancy_regex::Regex::new(SPLIT_PATTERN).map_err(|e| e.to_string()))
        .as_ref()?;
    re.find_iter(text)
        .map(|m| m.map(|m| m.as_str()).map_err(|e| e.to_string()))
        .collect()
}

/// Iterator over the pieces of a text; see [`split`].
pub struct Pieces<'a> {
    text: &'a str,
    pos: usize,
}

/// Splits `text` into pre-token pieces, exactly as [`SPLIT_PATTERN`] does.
///
/// ```
/// let pieces: Vec<&str> = ember_tokenizer::split("Hello world's  123456!!\n").collect();
/// assert_eq!(pieces, ["Hello", " world", "'s", " ", " ", "123", "456", "!!\n"]);
/// ```
pub fn split(text: &str) -> Pieces<'_> {
    Pieces { text, pos: 0 }
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        if self.pos >= self.text.len() {
            return None;
        }
        let end = piece_end(self.text.as_bytes(), self.pos);
        let piece = &self.text[self.pos..end];
        self.pos = end;
        Some(piece)
    }
}

#[inline(always)]
fn is_nl(c: u32) -> bool {
    c == '\r' as u32 || c == '\n' as u32
}

/// End of the run of `class` characters starting at `i`.
#[inline(always)]
fn run_end(s: &[u8], mut i: usize, class: Class) -> usize {
    while i < s.len() {
        let b = s[i];
        if b < 0x80 {
            if ASCII[b as usize] != class {
                break;
            }
            i += 1;
        } else {
            let (_, c, n) = at(s, i);
            if c != class {
                break;
            }
            i += n;
        }
    }
    i
}

/// Length of `(?i:[sdmt]|ll|ve|re)` at `i`, if it matches. Unicode simple case folding makes
/// `s` also match U+017F (long s); no other letter here has a non-ASCII fold.
fn contraction_len(s: &[u8], i: usize) -> Option<usize> {
    let lower = |j: usize| s.get(j).map(|b| b.to_ascii_lowercase());
    match lower(i)? {
        b's' | b'd' | b'm' | b't' => Some(1),
        b'l' if lower(i + 1) == Some(b'l') => Some(2),
        b'v' | b'r' if lower(i + 1) == Some(b'e') => Some(2),
        0xC5 if s.get(i + 1) == Some(&0xBF) => Some(2),
        _ => None,
    }
}

/// End (exclusive) of the piece that starts at byte `i`.
fn piece_end(s: &[u8], i: usize) -> usize {
    let (c, class, n) = at(s, i);
    // '(?i:[sdmt]|ll|ve|re)
    if c == '\'' as u32
        && let Some(len) = contraction_len(s, i + 1)
    {
        return i + 1 + len;
    }
    // [^\r\n\p{L}\p{N}]?+\p{L}+
    if class == Class::Letter {
        return run_end(s, i + n, Class::Letter);
    }
    if class != Class::Number && !is_nl(c) && i + n < s.len() && class_at(s, i + n) == Class::Letter
    {
        return run_end(s, i + n, Class::Letter);
    }
    // \p{N}{1,3}
    if class == Class::Number {
        let mut j = i + n;
        for _ in 0..2 {
            if j < s.len() {
                let (_, cl, m) = at(s, j);
                if cl == Class::Number {
                    j += m;
                    continue;
                }
            }
            break;
        }
        return j;
    }
    // ' ?[^\s\p{L}\p{N}]++[\r\n]*'
    let punct_start = if c == ' ' as u32 && i + 1 < s.len() && class_at(s, i + 1) == Class::Other {
        Some(i + 1)
    } else if class == Class::Other {
        Some(i)
    } else {
        None
    };
    if let Some(p) = punct_start {
        let mut j = run_end(s, p, Class::Other);
        while j < s.len() && (s[j] == b'\r' || s[j] == b'\n') {
            j += 1;
        }
        return j;
    }
    whitespace_end(s, i)
}

/// The three whitespace alternatives, at a whitespace character `i`.
fn whitespace_end(s: &[u8], i: usize) -> usize {
    let mut j = i;
    let mut last_nl_end = None;
    let mut last_char_start = i;
    let mut chars = 0usize;
    while j < s.len() {
        let (c, class, n) = at(s, j);
        if class != Class::Space {
            break;
        }
        if is_nl(c) {
            last_nl_end = Some(j + n);
        }
        last_char_start = j;
        chars += 1;
        j += n;
    }
    // \s*[\r\n]: greedy, so it ends after the last newline of the run.
    if let Some(end) = last_nl_end {
        return end;
    }
    // \s+(?!\S): the whole run at the end of the text, else all but its last character.
    if j == s.len() {
        return j;
    }
    if chars >= 2 {
        return last_char_start;
    }
    // \s+
    j
}
