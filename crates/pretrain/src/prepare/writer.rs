//! Token shards written as they fill: ids go to the open shard file in blocks, so memory is a
//! few megabytes whatever the shard size (a 100M-token shard used to be held whole: 400 MB).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use ember_formats::shards::{HEADER_LEN, Header, encode_ids};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::{PretrainError, Result};

/// Bytes of encoded ids gathered before they are written.
const BLOCK: usize = 4 << 20;

/// Collects ids into shard files `{split}-00000.bin`, ... of at most `max` tokens each.
pub(crate) struct ShardWriter {
    dir: PathBuf,
    split: &'static str,
    header: Header,
    max: usize,
    open: Option<Open>,
    block: Vec<u8>,
    /// `meta.json` entries of the finished shards.
    pub shards: Vec<serde_json::Value>,
    /// Tokens written so far.
    pub total: u64,
}

struct Open {
    path: PathBuf,
    file: std::fs::File,
    tokens: usize,
}

impl ShardWriter {
    pub(crate) fn new(dir: &Path, split: &'static str, header: Header, max: usize) -> Self {
        ShardWriter {
            dir: dir.to_path_buf(),
            split,
            header,
            max,
            open: None,
            block: Vec::with_capacity(BLOCK + 1024),
            shards: Vec::new(),
            total: 0,
        }
    }

    /// Appends ids, closing each shard when it holds `max` tokens.
    pub(crate) fn push(&mut self, ids: &[u32]) -> Result<()> {
        let mut rest = ids;
        while !rest.is_empty() {
            if self.open.is_none() {
                self.open = Some(self.start()?);
            }
            let Some(open) = self.open.as_mut() else {
                continue;
            };
            let room = self.max - open.tokens;
            let (now, later) = rest.split_at(room.min(rest.len()));
            encode_ids(now, self.header.width, &mut self.block);
            open.tokens += now.len();
            rest = later;
            let full = open.tokens == self.max;
            if self.block.len() >= BLOCK || full {
                self.write_block()?;
            }
            if full {
                self.close()?;
            }
        }
        Ok(())
    }

    /// Closes the last shard; returns the split's `meta.json` entry fields.
    pub(crate) fn finish(mut self) -> Result<(u64, Vec<serde_json::Value>)> {
        self.write_block()?;
        self.close()?;
        Ok((self.total, self.shards))
    }

    fn start(&self) -> Result<Open> {
        let name = format!("{}-{:05}.bin", self.split, self.shards.len());
        let path = self.dir.join(name);
        // Read as well as written: the digest is taken from the file once it is closed.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| PretrainError::io(&path, "create", e))?;
        // The header's token count is written when the shard closes.
        ember_files::write_all(&mut file, &self.header.to_bytes())
            .map_err(|e| PretrainError::io(&path, "write", e))?;
        Ok(Open {
            path,
            file,
            tokens: 0,
        })
    }

    fn write_block(&mut self) -> Result<()> {
        if let Some(open) = self.open.as_mut() {
            ember_files::write_all(&mut open.file, &self.block)
                .map_err(|e| PretrainError::io(&open.path, "write", e))?;
        }
        self.block.clear();
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        let Some(Open {
            path,
            mut file,
            tokens,
        }) = self.open.take()
        else {
            return Ok(());
        };
        let io = |action, e| PretrainError::io(&path, action, e);
        let mut header = self.header.clone();
        header.tokens = tokens as u64;
        file.seek(SeekFrom::Start(0)).map_err(|e| io("seek", e))?;
        ember_files::write_all(&mut file, &header.to_bytes()).map_err(|e| io("write", e))?;
        file.sync_all().map_err(|e| io("fsync", e))?;
        // The digest covers the final header, so it is taken from the file as written.
        file.seek(SeekFrom::Start(0)).map_err(|e| io("seek", e))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut read = 0usize;
        loop {
            let n = file.read(&mut buf).map_err(|e| io("read back", e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            read += n;
        }
        let want = HEADER_LEN + tokens * self.header.width as usize;
        if read != want {
            return Err(io(
                "read back",
                std::io::Error::other(format!("{read} bytes, expected {want}")),
            ));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.shards.push(
            json!({"file": name, "tokens": tokens, "sha256": ember_files::hex(&h.finalize())}),
        );
        self.total += tokens as u64;
        Ok(())
    }
}
