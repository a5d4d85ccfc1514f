//! Checks a parsed `tokenizer.json` field by field and builds a [`Tokenizer`] from it.
//! Every rejection names the JSON path of the field and quotes the bad value.

use rustc_hash::FxHashMap;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::pretokenizer::SPLIT_PATTERN;
use crate::serialization::{assemble, spelled_bytes};
use crate::tokenizer::Tokenizer;

struct Ctx<'a> {
    source: &'a str,
}

impl Ctx<'_> {
    fn err<T>(&self, field: impl Into<String>, reason: impl Into<String>) -> Result<T> {
        Err(Error::Format {
            source_name: self.source.to_string(),
            field: field.into(),
            reason: reason.into(),
        })
    }

    fn get<'v>(&self, obj: &'v Value, parent: &str, key: &str) -> Result<&'v Value> {
        match obj.get(key) {
            Some(v) => Ok(v),
            None => self.err(join(parent, key), "missing"),
        }
    }

    fn expect_str(&self, obj: &Value, parent: &str, key: &str, want: &str) -> Result<()> {
        let v = self.get(obj, parent, key)?;
        if v.as_str() != Some(want) {
            return self.err(
                join(parent, key),
                format!("is {}, expected \"{want}\"", short(v)),
            );
        }
        Ok(())
    }

    /// A key that may be absent, but when present must be one of the given values.
    fn expect_optional(
        &self,
        obj: &Value,
        parent: &str,
        key: &str,
        allowed: &[Value],
    ) -> Result<()> {
        match obj.get(key) {
            None => Ok(()),
            Some(v) if allowed.contains(v) => Ok(()),
            Some(v) => {
                let want: Vec<String> = allowed.iter().map(short).collect();
                self.err(
                    join(parent, key),
                    format!("is {}, Ember supports only {}", short(v), want.join(" or ")),
                )
            }
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// A value quoted for an error message, cut to a readable length.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

pub(crate) fn tokenizer_from_value(doc: &Value, source: &str) -> Result<Tokenizer> {
    let cx = Ctx { source };
    if !doc.is_object() {
        return cx.err(
            "(top level)",
            format!("is {}, expected a JSON object", short(doc)),
        );
    }
    cx.expect_str(doc, "", "version", "1.0")?;
    for key in ["truncation", "padding", "normalizer", "post_processor"] {
        if let Some(v) = doc.get(key)
            && !v.is_null()
        {
            return cx.err(
                key,
                format!("is {}, Ember supports only null here", short(v)),
            );
        }
    }
    check_pre_tokenizer(&cx, cx.get(doc, "", "pre_tokenizer")?)?;
    let decoder = cx.get(doc, "", "decoder")?;
    cx.expect_str(decoder, "decoder", "type", "ByteLevel")?;
    let model = cx.get(doc, "", "model")?;
    cx.expect_str(model, "model", "type", "BPE")?;
    for (key, allowed) in [
        ("dropout", vec![Value::Null]),
        ("unk_token", vec![Value::Null]),
        (
            "continuing_subword_prefix",
            vec![Value::Null, Value::from("")],
        ),
        ("end_of_word_suffix", vec![Value::Null, Value::from("")]),
        ("byte_fallback", vec![Value::Bool(false)]),
        ("fuse_unk", vec![Value::Bool(false), Value::Bool(true)]),
    ] {
        cx.expect_optional(model, "model", key, &allowed)?;
    }
    let ignore_merges = match model.get("ignore_merges") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return cx.err(
                "model.ignore_merges",
                format!("is {}, expected true or false", short(v)),
            );
        }
    };
    let (mut tokens, by_spelling) = read_vocab(&cx, cx.get(model, "model", "vocab")?)?;
    let specials = read_added_tokens(&cx, doc.get("added_tokens"), &mut tokens, &by_spelling)?;
    if let Some(id) = tokens.iter().position(|t| t.is_none()) {
        return cx.err(
            "model.vocab",
            format!(
                "ids must run from 0 to {} without gaps; id {id} is unused",
                tokens.len() - 1
            ),
        );
    }
    let merges = read_merges(&cx, cx.get(model, "model", "merges")?, &by_spelling)?;
    let tokens: Vec<Option<Box<[u8]>>> = tokens
        .into_iter()
        .map(|t| t.and_then(|t| t.bytes))
        .collect();
    Ok(assemble(tokens, &merges, specials, ignore_merges))
}

