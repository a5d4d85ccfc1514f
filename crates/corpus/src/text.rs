//! Plain UTF-8 text: documents between separators, streamed in pieces cut at safe points.

use std::io::Read;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::{Docs, Format, Input, Sink};

/// Reads `input` into `docs`; returns the SHA-256 of the file and the U+FFFD replacements.
pub(crate) fn read<S: Sink>(
    input: &Input,
    format: &Format,
    docs: &mut Docs<'_, S>,
) -> Result<(String, u64)> {
    let sep = format
        .doc_separator
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(str::as_bytes);
    let finder = sep.map(memchr::memmem::Finder::new);
    let keep = sep.map_or(0, |s| s.len() - 1);
    let target = format.piece_bytes.max(1);
    let plain = input.compression == crate::Compression::None;
    let mut hash = Sha256::new();
    let (mut stream, raw) = input.open()?;
    let mut doc = DocText::default();
    let mut at = Position {
        offset: 0,
        line: 1,
        replaced: 0,
    };
    // `buf[start..]` is unread text; `buf[start..start + scanned]` holds no separator start.
    let (mut buf, mut start, mut scanned): (Vec<u8>, usize, usize) = (Vec::new(), 0, 0);
    let (mut eof, mut want, mut reported) = (false, target, 0u64);
    let mut block = vec![0u8; 1 << 16];
    let sep_len = sep.map_or(0, <[u8]>::len);
    loop {
        let view = &buf[start..];
        if let Some(i) = finder
            .as_ref()
            .and_then(|f| f.find(&view[scanned..]))
            .map(|i| scanned + i)
        {
            // A whole document ends here.
            doc.push(&view[..i], true, input, format, &mut at, docs)?;
            at.advance(&view[i..i + sep_len]);
            start += i + sep_len;
            (scanned, want) = (0, target);
        } else if !eof && view.len() < want {
            scanned = view.len().saturating_sub(keep);
            buf.drain(..start);
            start = 0;
            while !eof && buf.len() < want {
                let n = stream
                    .read(&mut block)
                    .map_err(|e| Error::io(&input.path, "read", e))?;
                eof = n == 0;
                buf.extend_from_slice(&block[..n]);
                if plain {
                    hash.update(&block[..n]);
                }
            }
            let now = raw.load(std::sync::atomic::Ordering::Relaxed);
            docs.progress(now - reported);
            reported = now;
        } else if eof {
            doc.push(view, true, input, format, &mut at, docs)?;
            break;
        } else {
            // No separator in `view`: one could still start in its last `keep` bytes.
            scanned = view.len().saturating_sub(keep);
            match ember_tokenizer::cut_point(&view[..scanned.min(want)]) {
                Some(p) if p > 0 => {
                    doc.push(&view[..p], false, input, format, &mut at, docs)?;
                    start += p;
                    scanned -= p;
                    want = target;
                }
                _ => want = view.len().saturating_mul(2).max(target),
            }
        }
        if docs.stopped {
            return Ok((String::new(), at.replaced));
        }
    }
    let sha = if plain {
        ember_files::hex(&hash.finalize())
    } else {
        crate::inputs::sha256_file(&input.path)?
    };
    Ok((sha, at.replaced))
}

/// Where in the (decompressed) text the next byte is, for error messages.
struct Position {
    offset: u64,
    line: u64,
    replaced: u64,
}

impl Position {
    fn advance(&mut self, bytes: &[u8]) {
        self.offset += bytes.len() as u64;
        self.line += memchr::memchr_iter(b'\n', bytes).count() as u64;
    }
}

/// The document being read: held back while it is only whitespace, since a document of only
/// whitespace is skipped and must not be numbered.
#[derive(Default)]
struct DocText {
    pending: String,
    started: bool,
}

impl DocText {
    /// Takes the next bytes of the document (`end`: they end it).
    fn push<S: Sink>(
        &mut self,
        bytes: &[u8],
        end: bool,
        input: &Input,
        format: &Format,
        at: &mut Position,
        docs: &mut Docs<'_, S>,
    ) -> Result<()> {
        let text = decode(bytes, input, format, at)?;
        at.advance(bytes);
        if !self.started {
            if text.trim().is_empty() {
                if end {
                    self.pending.clear();
                } else {
                    self.pending.push_str(&text);
                }
                return Ok(());
            }
            self.started = true;
            let mut first = std::mem::take(&mut self.pending);
            first.push_str(&text);
            docs.emit(&first, true, end);
        } else {
            docs.emit(&text, false, end);
        }
        if end {
            self.started = false;
        }
        Ok(())
    }
}

/// `bytes` as text: checked UTF-8, or (lossy) with each invalid sequence replaced by U+FFFD.
fn decode<'b>(
    bytes: &'b [u8],
    input: &Input,
    format: &Format,
    at: &mut Position,
) -> Result<std::borrow::Cow<'b, str>> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.into()),
        Err(_) if format.lossy => {
            at.replaced += bytes
                .utf8_chunks()
                .filter(|c| !c.invalid().is_empty())
                .count() as u64;
            Ok(String::from_utf8_lossy(bytes))
        }
        Err(e) => {
            let bad = e.valid_up_to();
            let hex: Vec<String> = bytes[bad..(bad + 4).min(bytes.len())]
                .iter()
                .map(|b| format!("0x{b:02x}"))
                .collect();
            Err(Error::NotUtf8 {
                path: input.path.clone(),
                line: at.line + memchr::memchr_iter(b'\n', &bytes[..bad]).count() as u64,
                offset: at.offset + bad as u64,
                bytes: hex.join(" "),
            })
        }
    }
}
