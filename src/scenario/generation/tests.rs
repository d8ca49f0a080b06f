use super::*;
use crate::scenario::{Decode, Generate, ScenarioKind};
use crate::schema::{LatencyMs, Settings};

fn checked<K: ScenarioKind>(kind: K, text: &str) -> (Option<K::Spec>, Vec<String>) {
    let entry: Spanned<K::Entry> = toml::from_str(text).unwrap();
    let mut checker = Checker::new(text);
    let spec = kind.validate(&entry, "scenarios.kind", &mut checker, &Settings::default());
    let problems = checker.problems().iter().map(|p| p.to_string()).collect();
    (spec, problems)
}

#[test]
fn lists_expand_into_cases_sorted_without_repeats() {
    let (spec, problems) = checked(Decode, "new_tokens = [128, 64, 64]\ndepth = [1024, 0]\n");
    assert!(problems.is_empty(), "{problems:?}");
    let spec = spec.unwrap();
    assert_eq!(
        (spec.new_tokens.clone(), spec.depth.clone()),
        (vec![64, 128], vec![0, 1024])
    );
    let ids: Vec<String> = Decode
        .expand(&spec)
        .into_iter()
        .map(|c| c.id_part)
        .collect();
    assert_eq!(
        ids,
        ["tg64/b1", "tg64@d1024/b1", "tg128/b1", "tg128@d1024/b1"]
    );
    assert_eq!(Decode.context_tokens(&spec), 1024 + 128);
}

#[test]
fn quick_takes_the_quick_lists_or_each_smallest_value() {
    let (spec, _) = checked(
        Generate,
        "prompt_tokens = [128, 512]\nnew_tokens = [32, 128]\nquick = { prompt_tokens = [16] }\n",
    );
    let quick = spec.unwrap().quick();
    assert_eq!(
        (quick.prompt_tokens, quick.new_tokens),
        (vec![16], vec![32])
    );
}

#[test]
fn bad_lists_are_problems_naming_the_field() {
    let (spec, problems) = checked(Generate, "prompt_tokens = [0]\nnew_tokens = [1]\n");
    assert!(spec.is_none());
    let all = problems.join("\n");
    assert!(all.contains("scenarios.kind.prompt_tokens"), "{all}");
    assert!(all.contains("scenarios.kind.new_tokens"), "{all}");
    let (_, problems) = checked(Decode, "quick = { prompt_tokens = [8] }\n");
    assert!(
        problems.join("\n").contains("does not apply"),
        "{problems:?}"
    );
}

/// A generate case's TPOT is each repetition's mean decode step; tokens/s counts prompt and
/// new tokens over each repetition's end-to-end time.
#[test]
fn assemble_derives_tpot_and_tokens_per_second_from_the_raw_record() {
    let case = GenerationCase {
        test: LlmTest::Generate {
            prompt: 4,
            new_tokens: 3,
        },
        prompt_file: None,
    };
    let settings = Settings::default();
    let mut result =
        crate::compare::tests::case("c", vec![10.0, 20.0], crate::schema::CaseStatus::Ok);
    let summary = stats::summarize(&[10.0, 20.0], 200, 1).unwrap();
    result.latency_ms = Some(LatencyMs {
        samples: vec![10.0, 20.0],
        summary,
    });
    let raw = GenerationRaw {
        ttft_ns: vec![4_000_000, 8_000_000],
        // Two steps a repetition (new_tokens - 1).
        step_ns: vec![2_000_000, 4_000_000, 5_000_000, 7_000_000],
        generated: vec![1, 2, 3],
        prompt: "ids".into(),
        kv_cache_bytes: 6 * 512,
        rss_after_context_bytes: None,
    };
    let info = assemble(&case, &raw, &result, &settings);
    let tpot = info.tpot_ms.unwrap();
    assert_eq!(tpot.samples, vec![3.0, 6.0]);
    let rate = info.tokens_per_s.unwrap();
    assert_eq!(rate.per_repetition, vec![700.0, 350.0]);
    assert_eq!(rate.mean, 525.0);
    assert!(rate.mean_ci.is_some());
    assert_eq!(info.ttft_ms.unwrap().samples, vec![4.0, 8.0]);
    assert_eq!(info.itl_ms.unwrap().samples.len(), 4);
    assert_eq!(info.kv_cache.unwrap().context_tokens, 6);
    assert_eq!(info.repetitions, 2);
}
