//! Decode (llama-bench's `tgM`, `tgM@dD`): after a context of D tokens (prefilled untimed),
//! M new tokens one at a time, each step timed: the inter-token latencies (ITL). Each
//! repetition's latency is the steps' sum; generated tokens/s = M / that sum.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::generation::{self, GenerationCase, GenerationRaw, GenerationSpec, QuickEntry};
use super::{Cell, Driven, Measured, ScenarioKind};
use crate::compare::KindMetrics;
use crate::llm::bench::LlmTest;
use crate::measure::{Observer, SamplerConfig, Workload};
use crate::model::Capability;
use crate::schema::{CaseResult, ScenarioRecord, Settings};
use crate::spec::Checker;

/// The decode kind.
pub struct Decode;

/// `[scenarios.decode]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeEntry {
    /// New tokens per repetition: one case each (default `[128]`, as llama-bench).
    pub new_tokens: Option<Spanned<Vec<i64>>>,
    /// Context before the first timed step: one case each (default `[0]`).
    pub depth: Option<Spanned<Vec<i64>>>,
    /// A text whose first tokens are the context (default: seeded random ids).
    pub prompt_file: Option<Spanned<String>>,
    /// The lists `--quick` runs (default: the smallest of each).
    pub quick: Option<Spanned<QuickEntry>>,
}

impl ScenarioKind for Decode {
    type Entry = DecodeEntry;
    type Spec = GenerationSpec;
    type Case = GenerationCase;
    type Raw = GenerationRaw;

    const EXAMPLE: &'static str = "[scenarios.decode] with new_tokens = [128]";
    const NEEDS: Capability = Capability::Generation;

    fn validate(
        &self,
        entry: &Spanned<DecodeEntry>,
        at: &str,
        checker: &mut Checker,
        _settings: &Settings,
    ) -> Option<GenerationSpec> {
        let e = entry.get_ref();
        let new_tokens =
            generation::list(checker, &format!("{at}.new_tokens"), &e.new_tokens, 1, &[128]);
        let depth = generation::list(checker, &format!("{at}.depth"), &e.depth, 0, &[0]);
        let quick = generation::quick_lists(checker, at, &e.quick, [None, Some(1), Some(0)]);
        let prompt_file = generation::prompt_file(checker, at, &e.prompt_file);
        Some(GenerationSpec {
            prompt_tokens: Vec::new(),
            new_tokens: new_tokens?,
            depth: depth?,
            prompt_file: prompt_file?,
            quick: quick?,
        })
    }

    /// One case per new-token count and depth: `tg128/b1`, `tg128@d1024/b1`.
    fn expand(&self, spec: &GenerationSpec) -> Vec<Cell<GenerationCase>> {
        let mut out = Vec::new();
        for &new_tokens in &spec.new_tokens {
            for &depth in &spec.depth {
                let test = LlmTest::Decode { depth, new_tokens };
                out.push(Cell {
                    id_part: generation::id_part(&test),
                    batch_size: 1,
                    case: GenerationCase {
                        test,
                        prompt_file: spec.prompt_file.clone(),
                    },
                });
            }
        }
        out
    }

    fn context_tokens(&self, spec: &GenerationSpec) -> usize {
        let most = |v: &[usize]| v.iter().copied().max().unwrap_or(0);
        most(&spec.depth) + most(&spec.new_tokens)
    }

    fn prompt_file(&self, spec: &GenerationSpec) -> Option<(PathBuf, usize)> {
        generation::prompt_need(spec, &spec.depth)
    }

    generation::shared_methods!(ScenarioRecord::Decode);
}
