//! Collecting a report's facts from a run directory or a results file.

use std::path::Path;

use ember_formats::SystemInfo;
use ember_formats::metrics::Row;

use super::ReportData;
use crate::error::{EvalError, Result};
use crate::results::Results;

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    (!v.is_empty()).then(|| v[v.len() / 2])
}

/// Gathers a run directory: config, metrics, system, newest checkpoint's shape, `eval/results.json`, replies.
pub fn gather_run(run: &Path) -> Result<ReportData> {
    let metrics = run.join("metrics.jsonl");
    let text = std::fs::read_to_string(&metrics).map_err(|e| EvalError::Results {
        path: metrics.clone(),
        reason: format!(
            "cannot read ({e}); is {} a run directory made by `ember pretrain` or `ember sft`?",
            run.display()
        ),
    })?;
    let rows: Vec<Row> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let config = std::fs::read_to_string(run.join("config.toml")).ok();
    let mut d = ReportData {
        title: run.display().to_string(),
        rows,
        config,
        ..Default::default()
    };
    let newest = ember_formats::run::newest_valid(run);
    // The newest checkpoint's files, verified once for its stage and its shape.
    let files = newest
        .as_ref()
        .and_then(|(_, ck)| Some((ck, ember_model::checkpoint::verify(ck).ok()?)));
    let stage = files
        .as_ref()
        .and_then(|(ck, f)| ember_formats::run::read_state(f, ck).ok())
        .map_or("unknown (no complete checkpoint)", |s| s.stage.describe());
    d.facts.push(("stage".into(), stage.into()));
    if let Some((ck, f)) = &files {
        if let Ok(c) = f.config(ck) {
            d.facts.push((
                "model".into(),
                format!(
                    "{} layers, {} heads, {} dims, context {}, vocab {}, {:?} positions, {:?}",
                    c.n_layer, c.n_head, c.n_embd, c.block_size, c.vocab_size, c.positions, c.norm
                ),
            ));
            d.facts.push((
                "parameters".into(),
                format!("{:.2}M", c.num_params() as f64 / 1e6),
            ));
        }
        d.facts
            .push(("newest checkpoint".into(), ck.display().to_string()));
        look_inside(&mut d, ck);
    }
    match SystemInfo::load(run) {
        Some(s) => {
            d.facts.push(("device".into(), s.device));
            d.facts.push((
                "hardware".into(),
                format!("{} ({} threads), {}", s.cpu, s.threads, s.os),
            ));
            if let Some(src) = s.peak_source {
                d.facts.push(("peak for MFU".into(), src));
            }
        }
        None => d.facts.push((
            "device".into(),
            "not recorded (run made before system.json existed)".into(),
        )),
    }
    let train: Vec<_> = d
        .rows
        .iter()
        .filter_map(|r| match r {
            Row::Train {
                step,
                tokens,
                loss,
                tokens_per_s,
                mfu,
                elapsed_s,
                ..
            } => Some((*step, *tokens, *loss, *tokens_per_s, *mfu, *elapsed_s)),
            _ => None,
        })
        .collect();
    if let Some(last) = train.last() {
        d.facts.push((
            "steps".into(),
            format!(
                "{} ({} tokens, {:.1} min of training)",
                last.0,
                last.1,
                last.5 / 60.0
            ),
        ));
        let tail: Vec<f64> = train
            .iter()
            .rev()
            .take(20)
            .map(|t| f64::from(t.2))
            .collect();
        d.facts.push((
            "train loss (mean of last 20 steps)".into(),
            format!("{:.4}", tail.iter().sum::<f64>() / tail.len() as f64),
        ));
        if let Some(m) = median(train.iter().map(|t| t.3).collect()) {
            d.facts
                .push(("throughput (median)".into(), format!("{m:.0} tokens/s")));
        }
        if let Some(m) = median(train.iter().filter_map(|t| t.4).collect()) {
            d.facts
                .push(("MFU (median estimate)".into(), format!("{:.1}%", 100.0 * m)));
        }
    }
    let evals: Vec<(u64, f64, f64)> = d
        .rows
        .iter()
        .filter_map(|r| match r {
            Row::Eval {
                step,
                val_loss,
                val_bpb,
                ..
            } => Some((*step, *val_loss, *val_bpb)),
            _ => None,
        })
        .collect();
    if let Some(e) = evals.last() {
        d.facts.push((
            "held-out loss / bpb (last eval)".into(),
            format!("{:.4} / {:.4} at step {}", e.1, e.2, e.0),
        ));
    }
    if let Some(best) = evals.iter().min_by(|a, b| a.2.total_cmp(&b.2)) {
        d.facts.push((
            "best held-out bpb".into(),
            format!("{:.4} at step {}", best.2, best.0),
        ));
    }
    let skipped = d
        .rows
        .iter()
        .filter(|r| matches!(r, Row::Skipped { .. }))
        .count();
    if skipped > 0 {
        d.facts
            .push(("skipped steps (non-finite)".into(), skipped.to_string()));
    }
    let results = run.join("eval").join("results.json");
    if results.is_file() {
        d.results = Some(Results::load(&results)?);
    }
    if let Ok(t) = std::fs::read_to_string(run.join("replies.jsonl")) {
        d.replies = t
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .take(6)
            .map(|v| {
                (
                    v["prompt"].as_str().unwrap_or_default().to_string(),
                    v["reply"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
    }
    Ok(d)
}

/// Gathers a `results.json` written without a run.
pub fn gather_results(path: &Path) -> Result<ReportData> {
    let r = Results::load(path)?;
    Ok(ReportData {
        title: path.display().to_string(),
        facts: vec![("device".into(), r.device.clone())],
        results: Some(r),
        ..Default::default()
    })
}

/// Attention over the report's sentence and the report's words' neighbours, from the newest
/// checkpoint on the CPU; a checkpoint that cannot be loaded leaves both out (the rest of the
/// report does not depend on it).
fn look_inside(d: &mut ReportData, ck: &Path) {
    let Ok(c) = ember_model::checkpoint::load(ck, &burn::prelude::Device::flex()) else {
        return;
    };
    if let Ok(maps) = crate::inspect::attention_maps(&c, crate::inspect::REPORT_SENTENCE) {
        let panels: Vec<(usize, usize)> = (0..c.config.n_layer)
            .flat_map(|l| (0..c.config.n_head).map(move |h| (l, h)))
            .collect();
        d.attention_svg = Some(crate::plot::attention_svg(
            &maps.tokens,
            &maps.weights,
            &panels,
        ));
    }
    for w in crate::inspect::REPORT_WORDS {
        if let Ok(n) = crate::inspect::neighbors(&c, w, 8) {
            d.neighbors.push((
                w.to_string(),
                n.into_iter().map(|(_, t, s)| (t, s)).collect(),
            ));
        }
    }
    if let Ok(points) = crate::inspect::embedding_map(&c, crate::inspect::REPORT_MAP_TOKENS) {
        d.embedding_map_svg = Some(crate::plot::labelled_scatter_svg(
            "input embeddings, first two principal components",
            "component 1",
            "component 2",
            &points,
        ));
    }
}
