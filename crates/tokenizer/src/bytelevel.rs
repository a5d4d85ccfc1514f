//! Byte-level alphabet: the GPT-2 mapping between the 256 byte values and 256 printable
//! characters, used to spell byte tokens as strings in `tokenizer.json` (vocab and merges).
//!
//! Printable Latin-1 bytes map to themselves; the other 68 bytes (controls, space, a few
//! Latin-1 blanks) map in order to U+0100 and up, so `' '` is spelled `Ġ` and `'\n'` `Ċ`.

use std::sync::OnceLock;

struct Maps {
    to_char: [char; 256],
    to_byte: rustc_hash::FxHashMap<char, u8>,
}

fn maps() -> &'static Maps {
    static MAPS: OnceLock<Maps> = OnceLock::new();
    MAPS.get_or_init(|| {
        let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let mut to_char = ['\0'; 256];
        let mut next = 256u32;
        for b in 0..=255u8 {
            to_char[b as usize] = if printable(b) {
                char::from(b)
            } else {
                next += 1;
                char::from_u32(next - 1).unwrap_or('\0')
            };
        }
        let to_byte = to_char
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        Maps { to_char, to_byte }
    })
}

/// Spells raw bytes in the byte-level alphabet.
pub fn encode_bytes(bytes: &[u8]) -> String {
    let m = maps();
    bytes.iter().map(|&b| m.to_char[b as usize]).collect()
}

/// Reads a byte-level spelling back into bytes; `Err(c)` names the first character that is not
/// in the alphabet.
pub fn decode_str(s: &str) -> Result<Vec<u8>, char> {
    let m = maps();
    s.chars()
        .map(|c| m.to_byte.get(&c).copied().ok_or(c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_is_a_bijection_with_gpt2_spellings() {
        let all: Vec<u8> = (0..=255).collect();
        let s = encode_bytes(&all);
        assert_eq!(s.chars().count(), 256);
        assert_eq!(decode_str(&s), Ok(all));
        assert_eq!(encode_bytes(b" \n!"), "\u{120}\u{10a}!");
        assert_eq!(decode_str("a\u{3000}"), Err('\u{3000}'));
    }
}
