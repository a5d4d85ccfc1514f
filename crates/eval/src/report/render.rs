//! Rendering a report as HTML (inline SVG) and Markdown.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ember_formats::metrics::{Row, loss_svg};

use super::ReportData;
use crate::error::Result;
use crate::plot::{Series, line_chart};
use crate::results::{Results, TaskResult};

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A task's headline figure and its chance level, for tables.
pub fn headline(r: &TaskResult) -> (String, Option<String>) {
    match r {
        TaskResult::Text(t) => (format!("loss {:.4}, bpb {:.4}", t.loss, t.bpb), None),
        TaskResult::Choice(c) => {
            let mut s = format!("acc {}", c.acc.percent());
            if let Some(n) = &c.acc_norm {
                let _ = write!(s, "; acc_norm {}", n.percent());
            }
            (s, Some(format!("{:.1}", 100.0 * c.chance)))
        }
        TaskResult::Math(m) => (format!("acc {}", m.acc.percent()), Some("0.0".into())),
        TaskResult::Samples(s) => (format!("{} samples", s.samples.len()), None),
        TaskResult::Gain(g) => (
            format!(
                "gain {:+.3} [{:+.3}, {:+.3}] nats/token",
                g.gain, g.lo, g.hi
            ),
            Some("0".into()),
        ),
    }
}

/// The value plotted against step for a task (accuracy, or bpb for text tasks).
fn plotted(r: &TaskResult) -> Option<f64> {
    match r {
        TaskResult::Text(t) => Some(t.bpb),
        TaskResult::Choice(c) => Some(100.0 * c.acc.value),
        TaskResult::Math(m) => Some(100.0 * m.acc.value),
        TaskResult::Samples(_) => None,
        TaskResult::Gain(g) => Some(g.gain),
    }
}

fn eval_table(results: &Results) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "checkpoint".into(),
        "step".into(),
        "task".into(),
        "result (95% CI)".into(),
        "chance".into(),
        "items".into(),
    ]];
    for c in &results.checkpoints {
        for (name, r) in &c.tasks {
            if matches!(r, TaskResult::Samples(_)) {
                continue;
            }
            let (value, chance) = headline(r);
            let items = match r {
                TaskResult::Text(t) => format!("{} tokens", t.tokens),
                TaskResult::Choice(x) => format!("{} ({} malformed)", x.acc.n, x.malformed),
                TaskResult::Math(m) => format!("{} ({} too long)", m.acc.n, m.too_long),
                TaskResult::Samples(_) => String::new(),
                TaskResult::Gain(g) => format!("{} replies", g.replies),
            };
            let short = Path::new(&c.checkpoint)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            rows.push(vec![
                short,
                c.step.map(|s| s.to_string()).unwrap_or("-".into()),
                name.clone(),
                value,
                chance.unwrap_or("-".into()),
                items,
            ]);
        }
    }
    rows
}

