//! Checkpoints: one self-contained, versioned directory.
//!
//! ```text
//! DIR/model.safetensors   weights (burn-store SafeTensors, GPT-2 key names)
//! DIR/config.json         {"format": "ember-gpt-config", "version": 1, "model": {..GptConfig..}}
//! DIR/tokenizer.json      the tokenizer the model was trained with
//! DIR/manifest.json       written last: format, version, and each file's size and SHA-256
//! ```
//!
//! A save writes everything into a temporary sibling directory, fsyncs it, and renames it into
//! place, so a crash mid-save leaves the previous checkpoint intact. Loading checks the
//! manifest first: a missing, truncated or altered file is reported by name before any of it
//! is parsed.

use std::path::Path;

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::FloatDType;
use ember_tokenizer::Tokenizer;
use serde_json::{Value, json};

use crate::config::GptConfig;
use crate::error::{ModelError, Result};
use crate::gpt::Gpt;

/// Format name in `manifest.json`.
pub const MANIFEST_FORMAT: &str = "ember-checkpoint";
/// Format name in `config.json`.
pub const CONFIG_FORMAT: &str = "ember-gpt-config";
/// Version of both formats this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// The model's shape.
    pub config: GptConfig,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// The weights, on the device given to [`load`].
    pub model: Gpt,
}

/// The `config.json` text for a model config.
pub fn config_json(config: &GptConfig) -> String {
    let doc = json!({"format": CONFIG_FORMAT, "version": FORMAT_VERSION, "model": config});
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

/// The weights as SafeTensors bytes, deterministic: the same weights give the same bytes.
/// (Burn writes its metadata from a hash map, whose key order changes from run to run, so the
/// tensors are re-serialised here with a single metadata entry.)
pub fn weights_bytes(model: &Gpt) -> Result<Vec<u8>> {
    let err = |e: String| {
        ModelError::checkpoint("model.safetensors", format!("serialising weights: {e}"))
    };
    let mut store = SafetensorsStore::from_bytes(None);
    model
        .save_into(&mut store)
        .map_err(|e| err(e.to_string()))?;
    let raw = store.get_bytes().map_err(|e| err(e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&raw).map_err(|e| err(e.to_string()))?;
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(st.tensors(), Some(meta)).map_err(|e| err(e.to_string()))
}

/// Saves a checkpoint to `dir` atomically, replacing an existing one. `extra` files (name,
/// bytes) go in the same directory and manifest (training state, for example).
pub fn save(
    dir: &Path,
    model: &Gpt,
    config: &GptConfig,
    tokenizer: &Tokenizer,
    extra: &[(String, Vec<u8>)],
) -> Result<()> {
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("model.safetensors".into(), weights_bytes(model)?),
        ("config.json".into(), config_json(config).into_bytes()),
        ("tokenizer.json".into(), tokenizer.to_json().into_bytes()),
    ];
    files.extend(extra.iter().cloned());
    let entries: serde_json::Map<String, Value> = files
        .iter()
        .map(|(name, bytes)| {
            (
                name.clone(),
                json!({"size": bytes.len(), "sha256": ember_files::sha256_hex(bytes)}),
            )
        })
        .collect();
    let manifest = json!({"format": MANIFEST_FORMAT, "version": FORMAT_VERSION, "files": entries});
    files.push((
        "manifest.json".into(),
        (serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n").into_bytes(),
    ));
    Ok(ember_files::write_dir_atomic(dir, &files)?)
}

/// The files of a checkpoint whose manifest checked out, by name.
#[derive(Debug)]
pub struct VerifiedFiles(Vec<(String, Vec<u8>)>);

impl VerifiedFiles {
    /// Bytes of file `name` (empty if not listed; [`verify`] ensures the required ones are).
    pub fn get(&self, name: &str) -> &[u8] {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
            .unwrap_or_default()
    }

    /// The model config in `config.json`; `dir` names the file in errors.
    pub fn config(&self, dir: &Path) -> Result<GptConfig> {
        parse_config(self.get("config.json"), &dir.join("config.json"))
    }
}

/// Checks `manifest.json` and every file it lists (presence, size, SHA-256); returns the
/// bytes of each listed file by name.
pub fn verify(dir: &Path) -> Result<VerifiedFiles> {
    if !dir.is_dir() {
        return Err(ModelError::checkpoint(
            dir,
            "not a directory (a checkpoint is a directory with manifest.json)",
        ));
    }
    let mpath = dir.join("manifest.json");
    let text = std::fs::read_to_string(&mpath).map_err(|e| {
        ModelError::checkpoint(
            &mpath,
            format!("cannot read ({e}); an interrupted save or not an Ember checkpoint"),
        )
    })?;
    let manifest: Value = serde_json::from_str(&text)
        .map_err(|e| ModelError::checkpoint(&mpath, format!("damaged JSON: {e}")))?;
    check_format(&manifest, MANIFEST_FORMAT, &mpath)?;
    let Some(files) = manifest.get("files").and_then(Value::as_object) else {
        return Err(ModelError::checkpoint(
            &mpath,
            "field `files` is missing or not an object",
        ));
    };
    let mut out = Vec::new();
    for (name, entry) in files {
        if name.contains('/') || name.contains('\\') || name.starts_with('.') {
            return Err(ModelError::checkpoint(
                &mpath,
                format!("file name {name:?} is not a plain file name"),
            ));
        }
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| {
            ModelError::checkpoint(
                &path,
                format!("listed in manifest.json but cannot be read: {e}"),
            )
        })?;
        let size = entry.get("size").and_then(Value::as_u64);
        if size != Some(bytes.len() as u64) {
            return Err(ModelError::checkpoint(
                &path,
                format!(
                    "size is {} bytes, manifest.json says {} (truncated or replaced?)",
                    bytes.len(),
                    short(entry.get("size"))
                ),
            ));
        }
        let want = entry.get("sha256").and_then(Value::as_str).unwrap_or("");
        let got = ember_files::sha256_hex(&bytes);
        if got != want {
            return Err(ModelError::checkpoint(
                &path,
                format!("SHA-256 is {got}, manifest.json says {want:?}: the file is damaged"),
            ));
        }
        out.push((name.clone(), bytes));
    }
    for needed in ["model.safetensors", "config.json", "tokenizer.json"] {
        if !out.iter().any(|(n, _)| n == needed) {
            return Err(ModelError::checkpoint(
                &mpath,
                format!("does not list {needed}"),
            ));
        }
    }
    Ok(VerifiedFiles(out))
}

fn short(v: Option<&Value>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "nothing".into())
}

