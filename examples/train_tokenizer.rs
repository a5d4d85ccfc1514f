//! Train a byte-level BPE tokenizer on the bundled Shakespeare, save it, load it back, and use it.
//!
//! `cargo test --workspace` runs it with the shared build; on its own (a separate feature set,
//! so a first run rebuilds Burn): cargo run -p ember-examples --example train_tokenizer

use std::path::Path;

use anyhow::Result;
use ember_tokenizer::{Tokenizer, TrainerConfig, USER, train};

fn run(out_dir: &Path) -> Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/tinyshakespeare.txt");
    let (tok, report) = train(&[corpus], &TrainerConfig::new(2048))?;
    println!(
        "learned {} merges from {} distinct pieces",
        report.merges, report.distinct_pieces
    );

    let path = out_dir.join("tokenizer.json");
    tok.save(&path, true)?;
    let tok = Tokenizer::load(&path)?; // the same file loads in Hugging Face `tokenizers`

    let text = "ROMEO: But soft, what light through yonder window breaks?";
    let ids = tok.encode(text);
    println!("{} bytes -> {} tokens: {ids:?}", text.len(), ids.len());
    assert_eq!(tok.decode(&ids)?, text);

    // A chat marker typed by a user stays text; a template asks for the special id.
    assert!(
        !tok.encode(USER)
            .contains(&tok.token_to_id(USER).unwrap_or(u32::MAX))
    );
    println!(
        "{USER} as text: {:?}, as special: {:?}",
        tok.encode(USER),
        tok.encode_with_specials(USER)
    );
    Ok(())
}

fn main() -> Result<()> {
    let dir = std::env::temp_dir().join("ember-example-tokenizer");
    std::fs::create_dir_all(&dir)?;
    run(&dir)
}

#[cfg(test)]
mod tests {
    #[test]
    fn example_runs() {
        let dir = std::env::temp_dir().join(format!(
            "ember-example-tokenizer-test-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let result = super::run(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        result.unwrap_or_else(|e| panic!("{e:#}"));
    }
}
