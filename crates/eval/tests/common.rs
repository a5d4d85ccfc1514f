//! A tiny checkpoint on disk and eval-set fixtures.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use ember_model::{GptConfig, checkpoint};
use ember_tokenizer::{Tokenizer, TrainerConfig, train_from_texts};

pub const TEXT: &str = "The cat sat on the mat. The dog sat on the log. A bird sang in the tree.\n\
    Who should Derek hug after shocking Richard? The man is sitting on a roof.\n";

pub fn tokenizer() -> Tokenizer {
    let mut cfg = TrainerConfig::new(300);
    cfg.progress = false;
    train_from_texts(&[TEXT.repeat(3)], &cfg).unwrap().0
}

/// Saves a randomly initialised tiny model (fixed seed) and returns its directory.
pub fn checkpoint(dir: &Path) -> PathBuf {
    let tok = tokenizer();
    let device = Device::flex();
    let cfg = GptConfig::new(tok.vocab_size(), 2, 2, 32, 48);
    // Drawn at once under the seed's lock: other tests of the binary use the generator too.
    let model = ember_model::with_seed(&device, 7, || cfg.init(&device).drawn());
    let ck = dir.join("ck");
    checkpoint::save(&ck, &model, &cfg, &tok, &[]).unwrap();
    ck
}

/// Writes eval-set fixtures (a few items each, one malformed line in HellaSwag) into `dir`.
pub fn eval_sets(dir: &Path) {
    let hs = [
        r#"{"ind":0,"context":"Roofing: A man is sitting on a roof. he","endings":["is using wrap.","is ripping tiles off.","holds a cube.","starts pulling up roofing on a roof."],"label":3}"#,
        r#"{"ind":1,"context":"Cats: The cat","endings":["sat on the mat.","sang in the tree."],"label":0}"#,
        r#"{"ind":2,"context":"broken","endings":["only one"],"label":0}"#,
        r#"{"ind":3,"context":"Dogs: The dog sat on the","endings":["log.","tree.","mat."],"label":"0"}"#,
    ];
    std::fs::write(dir.join("hellaswag_val.jsonl"), hs.join("\n") + "\n").unwrap();
    let arc = r#"{"id":"a","question":"Where did the cat sit?","choices":["on the mat","in the tree"],"label":0}"#;
    std::fs::write(dir.join("arc_easy_test.jsonl"), format!("{arc}\n")).unwrap();
    let mut blimp = String::new();
    for (uid, good, bad) in [
        ("p1", "The cat sat on the mat.", "The cat sat the on mat."),
        ("p1", "The dog sat on the log.", "Dog the sat on the log."),
        ("p2", "A bird sang in the tree.", "A bird sang tree in the."),
    ] {
        blimp.push_str(&format!(
            "{{\"UID\":\"{uid}\",\"pairID\":\"0\",\"sentence_good\":\"{good}\",\"sentence_bad\":\"{bad}\"}}\n"
        ));
    }
    std::fs::write(dir.join("blimp_200per.jsonl"), blimp).unwrap();
    std::fs::write(
        dir.join("gsm8k_test.jsonl"),
        "{\"question\":\"What is 2 + 3?\",\"answer\":\"2 + 3 = 5\\n#### 5\"}\n",
    )
    .unwrap();
}