fn check_format(doc: &Value, format: &str, path: &Path) -> Result<()> {
    let f = doc.get("format").and_then(Value::as_str);
    if f != Some(format) {
        return Err(ModelError::checkpoint(
            path,
            format!(
                "format is {}, expected \"{format}\"",
                short(doc.get("format"))
            ),
        ));
    }
    let v = doc.get("version").and_then(Value::as_u64);
    if v != Some(FORMAT_VERSION) {
        return Err(ModelError::checkpoint(
            path,
            format!(
                "format version {} is not supported; this build of Ember reads version {FORMAT_VERSION}",
                short(doc.get("version"))
            ),
        ));
    }
    Ok(())
}

/// Reads the model config from `config.json` text.
pub fn parse_config(text: &[u8], path: &Path) -> Result<GptConfig> {
    let doc: Value = serde_json::from_slice(text)
        .map_err(|e| ModelError::checkpoint(path, format!("damaged JSON: {e}")))?;
    check_format(&doc, CONFIG_FORMAT, path)?;
    let mut model = doc.get("model").cloned().unwrap_or(Value::Null);
    let known = serde_json::to_value(GptConfig::new(1, 1, 1, 1, 1)).unwrap_or(Value::Null);
    if let (Some(m), Some(k)) = (model.as_object_mut(), known.as_object()) {
        if let Some(extra) = m.keys().find(|key| !k.contains_key(*key)) {
            return Err(ModelError::checkpoint(
                path,
                format!("unknown field model.{extra}"),
            ));
        }
        // Options added after a checkpoint was written take their defaults (the architecture
        // the checkpoint was trained with); the shape fields stay required.
        const SHAPE: [&str; 5] = ["vocab_size", "n_layer", "n_head", "n_embd", "block_size"];
        for (key, default) in k {
            if !SHAPE.contains(&key.as_str()) && !m.contains_key(key) {
                m.insert(key.clone(), default.clone());
            }
        }
    }
    let config: GptConfig = serde_json::from_value(model)
        .map_err(|e| ModelError::checkpoint(path, format!("field `model`: {e}")))?;
    config
        .validate()
        .map_err(|e| ModelError::checkpoint(path, e.to_string()))?;
    Ok(config)
}

/// Casts every float parameter of `model` to `dtype`.
pub fn cast_params(model: Gpt, dtype: FloatDType) -> Gpt {
    struct Cast(FloatDType);
    impl burn::module::ModuleMapper for Cast {
        fn map_float<const D: usize>(
            &mut self,
            param: burn::module::Param<Tensor<D>>,
        ) -> burn::module::Param<Tensor<D>> {
            let (id, t, mapper) = param.consume();
            burn::module::Param::from_mapped_value(id, t.cast(self.0), mapper)
        }
    }
    model.map(&mut Cast(dtype))
}

/// Loads and verifies a checkpoint, putting the weights on `device`.
pub fn load(dir: &Path, device: &Device) -> Result<Checkpoint> {
    let files = verify(dir)?;
    let get = |name: &str| files.get(name);
    let config = files.config(dir)?;
    let tpath = dir.join("tokenizer.json");
    let tokenizer = Tokenizer::from_json(
        &String::from_utf8_lossy(get("tokenizer.json")),
        &tpath.display().to_string(),
    )?;
    if config.vocab_size < tokenizer.vocab_size() {
        return Err(ModelError::checkpoint(
            dir,
            format!(
                "config.json has vocab_size {} but tokenizer.json has {} ids",
                config.vocab_size,
                tokenizer.vocab_size()
            ),
        ));
    }
    let mut model = config.init(device);
    let mut store = SafetensorsStore::from_bytes(Some(get("model.safetensors").to_vec()));
    let wpath = dir.join("model.safetensors");
    let result = model
        .load_from(&mut store)
        .map_err(|e| ModelError::checkpoint(&wpath, format!("does not match config.json: {e}")))?;
    if !result.errors.is_empty() || !result.missing.is_empty() || !result.unused.is_empty() {
        return Err(ModelError::checkpoint(
            &wpath,
            format!(
                "does not match config.json: errors {:?}, missing {:?}, unexpected {:?}",
                result.errors, result.missing, result.unused
            ),
        ));
    }
    // Weights are stored in f32; a device configured for another float type (`--dtype bf16`)
    // gets them cast, so the whole forward pass runs in that type.
    let dtype = device.settings().float_dtype;
    if dtype != FloatDType::F32 {
        model = cast_params(model, dtype);
    }
    Ok(Checkpoint {
        config,
        tokenizer,
        model,
    })
}
