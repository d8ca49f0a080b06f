//! Prefill (llama-bench's `ppN`): a prompt of N tokens into an empty KV cache. Each
//! repetition's latency is its time to first token (TTFT); prompt tokens/s = N / TTFT.

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

/// The prefill kind.
pub struct Prefill;

/// `[scenarios.prefill]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefillEntry {
    /// Prompt lengths: one case each (default `[512]`, as llama-bench).
    pub prompt_tokens: Option<Spanned<Vec<i64>>>,
    /// A text whose first tokens are the prompt (default: seeded random ids).
    pub prompt_file: Option<Spanned<String>>,
    /// The lists `--quick` runs (default: the smallest of each).
    pub quick: Option<Spanned<QuickEntry>>,
}

impl ScenarioKind for Prefill {
    type Entry = PrefillEntry;
    type Spec = GenerationSpec;
    type Case = GenerationCase;
    type Raw = GenerationRaw;

    const EXAMPLE: &'static str = "[scenarios.prefill] with prompt_tokens = [128, 512]";
    const NEEDS: Capability = Capability::Generation;

    fn validate(
        &self,
        entry: &Spanned<PrefillEntry>,
        at: &str,
        checker: &mut Checker,
        _settings: &Settings,
    ) -> Option<GenerationSpec> {
        let e = entry.get_ref();
        let field = format!("{at}.prompt_tokens");
        let prompt_tokens = generation::list(checker, &field, &e.prompt_tokens, 1, &[512]);
        let quick = generation::quick_lists(checker, at, &e.quick, [Some(1), None, None]);
        let prompt_file = generation::prompt_file(checker, at, &e.prompt_file);
        Some(GenerationSpec {
            prompt_tokens: prompt_tokens?,
            new_tokens: Vec::new(),
            depth: Vec::new(),
            prompt_file: prompt_file?,
            quick: quick?,
        })
    }

    /// One case per prompt length: `pp512/b1`.
    fn expand(&self, spec: &GenerationSpec) -> Vec<Cell<GenerationCase>> {
        spec.prompt_tokens
            .iter()
            .map(|&prompt| {
                let test = LlmTest::Prefill { prompt };
                Cell {
                    id_part: generation::id_part(&test),
                    batch_size: 1,
                    case: GenerationCase {
                        test,
                        prompt_file: spec.prompt_file.clone(),
                    },
                }
            })
            .collect()
    }

    fn context_tokens(&self, spec: &GenerationSpec) -> usize {
        spec.prompt_tokens.iter().copied().max().unwrap_or(0)
    }

    fn prompt_file(&self, spec: &GenerationSpec) -> Option<(PathBuf, usize)> {
        generation::prompt_need(spec, &spec.prompt_tokens)
    }

    generation::shared_methods!(ScenarioRecord::Prefill);
}
