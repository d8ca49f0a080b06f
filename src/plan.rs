//! Expansion of a suite into its cases: variants x targets x scenarios x batch sizes.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::model::{Architecture, WeightSource};
use crate::quality::QualityInfo;
use crate::results::ModelInfo;
use crate::suite::{Scenario, Settings, Suite};
use crate::target::Target;

/// One cell of the suite's matrix: everything a worker needs to measure it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// Stable id: `<model>-<variant>/<target>/<scenario>/b<batch>`.
    pub id: String,
    pub model: String,
    pub variant: String,
    pub arch: Architecture,
    pub weights: WeightSource,
    pub target: Target,
    pub scenario: Scenario,
    pub batch_size: usize,
    pub settings: Settings,
    /// The variant's size and provenance, filled when `run` has built it.
    #[serde(default)]
    pub model_info: Option<ModelInfo>,
    /// The variant's quality on the test split, scored once when `run` built it.
    #[serde(default)]
    pub quality: Option<QualityInfo>,
}

pub fn case_id(variant_id: &str, target: &Target, scenario: Scenario, batch: usize) -> String {
    format!(
        "{variant_id}/{}/{}/b{batch}",
        target.label,
        scenario.as_str()
    )
}

/// Every case of the suite in a fixed order (variant, target, scenario, batch).
pub fn expand(suite: &Suite, settings: &Settings) -> Vec<Case> {
    let mut cases = Vec::new();
    for variant in &suite.variants {
        for target in &suite.targets {
            for (scenario, batches) in &suite.scenarios {
                for &batch_size in batches {
                    cases.push(Case {
                        id: case_id(&variant.id(), target, *scenario, batch_size),
                        model: variant.model.clone(),
                        variant: variant.name.clone(),
                        arch: variant.arch.clone(),
                        weights: variant.weights.clone(),
                        target: target.clone(),
                        scenario: *scenario,
                        batch_size,
                        settings: settings.clone(),
                        model_info: None,
                        quality: None,
                    });
                }
            }
        }
    }
    cases
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
}
