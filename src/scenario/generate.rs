//! Generate (llama-bench's `ppN+tgM`): a prompt of N tokens into an empty KV cache, then
//! M - 1 decode steps, which with the prefill's token make M new tokens. Each repetition's
//! latency is end-to-end; TTFT is its prefill, TPOT its steps' mean, tokens/s = (N + M) /
//! end-to-end as llama-bench counts it.

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

/// The generate kind.
pub struct Generate;

/// `[scenarios.generate]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateEntry {
    /// Prompt lengths (default `[512]`).
    pub prompt_tokens: Option<Spanned<Vec<i64>>>,
    /// New tokens, at least 2 (default `[128]`); one case per prompt and count.
    pub new_tokens: Option<Spanned<Vec<i64>>>,
    /// A text whose first tokens are the prompt (default: seeded random ids).
    pub prompt_file: Option<Spanned<String>>,
    /// The lists `--quick` runs (default: the smallest of each).
    pub quick: Option<Spanned<QuickEntry>>,
}

impl ScenarioKind for Generate {
    type Entry = GenerateEntry;
    type Spec = GenerationSpec;
    type Case = GenerationCase;
    type Raw = GenerationRaw;

    const EXAMPLE: &'static str = "[scenarios.generate] with prompt_tokens = [512]";
    const NEEDS: Capability = Capability::Generation;

    fn validate(
        &self,
        entry: &Spanned<GenerateEntry>,
        at: &str,
        checker: &mut Checker,
        _settings: &Settings,
    ) -> Option<GenerationSpec> {
        let e = entry.get_ref();
        let prompt_tokens = generation::list(
            checker,
            &format!("{at}.prompt_tokens"),
            &e.prompt_tokens,
            1,
            &[512],
        );
        let new_tokens =
            generation::list(checker, &format!("{at}.new_tokens"), &e.new_tokens, 2, &[128]);
        let quick = generation::quick_lists(checker, at, &e.quick, [Some(1), Some(2), None]);
        let prompt_file = generation::prompt_file(checker, at, &e.prompt_file);
        Some(GenerationSpec {
            prompt_tokens: prompt_tokens?,
            new_tokens: new_tokens?,
            depth: Vec::new(),
            prompt_file: prompt_file?,
            quick: quick?,
        })
    }

    /// One case per prompt length and new-token count: `pp512+tg128/b1`.
    fn expand(&self, spec: &GenerationSpec) -> Vec<Cell<GenerationCase>> {
        let mut out = Vec::new();
        for &prompt in &spec.prompt_tokens {
            for &new_tokens in &spec.new_tokens {
                let test = LlmTest::Generate { prompt, new_tokens };
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
        (most(&spec.prompt_tokens) + most(&spec.new_tokens)).saturating_sub(1)
    }

    fn prompt_file(&self, spec: &GenerationSpec) -> Option<(PathBuf, usize)> {
        generation::prompt_need(spec, &spec.prompt_tokens)
    }

    generation::shared_methods!(ScenarioRecord::Generate);
}
