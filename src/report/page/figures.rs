//! The page's charts (inlined PNGs) and the list of charts not drawn.

use base64::Engine;
use serde::Serialize;

use super::super::charts::{Chart, Omitted, Section};

#[derive(Debug, Serialize)]
pub(super) struct ChartCtx {
    id: String,
    file: String,
    title: String,
    caption: String,
    width: u32,
    height: u32,
    /// `data:image/png;base64,...`; the template marks it `safe`: the base64 alphabet holds
    /// no HTML-special character, and escaping would only turn every `/` into `&#x2f;`.
    src: String,
}

#[derive(Debug, Serialize)]
pub(super) struct OmittedCtx {
    title: String,
    why: String,
}

/// The charts of one section of the page, each PNG inlined as a data URL.
pub(super) fn chart_rows(charts: &[Chart], section: Section) -> Vec<ChartCtx> {
    charts
        .iter()
        .filter(|c| c.section == section)
        .map(|c| ChartCtx {
            id: c.file.trim_end_matches(".png").to_string(),
            file: c.file.clone(),
            title: c.title.clone(),
            caption: c.caption.clone(),
            width: c.width,
            height: c.height,
            src: format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(&c.png)
            ),
        })
        .collect()
}

/// The charts not drawn, each with why.
pub(super) fn omitted_rows(omitted: &[Omitted]) -> Vec<OmittedCtx> {
    omitted
        .iter()
        .map(|o| OmittedCtx {
            title: o.title.clone(),
            why: o.why.clone(),
        })
        .collect()
}
