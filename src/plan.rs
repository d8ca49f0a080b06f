//! Expansion of a suite into its cases: variants x targets x scenarios x batch sizes.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::model::{Architecture, TextInput, WeightSource};
use crate::scenario::ScenarioCase;
use crate::schema::{ModelInfo, QualityInfo, Settings, Shard};
use crate::suite::Suite;
use crate::target::Target;

/// One cell of the suite's matrix: everything a worker needs to measure it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// Stable id: `<model>-<variant>/<target>/<scenario>/<the kind's part>`, as in
    /// `m-baseline/cpu-t1/offline/b8` or `m-baseline/cpu-t1/server/q200/b1`.
    pub id: String,
    pub model: String,
    pub variant: String,
    pub arch: Architecture,
    pub weights: WeightSource,
    pub target: Target,
    /// The scenario kind and its configuration of this case (rate, queries...).
    pub scenario: ScenarioCase,
    pub batch_size: usize,
    pub settings: Settings,
    /// Shape of a raw input before the preprocess stage (default: the model's input).
    #[serde(default)]
    pub raw_input: Option<Vec<usize>>,
    /// The variant's size and provenance, filled when `run` has built it.
    #[serde(default)]
    pub model_info: Option<ModelInfo>,
    /// The variant's quality on the test split, scored once when `run` built it.
    #[serde(default)]
    pub quality: Option<QualityInfo>,
    /// A sentence encoder's inputs: its tokenizer and the sentences (a `bert` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextInput>,
    /// The variant's embedding quality, scored once when `run` built it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<crate::schema::EmbeddingQuality>,
    /// A language model's perplexity and KL divergence, scored once when `run` built it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_quality: Option<crate::schema::LlmQuality>,
    /// The variant's output fidelity on synthetic inputs, scored once when `run` built it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_fidelity: Option<crate::schema::OutputFidelity>,
}

/// The text inputs of `model` in `suite` (a model with a tokenizer: a `bert`): its
/// tokenizer, and the `[data]` sentences, else the built-in ones. The batch is the sentences
/// in order (repeated when the batch is larger), tokenized to the model's `seq_len`.
pub fn text_input(suite: &Suite, model: &str) -> Option<TextInput> {
    let m = suite.models.iter().find(|m| m.name == model)?;
    let tokenizer = m.tokenizer.clone()?;
    let sentences = match suite.data.as_ref().map(|d| &d.source) {
        Some(crate::data::DataSource::Sentences(t)) => t.clone(),
        _ => crate::data::text::TextSource {
            sentences: None,
            pairs: None,
        },
    };
    Some(TextInput {
        tokenizer,
        sentences,
    })
}

/// Every case of the suite in a fixed order: variant, target, then each scenario kind's cases
/// in the registry's order (single-stream, offline, server, multi-stream), each kind's in the
/// order it expands them. Ids are `<model>-<variant>/<target>/<kind>/<the kind's part>`:
/// `offline/b8`, `server/q200/b1` (the search: `server/max-p99-20ms/b1`),
/// `multi_stream/n4`.
pub fn expand(suite: &Suite, settings: &Settings) -> Vec<Case> {
    let cells: Vec<_> = suite.scenarios.iter().flat_map(|s| s.expand()).collect();
    let mut cases = Vec::new();
    for variant in &suite.variants {
        let raw_input = suite
            .models
            .iter()
            .find(|m| m.name == variant.model)
            .and_then(|m| m.raw_input.clone());
        for target in &suite.targets {
            for cell in &cells {
                let kind = cell.case.kind();
                cases.push(Case {
                    id: format!(
                        "{}/{}/{}/{}",
                        variant.id(),
                        target.label,
                        kind.as_str(),
                        cell.id_part
                    ),
                    model: variant.model.clone(),
                    variant: variant.name.clone(),
                    arch: variant.arch.clone(),
                    weights: variant.weights.clone(),
                    target: target.clone(),
                    scenario: cell.case.clone(),
                    batch_size: cell.batch_size,
                    settings: settings.clone(),
                    raw_input: raw_input.clone(),
                    model_info: None,
                    quality: None,
                    text: text_input(suite, &variant.model),
                    embedding: None,
                    llm_quality: None,
                    output_fidelity: None,
                });
            }
        }
    }
    cases
}

