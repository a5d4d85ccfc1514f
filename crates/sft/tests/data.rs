//! Every invalid-data case is reported as file:line: reason; --skip-invalid counts them.

use ember_formats::dialogue::{InvalidPolicy, load, parse_line};

fn err(line: &str) -> String {
    parse_line(line).unwrap_err()
}

#[test]
fn valid_formats_parse() {
    let m = parse_line(r#"{"messages":[{"role":"system","content":"Be kind."},{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"},{"role":"assistant","content":"d"}],"id":7}"#).unwrap();
    assert_eq!(m.len(), 5);
    let p = parse_line(r#"{"prompt":"2+2?","completion":"4"}"#).unwrap();
    assert_eq!(
        (p[0].content.as_str(), p[1].content.as_str()),
        ("2+2?", "4")
    );
}

#[test]
fn each_invalid_case_names_its_reason() {
    assert!(err("{not json").contains("not valid JSON"));
    assert!(err("[1,2]").contains("expected a JSON object, found an array"));
    assert!(err(r#"{"messages":"hi"}"#).contains("`messages` must be an array, found a string"));
    assert!(err(r#"{"messages":[]}"#).contains("`messages` is empty"));
    assert!(err(r#"{"messages":[{"content":"x"}]}"#).contains("messages[0] has no `role`"));
    assert!(err(r#"{"messages":[{"role":"user"}]}"#).contains("messages[0] has no `content`"));
    assert!(
        err(r#"{"messages":[{"role":"user","content":5}]}"#)
            .contains("messages[0].content` must be a string, found a number")
    );
    assert!(
        err(r#"{"messages":[{"role":"bot","content":"x"}]}"#)
            .contains(r#"role "bot" is not one of"#)
    );
    assert!(
        err(r#"{"messages":[{"role":"user","content":"  "}]}"#)
            .contains("messages[0].content` is empty")
    );
    assert!(err(r#"{"messages":[{"role":"user","content":"a"}]}"#).contains("no assistant turn"));
    assert!(
        err(r#"{"messages":[{"role":"assistant","content":"a"}]}"#)
            .contains("starting with the user")
    );
    assert!(err(r#"{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"assistant","content":"c"}]}"#).contains("messages[1]"));
    assert!(
        err(r#"{"messages":[{"role":"user","content":"a"},{"role":"system","content":"b"}]}"#)
            .contains("only the first message")
    );
    assert!(err(r#"{"prompt":"a"}"#).contains("no `completion`"));
    assert!(err(r#"{"text":"a"}"#).contains("neither"));
}

#[test]
fn files_report_file_and_line_or_skip_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("chat.jsonl");
    let good = r#"{"prompt":"hi","completion":"hello"}"#;
    std::fs::write(&p, format!("{good}\n\n{good}\n{{\"messages\":[{{\"role\":\"robot\",\"content\":\"x\"}}]}}\n{good}\n")).unwrap();
    let e = load(&p, InvalidPolicy::Stop).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:4: ", p.display())) && e.contains("robot"),
        "{e}"
    );
    let l = load(&p, InvalidPolicy::Skip).unwrap();
    assert_eq!(l.conversations.len(), 3);
    assert_eq!(
        l.conversations.iter().map(|c| c.line).collect::<Vec<_>>(),
        vec![1, 3, 5]
    );
    assert_eq!(l.skipped.len(), 1);
    assert!(l.skipped[0].contains(":4:"));
}

#[test]
fn the_shared_english_sets_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/sft");
    if !dir.is_dir() {
        eprintln!(
            "SKIPPED: {} is missing (the shared data set is not on this machine)",
            dir.display()
        );
        return;
    }
    for f in [
        "chatterbot_en.jsonl",
        "topicalchat_en.jsonl",
        "selfinstruct_human_en.jsonl",
        "gsm8k_train_en.jsonl",
    ] {
        let l = load(&dir.join(f), InvalidPolicy::Stop).unwrap_or_else(|e| panic!("{e}"));
        assert!(l.conversations.len() > 100, "{f}");
    }
}

#[test]
fn every_shipped_fine_tuning_config_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        if p.extension().is_some_and(|x| x == "toml") && text.contains("\n[init]") {
            let c: ember_sft::SftConfig =
                ember_train::config::load(&p, &[]).unwrap_or_else(|e| panic!("{e}"));
            assert!(!c.data.files.is_empty(), "{}", p.display());
            n += 1;
        }
    }
    assert!(n >= 3, "found {n} fine-tuning configs");
}