fn check_pre_tokenizer(cx: &Ctx, pt: &Value) -> Result<()> {
    let f = "pre_tokenizer";
    cx.expect_str(pt, f, "type", "Sequence")?;
    let list = cx.get(pt, f, "pretokenizers")?;
    let Some([split, bytelevel]) = list.as_array().map(|v| v.as_slice()) else {
        return cx.err(
            "pre_tokenizer.pretokenizers",
            format!("is {}, expected [Split, ByteLevel]", short(list)),
        );
    };
    let f = "pre_tokenizer.pretokenizers[0]";
    cx.expect_str(split, f, "type", "Split")?;
    let pattern = cx.get(split, f, "pattern")?;
    if pattern.get("Regex").and_then(Value::as_str) != Some(SPLIT_PATTERN) {
        return cx.err(
            format!("{f}.pattern"),
            format!("is {}, Ember supports only the GPT-4 split pattern {{\"Regex\": {SPLIT_PATTERN:?}}}", short(pattern)),
        );
    }
    cx.expect_str(split, f, "behavior", "Isolated")?;
    cx.expect_optional(split, f, "invert", &[Value::Bool(false)])?;
    let f = "pre_tokenizer.pretokenizers[1]";
    cx.expect_str(bytelevel, f, "type", "ByteLevel")?;
    cx.expect_optional(bytelevel, f, "add_prefix_space", &[Value::Bool(false)])?;
    cx.expect_optional(bytelevel, f, "use_regex", &[Value::Bool(false)])?;
    Ok(())
}

/// One id slot while reading: the token's bytes (`None` for a special token) and its name.
struct Slot {
    bytes: Option<Box<[u8]>>,
    name: String,
}

type Vocab = (Vec<Option<Slot>>, FxHashMap<String, u32>);

/// Largest id accepted; far above any real vocabulary, small enough to allocate a table for.
const MAX_ID: u64 = 1 << 24;

fn read_vocab(cx: &Ctx, vocab: &Value) -> Result<Vocab> {
    let Some(map) = vocab.as_object() else {
        return cx.err(
            "model.vocab",
            format!("is {}, expected an object of token → id", short(vocab)),
        );
    };
    let mut tokens: Vec<Option<Slot>> = Vec::new();
    let mut by_spelling = FxHashMap::default();
    let mut byte_seen = [false; 256];
    for (spelling, idv) in map {
        let field = format!("model.vocab[{spelling:?}]");
        let id = match idv.as_u64() {
            Some(id) if id < MAX_ID => id as usize,
            _ => {
                return cx.err(
                    field,
                    format!("id {} is not an integer in 0..{MAX_ID}", short(idv)),
                );
            }
        };
        let bytes = match spelled_bytes(spelling) {
            Ok(b) if !b.is_empty() => b,
            Ok(_) => return cx.err(field, "empty token"),
            Err(c) => {
                return cx.err(
                    field,
                    format!(
                        "character {c:?} (U+{:04X}) is not in the byte-level alphabet",
                        c as u32
                    ),
                );
            }
        };
        if bytes.len() == 1 {
            byte_seen[bytes[0] as usize] = true;
        }
        if tokens.len() <= id {
            tokens.resize_with(id + 1, || None);
        }
        if let Some(other) = &tokens[id] {
            return cx.err(field, format!("id {id} is also used by {:?}", other.name));
        }
        tokens[id] = Some(Slot {
            bytes: Some(bytes.into_boxed_slice()),
            name: spelling.clone(),
        });
        by_spelling.insert(spelling.clone(), id as u32);
    }
    if let Some(b) = byte_seen.iter().position(|&s| !s) {
        let spelling = crate::bytelevel::encode_bytes(&[b as u8]);
        return cx.err("model.vocab", format!("missing the byte token {spelling:?} for byte 0x{b:02X}; a byte-level BPE needs all 256"));
    }
    Ok((tokens, by_spelling))
}

