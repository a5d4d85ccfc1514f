//! Record-shaped corpora: JSONL with a text field and Parquet with a text column, one document
//! per record.

use std::io::BufRead;
use std::sync::atomic::Ordering;

use parquet::basic::Type as PhysicalType;
use parquet::column::reader::ColumnReader;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use crate::error::{Error, Result};
use crate::inputs::sha256_file;
use crate::{Docs, Format, Input, Sink};

/// Reads a JSONL input; returns the SHA-256 of the file.
pub(crate) fn read_jsonl<S: Sink>(
    input: &Input,
    format: &Format,
    docs: &mut Docs<'_, S>,
) -> Result<String> {
    let (stream, raw) = input.open()?;
    let mut lines = std::io::BufReader::with_capacity(1 << 20, stream);
    let mut line = Vec::new();
    let (mut number, mut reported) = (0u64, 0u64);
    let field = format.text_field.as_str();
    loop {
        line.clear();
        let n = lines
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io(&input.path, "read", e))?;
        if n == 0 {
            break;
        }
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let bad = |reason: String| Error::Record {
            path: input.path.clone(),
            line: number,
            reason,
        };
        let mut de = serde_json::Deserializer::from_slice(&line);
        let value = TextField(field)
            .deserialize(&mut de)
            .and_then(|v| de.end().map(|()| v))
            .map_err(|e| bad(format!("not a JSON object: {e}")))?;
        let text = match value {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => {
                return Err(bad(format!(
                    "field \"{field}\" is {}, expected a string (pass --text-field to read another field)",
                    kind_of(&other)
                )));
            }
            None => {
                let keys =
                    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&line)
                        .map(|m| m.keys().cloned().collect::<Vec<_>>().join(", "))
                        .unwrap_or_default();
                return Err(bad(format!(
                    "no field \"{field}\" (it has: {keys}); pass --text-field to name the text field"
                )));
            }
        };
        if !docs.whole(&text, format.piece_bytes) {
            return Ok(String::new());
        }
        let now = raw.load(Ordering::Relaxed);
        if now - reported >= 1 << 20 {
            docs.progress(now - reported);
            reported = now;
        }
    }
    docs.progress(raw.load(Ordering::Relaxed) - reported);
    sha256_file(&input.path)
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Deserializes a JSON object keeping only the value of one field (the others are skipped
/// without being built).
struct TextField<'f>(&'f str);

impl<'de> DeserializeSeed<'de> for TextField<'_> {
    type Value = Option<serde_json::Value>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TextField<'_> {
    type Value = Option<serde_json::Value>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "an object with a \"{}\" field", self.0)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if found.is_none() && key == self.0 {
                found = Some(map.next_value::<serde_json::Value>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Reads the text column of a Parquet input; returns the SHA-256 of the file.
pub(crate) fn read_parquet<S: Sink>(
    input: &Input,
    format: &Format,
    docs: &mut Docs<'_, S>,
) -> Result<String> {
    let bad = |reason: String| Error::Parquet {
        path: input.path.clone(),
        reason,
    };
    let file = std::fs::File::open(&input.path).map_err(|e| Error::io(&input.path, "open", e))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| bad(format!("not a readable Parquet file: {e}")))?;
    let meta = reader.metadata();
    let schema = meta.file_metadata().schema_descr();
    let name = format.text_column.as_str();
    let Some(idx) = schema
        .columns()
        .iter()
        .position(|c| c.path().string() == name)
    else {
        let names: Vec<String> = schema.columns().iter().map(|c| c.path().string()).collect();
        return Err(bad(format!(
            "no column \"{name}\" (it has: {}); pass --text-column to name the text column",
            names.join(", ")
        )));
    };
    let col = schema.column(idx);
    if col.physical_type() != PhysicalType::BYTE_ARRAY {
        return Err(bad(format!(
            "column \"{name}\" holds {}, expected strings (BYTE_ARRAY)",
            col.physical_type()
        )));
    }
    if col.max_rep_level() > 0 {
        return Err(bad(format!(
            "column \"{name}\" is a list, expected one string per row"
        )));
    }
    let nullable = col.max_def_level() > 0;
    let (mut values, mut defs) = (Vec::new(), Vec::new());
    let mut row = 0u64;
    for g in 0..meta.num_row_groups() {
        let group = reader
            .get_row_group(g)
            .map_err(|e| bad(format!("row group {g}: {e}")))?;
        let ColumnReader::ByteArrayColumnReader(mut column) = group
            .get_column_reader(idx)
            .map_err(|e| bad(format!("row group {g}: {e}")))?
        else {
            return Err(bad(format!("column \"{name}\" is not a string column")));
        };
        loop {
            values.clear();
            defs.clear();
            let (rows, read, _) = column
                .read_records(1024, nullable.then_some(&mut defs), None, &mut values)
                .map_err(|e| bad(format!("row group {g}, after row {row}: {e}")))?;
            if rows == 0 {
                break;
            }
            if read < rows {
                let at = defs
                    .iter()
                    .position(|&d| d < col.max_def_level())
                    .unwrap_or(0);
                return Err(bad(format!(
                    "row {}: column \"{name}\" is null, expected text",
                    row + at as u64
                )));
            }
            for (i, v) in values.iter().enumerate() {
                let text = std::str::from_utf8(v.data()).map_err(|e| {
                    bad(format!(
                        "row {}: column \"{name}\" is not UTF-8 ({e})",
                        row + i as u64
                    ))
                })?;
                if !docs.whole(text, format.piece_bytes) {
                    return Ok(String::new());
                }
            }
            row += rows as u64;
        }
        docs.progress(u64::try_from(meta.row_group(g).compressed_size()).unwrap_or(0));
    }
    sha256_file(&input.path)
}
