//! Which models run which scenarios: a scenario kind needs whole inferences or token
//! generation (`model::Capability`), and a model's kind has one of them; a generation
//! scenario's longest context must fit every variant that runs it. Both are problems at the
//! scenario's table, so neither seam matches on the other's kinds.

use super::schema::SuiteFile;
use super::{ModelDef, Validator, VariantDef};
use crate::scenario::{self, ScenarioSpec};

impl Validator {
    pub(super) fn capabilities(
        &mut self,
        raw: &SuiteFile,
        models: &[ModelDef],
        variants: &[VariantDef],
        scenarios: &[ScenarioSpec],
    ) {
        for spec in scenarios {
            let kind = spec.kind();
            let field = format!("scenarios.{}", kind.as_str());
            let span = scenario::table_span(&raw.scenarios, kind).unwrap_or(raw.scenarios.span());
            let needs = spec.needs();
            let mut refused = false;
            for m in models
                .iter()
                .filter(|m| m.arch.kind().capability() != needs)
            {
                let info = m.arch.info();
                let other = m.arch.kind().capability();
                self.problem(
                    &field,
                    span.clone(),
                    format!(
                        "`{kind}` runs {}; model `{}` is {}, one of the {}",
                        needs.models(),
                        m.name,
                        info.a(),
                        other.models()
                    ),
                    Some(&format!(
                        "remove [scenarios.{kind}], or put model `{}` in a suite of its own",
                        m.name
                    )),
                );
                refused = true;
            }
            if refused {
                continue;
            }
            if let Some((file, needed)) = spec.prompt_file() {
                for m in models {
                    if let Err(problem) = m.arch.kind().check_prompt_file(&m.weights, &file, needed)
                    {
                        let hint = "a prompt file is a text (tokenized by the model's GGUF tokenizer) or a 1-D .npy of token ids with its provenance .json beside it";
                        self.problem(
                            format!("{field}.prompt_file"),
                            span.clone(),
                            problem,
                            Some(hint),
                        );
                    }
                }
            }
            let context = spec.context_tokens();
            if context == 0 {
                continue;
            }
            let mut seen: Vec<(&str, usize)> = Vec::new();
            for v in variants {
                let Some(max) = v.arch.kind().max_context() else {
                    continue;
                };
                if context <= max || seen.contains(&(v.model.as_str(), max)) {
                    continue;
                }
                seen.push((v.model.as_str(), max));
                self.problem(
                    &field,
                    span.clone(),
                    format!(
                        "its longest case holds a context of {context} tokens, longer than variant `{}` allows: {max}",
                        v.id()
                    ),
                    Some(&format!(
                        "keep prompt_tokens + new_tokens (generate: minus 1) and depth + new_tokens within {max}"
                    )),
                );
            }
        }
    }
}