fn read_added_tokens(
    cx: &Ctx,
    added: Option<&Value>,
    tokens: &mut Vec<Option<Slot>>,
    by_spelling: &FxHashMap<String, u32>,
) -> Result<Vec<(String, u32)>> {
    let list = match added {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(v) => {
            return cx.err(
                "added_tokens",
                format!("is {}, expected an array", short(v)),
            );
        }
    };
    let mut specials = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let f = format!("added_tokens[{i}]");
        let id = match t.get("id").and_then(Value::as_u64) {
            Some(id) if id < MAX_ID => id as usize,
            _ => {
                return cx.err(
                    format!("{f}.id"),
                    format!(
                        "is {}, expected an integer id",
                        short(t.get("id").unwrap_or(&Value::Null))
                    ),
                );
            }
        };
        let content = match t.get("content").and_then(Value::as_str) {
            Some(c) if !c.is_empty() => c.to_string(),
            _ => return cx.err(format!("{f}.content"), "missing or empty"),
        };
        for key in ["single_word", "lstrip", "rstrip", "normalized"] {
            cx.expect_optional(t, &f, key, &[Value::Bool(false)])?;
        }
        cx.expect_optional(t, &f, "special", &[Value::Bool(true)])?;
        if tokens.len() <= id {
            tokens.resize_with(id + 1, || None);
        }
        if let Some(other) = &tokens[id] {
            return cx.err(
                format!("{f}.id"),
                format!("id {id} of {content:?} is also used by {:?}", other.name),
            );
        }
        if by_spelling.contains_key(&crate::bytelevel::encode_bytes(content.as_bytes())) {
            return cx.err(
                format!("{f}.content"),
                format!("{content:?} is also an ordinary token in model.vocab"),
            );
        }
        tokens[id] = Some(Slot {
            bytes: None,
            name: content.clone(),
        });
        specials.push((content, id as u32));
    }
    Ok(specials)
}

fn read_merges(
    cx: &Ctx,
    merges: &Value,
    by_spelling: &FxHashMap<String, u32>,
) -> Result<Vec<(u32, u32)>> {
    let Some(list) = merges.as_array() else {
        return cx.err(
            "model.merges",
            format!("is {}, expected an array", short(merges)),
        );
    };
    let mut out = Vec::with_capacity(list.len());
    let mut seen = FxHashMap::default();
    for (i, m) in list.iter().enumerate() {
        let f = format!("model.merges[{i}]");
        // Two spellings exist: ["a", "b"] (current) and "a b" (older files).
        let (a, b) = match m {
            Value::Array(p) if p.len() == 2 => match (p[0].as_str(), p[1].as_str()) {
                (Some(a), Some(b)) => (a.to_string(), b.to_string()),
                _ => return cx.err(f, format!("is {}, expected two strings", short(m))),
            },
            Value::String(s) => match s.split_once(' ') {
                Some((a, b)) if !b.contains(' ') => (a.to_string(), b.to_string()),
                _ => return cx.err(f, format!("is {}, expected \"left right\"", short(m))),
            },
            _ => {
                return cx.err(
                    f,
                    format!("is {}, expected [\"left\", \"right\"]", short(m)),
                );
            }
        };
        let id_of = |s: &str| by_spelling.get(s).copied();
        let (Some(ia), Some(ib)) = (id_of(&a), id_of(&b)) else {
            let missing = if id_of(&a).is_none() { &a } else { &b };
            return cx.err(f, format!("names {missing:?}, which is not in model.vocab"));
        };
        if id_of(&format!("{a}{b}")).is_none() {
            return cx.err(
                f,
                format!(
                    "merges {a:?} and {b:?} into {:?}, which is not in model.vocab",
                    format!("{a}{b}")
                ),
            );
        }
        if let Some(first) = seen.insert((ia, ib), i) {
            return cx.err(
                f,
                format!("repeats the merge of {a:?} and {b:?} from model.merges[{first}]"),
            );
        }
        out.push((ia, ib));
    }
    Ok(out)
}
