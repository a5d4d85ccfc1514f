//! Reports a person can open: one self-contained HTML page (inline SVG charts, inline CSS,
//! nothing fetched) and a Markdown twin, from a run directory and/or a `results.json`.
//! [`gather_run`]/[`gather_results`] collect the facts; [`html`]/[`markdown`] render them.

mod gather;
mod render;

use crate::results::Results;
use ember_formats::metrics::Row;

pub use gather::{gather_results, gather_run};
pub use render::{esc, headline, html, markdown, write};

/// What a report is made from.
#[derive(Debug, Default)]
pub struct ReportData {
    /// Title (the run directory, or the results file).
    pub title: String,
    /// Summary facts, in order (label, value).
    pub facts: Vec<(String, String)>,
    /// Training metrics rows, if a run.
    pub rows: Vec<Row>,
    /// Evaluation results, if any.
    pub results: Option<Results>,
    /// A few SFT replies (prompt, reply), if any.
    pub replies: Vec<(String, String)>,
    /// The resolved config, if a run.
    pub config: Option<String>,
    /// The newest checkpoint's attention for [`crate::inspect::REPORT_SENTENCE`]: an SVG of
    /// every layer and head.
    pub attention_svg: Option<String>,
    /// Nearest tokens by input embedding for [`crate::inspect::REPORT_WORDS`].
    pub neighbors: Vec<(String, Vec<(String, f32)>)>,
    /// The newest checkpoint's most frequent tokens on the input embeddings' first two
    /// principal components ([`crate::inspect::embedding_map`]), as an SVG.
    pub embedding_map_svg: Option<String>,
}