fn charts(d: &ReportData) -> Vec<String> {
    let mut out = Vec::new();
    if !d.rows.is_empty() {
        out.push(loss_svg(&d.rows, "loss"));
        let bpb: Vec<(f64, f64)> = d
            .rows
            .iter()
            .filter_map(|r| match r {
                Row::Eval { step, val_bpb, .. } => Some((*step as f64, *val_bpb)),
                _ => None,
            })
            .collect();
        if !bpb.is_empty() {
            out.push(line_chart(
                "held-out bits per byte",
                "step",
                "bpb",
                &[Series {
                    name: "validation bpb",
                    points: bpb,
                    emphasis: true,
                }],
                None,
            ));
        }
        let tps: Vec<(f64, f64)> = d
            .rows
            .iter()
            .filter_map(|r| match r {
                Row::Train {
                    step, tokens_per_s, ..
                } => Some((*step as f64, *tokens_per_s)),
                _ => None,
            })
            .collect();
        out.push(line_chart(
            "throughput",
            "step",
            "tokens/s",
            &[Series {
                name: "tokens/s",
                points: tps,
                emphasis: false,
            }],
            None,
        ));
    }
    if let Some(r) = &d.results {
        let stepped: Vec<_> = r.checkpoints.iter().filter(|c| c.step.is_some()).collect();
        if stepped.len() >= 2 {
            let mut names: Vec<&String> = stepped.iter().flat_map(|c| c.tasks.keys()).collect();
            names.sort();
            names.dedup();
            for name in names {
                let pts: Vec<(f64, f64)> = stepped
                    .iter()
                    .filter_map(|c| {
                        let v = plotted(c.tasks.get(name)?)?;
                        Some((c.step? as f64, v))
                    })
                    .collect();
                let first = stepped.iter().find_map(|c| c.tasks.get(name));
                let (unit, chance) = match first {
                    Some(TaskResult::Text(_)) => ("bpb", None),
                    Some(TaskResult::Gain(_)) => ("nats/token", Some((0.0, "no gain"))),
                    Some(TaskResult::Choice(c)) => {
                        ("accuracy %", Some((100.0 * c.chance, "chance")))
                    }
                    _ => ("accuracy %", None),
                };
                if pts.len() >= 2 {
                    out.push(line_chart(
                        &format!("{name} by step"),
                        "step",
                        unit,
                        &[Series {
                            name,
                            points: pts,
                            emphasis: true,
                        }],
                        chance,
                    ));
                }
            }
        }
    }
    out
}

fn samples(d: &ReportData) -> Vec<(String, String)> {
    let mut out = d.replies.clone();
    if let Some(c) = d.results.as_ref().and_then(|r| r.checkpoints.last()) {
        for t in c.tasks.values() {
            if let TaskResult::Samples(s) = t {
                out.extend(s.samples.iter().map(|x| (x.prompt.clone(), x.text.clone())));
            }
        }
    }
    out
}