/// Deals the cases to shards like cards: the case at position `p` of the plan (fixed order,
/// after `--filter`) belongs to shard `p mod N + 1`. Every case lands in exactly one shard,
/// shards differ in size by at most one case, and each shard gets a mix of models and
/// scenarios rather than one slow block.
pub fn shard(cases: Vec<Case>, shard: Shard) -> Vec<Case> {
    cases
        .into_iter()
        .enumerate()
        .filter(|(p, _)| shard.owns(*p))
        .map(|(_, c)| c)
        .collect()
}

/// Gives each case its built variant: the architecture and weights the worker loads (the
/// artifact), and the size and quality figures its result reports.
pub fn attach(cases: &mut [Case], built: &[crate::variant::BuiltVariant]) {
    for case in cases {
        let id = format!("{}-{}", case.model, case.variant);
        if let Some(b) = built.iter().find(|b| b.id == id) {
            case.arch = b.arch.clone();
            case.weights = b.weights.clone();
            case.model_info = Some(b.model_info.clone());
            case.quality = b.quality.clone();
            case.embedding = b.embedding.clone();
            case.llm_quality = b.llm_quality.clone();
            case.output_fidelity = b.output_fidelity.clone();
        }
    }
}

/// Keeps the cases whose id matches `filter` (a regular expression, unanchored).
pub fn filter(cases: Vec<Case>, filter: Option<&Regex>) -> Vec<Case> {
    match filter {
        Some(re) => cases.into_iter().filter(|c| re.is_match(&c.id)).collect(),
        None => cases,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn cartesian_product_with_stable_ids() {
        let text = r#"
[suite]
name = "p"
[[models]]
name = "cnn"
arch = "cnn"
input = [12, 12, 1]
conv_channels = [4]
classes = 10
[[targets]]
device = "cpu"
threads = [1, 2]
[scenarios.single_stream]
[scenarios.offline]
batch_sizes = [1, 8, 64]
"#;
        let suite = crate::suite::parse(Path::new("p.toml"), text).unwrap();
        let cases = expand(&suite, &suite.settings);
        assert_eq!(cases.len(), 2 * (1 + 3));
        assert_eq!(cases[0].id, "cnn-baseline/cpu-t1/single_stream/b1");
        assert_eq!(cases[7].id, "cnn-baseline/cpu-t2/offline/b64");
        let ids: std::collections::BTreeSet<_> = cases.iter().map(|c| &c.id).collect();
        assert_eq!(ids.len(), cases.len(), "ids are unique");
        let re = Regex::new("t2/offline").unwrap();
        assert_eq!(filter(cases, Some(&re)).len(), 3);
    }

    #[test]
    fn server_and_multi_stream_cases_have_readable_ids() {
        let text = r#"
[suite]
name = "p"
[[models]]
name = "cnn"
arch = "cnn"
input = [12, 12, 1]
conv_channels = [4]
classes = 10
[[targets]]
device = "cpu"
[scenarios.server]
target_qps = [200, 12.5, 200]
find_max_qps = { p99_bound_ms = 20 }
max_batch = [1, 4]
[scenarios.multi_stream]
samples_per_query = [4]
queries = 50
"#;
        let suite = crate::suite::parse(Path::new("p.toml"), text).unwrap();
        let ids: Vec<String> = expand(&suite, &suite.settings)
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(
            ids,
            [
                "cnn-baseline/cpu-t1/server/q12.5/b1",
                "cnn-baseline/cpu-t1/server/q12.5/b4",
                "cnn-baseline/cpu-t1/server/q200/b1",
                "cnn-baseline/cpu-t1/server/q200/b4",
                "cnn-baseline/cpu-t1/server/max-p99-20ms/b1",
                "cnn-baseline/cpu-t1/server/max-p99-20ms/b4",
                "cnn-baseline/cpu-t1/multi_stream/n4",
            ]
        );
    }
}
