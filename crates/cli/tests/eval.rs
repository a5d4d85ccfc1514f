//! `ember eval` and `ember report` end to end on a tiny pretrained run.

use std::path::Path;

use crate::sft::base_model;
use crate::tokenizer::ember;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn eval_sets(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("hellaswag_val.jsonl"),
        concat!(
            r#"{"ind":0,"context":"Greeting: Hello, how","endings":["are you?","is the tree?"],"label":0}"#,
            "\n",
            "this line is not JSON\n",
            r#"{"ind":2,"context":"Food: I like","endings":["to eat.","the sky blue."],"label":0}"#,
            "\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("blimp_200per.jsonl"),
        concat!(
            r#"{"UID":"a","sentence_good":"I am a robot.","sentence_bad":"I a am robot."}"#,
            "\n",
            r#"{"UID":"b","sentence_good":"What is your name?","sentence_bad":"What your is name?"}"#,
            "\n"
        ),
    )
    .unwrap();
}

#[test]
fn eval_of_a_run_writes_results_and_a_report_and_bad_requests_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let run = base_model(dir.path());
    // Training already wrote a report and recorded where it ran.
    assert!(run.join("report.html").is_file() && run.join("report.md").is_file());
    let system: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("system.json")).unwrap()).unwrap();
    assert!(
        system["device"].as_str().unwrap().contains("cpu"),
        "{system}"
    );

    let data = dir.path().join("evalsets");
    eval_sets(&data);
    let out = ember(&[
        "eval",
        "--run",
        &s(&run),
        "--tasks",
        "bpb,hellaswag,blimp,samples",
        "--eval-data",
        &s(&data),
        "--samples",
        "1",
        "--max-new-tokens",
        "8",
        "--device",
        "cpu",
    ]);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("eval/results.json")).unwrap())
            .unwrap();
    assert_eq!(results["format"], "ember-eval-results");
    assert_eq!(results["version"], 1);
    let cks = results["checkpoints"].as_array().unwrap();
    assert_eq!(
        cks.len(),
        ember_formats::run::list(&run).len(),
        "every checkpoint, in step order"
    );
    assert!(cks[0]["step"].as_u64() < cks[cks.len() - 1]["step"].as_u64());
    let hs = &cks[0]["tasks"]["hellaswag"];
    assert_eq!(
        (hs["acc"]["n"].as_u64(), hs["malformed"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(cks[0]["tasks"]["text"]["bpb"].as_f64().unwrap() > 0.0);
    assert!(out.stdout.contains("chance 50.0"), "{}", out.stdout);
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("Evaluations") && html.contains("hellaswag"));

    let other = dir.path().join("elsewhere.html");
    let out = ember(&["report", "--run", &s(&run), "--out", &s(&other)]);
    assert!(
        out.ok && other.is_file() && dir.path().join("elsewhere.md").is_file(),
        "{}",
        out.stderr
    );

    let out = ember(&["eval", "--run", &s(&run), "--tasks", "hellaswag,mmlu"]);
    assert!(
        !out.ok && out.stderr.contains("unknown task \"mmlu\""),
        "{}",
        out.stderr
    );
    let missing = dir.path().join("nowhere");
    let out = ember(&[
        "eval",
        "--run",
        &s(&run),
        "--tasks",
        "arc-easy",
        "--eval-data",
        &s(&missing),
        "--device",
        "cpu",
    ]);
    assert!(!out.ok, "{}", out.stdout);
    assert!(
        out.stderr.contains("arc_easy_test.jsonl") && out.stderr.contains("--eval-data"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let out = ember(&[
        "eval",
        "--checkpoint",
        &s(&run),
        "--tasks",
        "sft-loss",
        "--device",
        "cpu",
    ]);
    assert!(
        !out.ok && out.stderr.contains("--dialogue"),
        "{}",
        out.stderr
    );
}

/// Reply ranking and context gain on a fine-tuning run's own held-out conversations: both are
/// measured, written to results.json with their chance levels, and shown in the report.
#[test]
fn dialogue_choice_and_context_gain_on_the_runs_held_out_conversations() {
    let f = crate::battery::fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let r = ember(&[
        "eval",
        "--checkpoint",
        &f.p("sft"),
        "--device",
        "cpu",
        "--tasks",
        "dialogue-choice,context-gain",
        "--out",
        &s(&out),
    ]);
    assert!(r.ok, "{}{}", r.stdout, r.stderr);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let t = &v["checkpoints"][0]["tasks"];
    let choice = &t["dialogue-choice"];
    assert_eq!(choice["chance"], 0.25, "{choice}");
    assert!(choice["acc"]["n"].as_u64().unwrap() > 10, "{choice}");
    let gain = &t["context-gain"];
    assert!(gain["replies"].as_u64().unwrap() > 10, "{gain}");
    assert!(gain["gain"].as_f64().unwrap().is_finite(), "{gain}");
    assert!(
        r.stdout.contains("dialogue-choice") && r.stdout.contains("nats/token"),
        "{}",
        r.stdout
    );
    let report = std::fs::read_to_string(out.with_extension("md")).unwrap();
    assert!(report.contains("context-gain"), "{report}");
    // The same seed gives the same numbers.
    let again = ember(&[
        "eval",
        "--checkpoint",
        &f.p("sft"),
        "--device",
        "cpu",
        "--tasks",
        "dialogue-choice,context-gain",
        "--out",
        &s(&dir.path().join("r2.json")),
        "--no-report",
    ]);
    assert!(again.ok, "{}", again.stderr);
    let w: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r2.json")).unwrap())
            .unwrap();
    assert_eq!(w["checkpoints"][0]["tasks"], v["checkpoints"][0]["tasks"]);
}

/// A run's report shows what its newest checkpoint attends to in a fixed sentence (every layer
/// and head), the embedding neighbours of a few fixed words and a map of its frequent tokens.
#[test]
fn run_reports_show_attention_maps_embedding_neighbours_and_map() {
    let f = crate::battery::fixture();
    let html = std::fs::read_to_string(f.root.join("run/report.html")).unwrap();
    assert!(
        html.contains("What the model attends to"),
        "attention section"
    );
    assert!(
        html.contains("layer 1, head 1"),
        "every layer and head is drawn"
    );
    assert!(html.contains("Embedding neighbours") && html.contains("&quot; king&quot;"));
    // The map: the fixture's tokenizer has about 140 merges; most are whole text.
    let map = &html[html
        .find("<h2>Embedding map</h2>")
        .expect("embedding map section")..];
    let dots = map.matches("<circle").count();
    assert!((50..=150).contains(&dots), "{dots} tokens on the map");
    let md = std::fs::read_to_string(f.root.join("run/report.md")).unwrap();
    assert!(md.contains("## Embedding neighbours"), "{md}");
}

/// The samples task continues the user's own prompts (Chinese ones for a Chinese model, say),
/// cycled over the generations; an empty prompt is refused before anything runs.
#[test]
fn samples_continue_the_prompts_given() {
    let f = crate::battery::fixture();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let args = |prompt: &'static str| {
        let o = s(&out);
        let ck = f.p("run");
        ember(&[
            "eval",
            "--checkpoint",
            &ck,
            "--device",
            "cpu",
            "--tasks",
            "samples",
            "--samples",
            "3",
            "--max-new-tokens",
            "6",
            "--prompt",
            "却说宝玉",
            "--prompt",
            prompt,
            "--out",
            &o,
            "--no-report",
        ])
    };
    let r = args("Once");
    assert!(r.ok, "{}{}", r.stdout, r.stderr);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let samples = v["checkpoints"][0]["tasks"]["samples"]["samples"]
        .as_array()
        .unwrap();
    let prompts: Vec<&str> = samples
        .iter()
        .map(|x| x["prompt"].as_str().unwrap())
        .collect();
    assert_eq!(prompts, ["却说宝玉", "Once", "却说宝玉"]);
    let r = args(" ");
    assert!(
        !r.ok && r.stderr.contains("--prompt") && r.stderr.contains("empty"),
        "{}",
        r.stderr
    );
}