/// The HTML page.
pub fn html(d: &ReportData) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Ember report: {}</title>\n<style>\
body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}}\
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}\
th{{background:#f3f3f3}}pre{{background:#f7f7f7;padding:1em;overflow-x:auto}}figure{{margin:1em 0}}\
.sample{{white-space:pre-wrap;background:#f7f7f7;padding:.5em;margin:.3em 0 1em}}</style></head><body>\n",
        esc(&d.title)
    );
    let _ = writeln!(
        h,
        "<h1>Ember report</h1><p><code>{}</code></p>",
        esc(&d.title)
    );
    h.push_str("<h2>Summary</h2><table>\n");
    for (k, v) in &d.facts {
        let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    h.push_str("</table>\n");
    let charts = charts(d);
    if !charts.is_empty() {
        h.push_str("<h2>Curves</h2>\n");
        for c in charts {
            let _ = writeln!(h, "<figure>{c}</figure>");
        }
    }
    if let Some(r) = &d.results {
        let _ = writeln!(
            h,
            "<h2>Evaluations</h2><p>Device: {}. Accuracies in percent with 95% intervals (Wilson; BLiMP: mean over paradigms).</p><table>",
            esc(&r.device)
        );
        for (i, row) in eval_table(r).iter().enumerate() {
            let tag = if i == 0 { "th" } else { "td" };
            h.push_str("<tr>");
            for cell in row {
                let _ = write!(h, "<{tag}>{}</{tag}>", esc(cell));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }
    let s = samples(d);
    if !s.is_empty() {
        h.push_str("<h2>Samples</h2>\n");
        for (p, t) in s {
            let _ = writeln!(
                h,
                "<p><b>{}</b></p><div class=\"sample\">{}</div>",
                esc(&p),
                esc(&t)
            );
        }
    }
    if let Some(svg) = &d.attention_svg {
        let _ = writeln!(
            h,
            "<h2>What the model attends to</h2><p>Every layer and head of the newest checkpoint reading <i>{}</i> (query down, key across; darker = more weight; hover a cell for its tokens and weight).</p><figure>{svg}</figure>",
            esc(crate::inspect::REPORT_SENTENCE)
        );
    }
    if !d.neighbors.is_empty() {
        h.push_str("<h2>Embedding neighbours</h2><p>Nearest tokens by cosine similarity of the input embeddings (newest checkpoint).</p><table>\n");
        for (w, near) in &d.neighbors {
            let list: Vec<String> = near
                .iter()
                .map(|(t, s)| format!("{} {s:.2}", esc(&format!("{t:?}"))))
                .collect();
            let _ = writeln!(
                h,
                "<tr><th>{}</th><td>{}</td></tr>",
                esc(&format!("{w:?}")),
                list.join(", ")
            );
        }
        h.push_str("</table>\n");
    }
    if let Some(svg) = &d.embedding_map_svg {
        let _ = writeln!(
            h,
            "<h2>Embedding map</h2><p>The tokenizer's first {} merges of whole text (its most frequent pairs) at their input embeddings' coordinates on the first two principal components (newest checkpoint): tokens the model treats alike lie close.</p><figure>{svg}</figure>",
            crate::inspect::REPORT_MAP_TOKENS
        );
    }
    if let Some(c) = &d.config {
        let _ = writeln!(h, "<h2>Config</h2><pre>{}</pre>", esc(c));
    }
    h.push_str("</body></html>\n");
    h
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The Markdown version (tables and text; the charts are in the HTML page and `loss.svg`).
pub fn markdown(d: &ReportData) -> String {
    let mut m = format!(
        "# Ember report\n\n`{}`\n\n## Summary\n\n| | |\n|---|---|\n",
        d.title
    );
    for (k, v) in &d.facts {
        let _ = writeln!(m, "| {} | {} |", md_cell(k), md_cell(v));
    }
    if !d.rows.is_empty() {
        m.push_str("\nCurves: see `report.html` (inline charts) and `loss.svg`.\n");
    }
    if let Some(r) = &d.results {
        let _ = writeln!(
            m,
            "\n## Evaluations\n\nDevice: {}. Accuracies in percent with 95% intervals.\n",
            r.device
        );
        for (i, row) in eval_table(r).iter().enumerate() {
            let _ = writeln!(
                m,
                "| {} |",
                row.iter()
                    .map(|c| md_cell(c))
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            if i == 0 {
                let _ = writeln!(m, "|{}", "---|".repeat(row.len()));
            }
        }
    }
    let s = samples(d);
    if !s.is_empty() {
        m.push_str("\n## Samples\n\n");
        for (p, t) in s {
            let _ = writeln!(
                m,
                "**{}**\n\n```text\n{}\n```\n",
                md_cell(&p),
                t.replace("```", "'''")
            );
        }
    }
    if !d.neighbors.is_empty() {
        m.push_str("\n## Embedding neighbours\n\n| word | nearest tokens (cosine) |\n|---|---|\n");
        for (w, near) in &d.neighbors {
            let list: Vec<String> = near.iter().map(|(t, s)| format!("{t:?} {s:.2}")).collect();
            let _ = writeln!(
                m,
                "| {} | {} |",
                md_cell(&format!("{w:?}")),
                md_cell(&list.join(", "))
            );
        }
        if d.attention_svg.is_some() || d.embedding_map_svg.is_some() {
            m.push_str("\nAttention maps and the embedding map: see `report.html`.\n");
        }
    }
    if let Some(c) = &d.config {
        let _ = writeln!(m, "\n## Config\n\n```toml\n{c}```");
    }
    m
}

/// Writes `html_path` and the Markdown twin beside it (`.md`); returns both paths.
pub fn write(d: &ReportData, html_path: &Path) -> Result<(PathBuf, PathBuf)> {
    let md_path = html_path.with_extension("md");
    ember_files::write_atomic(html_path, html(d).as_bytes())?;
    ember_files::write_atomic(&md_path, markdown(d).as_bytes())?;
    Ok((html_path.to_path_buf(), md_path))
}
