//! The registry's consistency, and the seam itself: a made-up kind (the worked example of
//! docs/architecture.md, "Adding a scenario kind", without its run-file record) written in
//! one place against [`ScenarioKind`] alone, and driven through every step a registered kind
//! goes through: its table read with spans and validated, its cases expanded, its case
//! carried as JSON, and its measurement on a workload through `measure`'s real loops.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::*;
use crate::measure::{self, SamplerConfig};
use crate::schema::StopReason;
use crate::spec::Checker;
use crate::suite::{parse, SuiteError};

/// A suite with one table of each registered kind, written in the reverse order.
const EVERY_KIND: &str = r#"
[suite]
name = "k"
[[models]]
name = "mlp"
arch = "mlp"
input_size = 8
hidden = [4]
classes = 3
[[targets]]
device = "cpu"
[scenarios.multi_stream]
samples_per_query = [2]
[scenarios.server]
target_qps = [10]
[scenarios.offline]
batch_sizes = [4]
[scenarios.single_stream]
"#;

fn problems(text: &str) -> Vec<crate::spec::Problem> {
    match parse(Path::new("k.toml"), text) {
        Err(SuiteError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

/// Each registered name is its kind's table and the scenario its cases record, and the suite
/// keeps the kinds in registration order whatever the file's order.
#[test]
fn every_kind_is_registered_under_its_scenario_name_in_plan_order() {
    let suite = parse(Path::new("k.toml"), EVERY_KIND).unwrap();
    let kinds: Vec<&str> = suite.scenarios.iter().map(|s| s.kind().as_str()).collect();
    // The suite's model is an mlp: every kind that runs whole inferences (the language-model
    // kinds have a suite of their own, tests/llm.rs).
    let inference = &NAMES[..4];
    assert_eq!(kinds, inference);
    assert_eq!(
        NAMES,
        [
            "single_stream",
            "offline",
            "server",
            "multi_stream",
            "prefill",
            "decode",
            "generate",
            "llm_server"
        ]
    );
    let cases = crate::plan::expand(&suite, &suite.settings);
    let order: Vec<&str> = cases.iter().map(|c| c.scenario.kind().as_str()).collect();
    assert_eq!(order, inference);
    for c in &cases {
        assert!(
            c.id.contains(&format!("/{}/", c.scenario.kind())),
            "{}",
            c.id
        );
    }
}

/// An unknown table lists the registered kinds, and no table at all gives each kind's
/// example in the hint.
#[test]
fn an_unknown_or_missing_scenario_names_the_registered_kinds() {
    let text = EVERY_KIND.replace("[scenarios.single_stream]", "[scenarios.single_strem]");
    let p = &problems(&text)[0];
    let listed = NAMES
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    assert!(p.message.contains(&listed), "{p}");
    assert_eq!(p.hint.as_deref(), Some("did you mean `single_stream`?"));

    let start = text.find("[scenarios.").unwrap();
    let none = format!("{}[scenarios]\n", &text[..start]);
    let p = &problems(&none)[0];
    assert_eq!(
        (p.field.as_str(), p.message.as_str()),
        ("scenarios", "no scenario")
    );
    assert_eq!(
        p.hint.as_deref(),
        Some("add [scenarios.single_stream], [scenarios.offline] with batch_sizes = [1, 8], [scenarios.server], [scenarios.multi_stream], [scenarios.prefill] with prompt_tokens = [128, 512], [scenarios.decode] with new_tokens = [128], [scenarios.generate] with prompt_tokens = [512] or [scenarios.llm_server] with find_max_qps = { ttft_p99_ms = 2000, tpot_p99_ms = 100 }")
    );
}

// --- A made-up kind, written against the trait alone ---

/// `repeat`: a fixed number of back-to-back inferences at each batch size, no stopping
/// rule (llama-bench's repetitions).
struct Repeat;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepeatEntry {
    batch_sizes: Spanned<Vec<i64>>,
    repetitions: Option<Spanned<i64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RepeatSpec {
    batch_sizes: Vec<usize>,
    repetitions: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RepeatCase {
    repetitions: usize,
}

impl ScenarioKind for Repeat {
    type Entry = RepeatEntry;
    type Spec = RepeatSpec;
    type Case = RepeatCase;
    type Raw = ();

    const EXAMPLE: &'static str = "[scenarios.repeat] with batch_sizes = [1]";

    fn validate(
        &self,
        entry: &Spanned<RepeatEntry>,
        at: &str,
        checker: &mut Checker,
        _settings: &Settings,
    ) -> Option<RepeatSpec> {
        let e = entry.get_ref();
        let sizes = checker.counts(&format!("{at}.batch_sizes"), &e.batch_sizes, 1, false);
        let repetitions = match &e.repetitions {
            None => Some(10),
            Some(v) => checker.count(&format!("{at}.repetitions"), v, 1),
        };
        Some(RepeatSpec {
            batch_sizes: sizes?,
            repetitions: repetitions?,
        })
    }

    fn expand(&self, spec: &RepeatSpec) -> Vec<Cell<RepeatCase>> {
        spec.batch_sizes
            .iter()
            .map(|&b| Cell {
                id_part: format!("b{b}"),
                batch_size: b,
                case: RepeatCase {
                    repetitions: spec.repetitions,
                },
            })
            .collect()
    }

    fn measure<W: Driven>(
        &self,
        case: &RepeatCase,
        pipeline: &mut W,
        cfg: &SamplerConfig,
        observer: &mut dyn Observer,
    ) -> Result<Measured<()>, <W as Workload>::Error> {
        Ok(Measured {
            sampled: measure::sample_queries(pipeline, cfg, case.repetitions, observer)?,
            raw: None,
        })
    }
}

/// `[scenarios.repeat]` of `text`, with spans into `text` (as the suite's parser keeps them).
fn repeat_table(text: &str) -> Spanned<RepeatEntry> {
    #[derive(Deserialize)]
    struct File {
        scenarios: Tables,
    }
    #[derive(Deserialize)]
    struct Tables {
        repeat: Spanned<RepeatEntry>,
    }
    toml::from_str::<File>(text).unwrap().scenarios.repeat
}

/// A pipeline stand-in: counts the inferences (every stage of one iteration, or one batch).
#[derive(Default)]
struct Counting {
    stages_run: usize,
    batches: BTreeSet<usize>,
}

impl Workload for Counting {
    type Error = String;
    fn run_stage(&mut self, _stage: usize) -> Result<(), String> {
        self.stages_run += 1;
        std::hint::black_box(self.stages_run);
        Ok(())
    }
}

impl BatchWorkload for Counting {
    type Error = String;
    fn run_batch(&mut self, k: usize) -> Result<(), String> {
        self.batches.insert(k);
        Ok(())
    }
}

impl Driven for Counting {}

fn quick() -> SamplerConfig {
    SamplerConfig {
        warmup: Duration::from_millis(1),
        max_warmup: Duration::from_millis(5),
        warmup_tolerance: 1.0,
        min_time: Duration::from_millis(1),
        min_iterations: 1,
        max_time: Duration::from_millis(50),
        max_noise: 1.0,
        max_samples: 10_000,
        seed: 1,
        budget: None,
    }
}

/// The made-up kind goes through every step of a registered one: its table validated with
/// locations, its cases expanded, its case carried as JSON, its measurement run on a
/// workload by `measure`, exactly `repetitions` samples.
#[test]
fn a_kind_written_against_the_trait_alone_runs_every_step() {
    let text = "[scenarios.repeat]\nbatch_sizes = [1, 4]\nrepetitions = 0\n";
    let mut checker = Checker::new(text);
    let table = repeat_table(text);
    let settings = Settings::default();
    let at = "scenarios.repeat";
    assert_eq!(Repeat.validate(&table, at, &mut checker, &settings), None);
    let found: Vec<String> = checker.problems().iter().map(|p| p.to_string()).collect();
    assert_eq!(
        found,
        ["3:15: `scenarios.repeat.repetitions`: must be at least 1, got 0\n      hint: use a whole number of at least 1"]
    );

    let text = text.replace("repetitions = 0", "repetitions = 25");
    let mut checker = Checker::new(&text);
    let spec = Repeat
        .validate(&repeat_table(&text), at, &mut checker, &settings)
        .unwrap();
    assert!(checker.problems().is_empty());
    let cells = Repeat.expand(&spec);
    let ids: Vec<(&str, usize)> = cells
        .iter()
        .map(|c| (c.id_part.as_str(), c.batch_size))
        .collect();
    assert_eq!(ids, [("b1", 1), ("b4", 4)]);
    assert_eq!(Repeat.input_batches(&cells[1].case, 4), [4]);
    assert!(!Repeat.single_process());

    // To the worker and back, as the protocol carries a case.
    let json = serde_json::to_string(&cells[1].case).unwrap();
    let case: RepeatCase = serde_json::from_str(&json).unwrap();
    let mut pipeline = Counting::default();
    let measured = Repeat
        .measure(&case, &mut pipeline, &quick(), &mut ())
        .unwrap();
    assert_eq!(measured.sampled.samples_ns.len(), 25);
    assert_eq!(measured.sampled.stop_reason, StopReason::Queries);
    let warm = measured.sampled.warmup_iterations as usize + 1;
    assert_eq!(
        pipeline.stages_run,
        warm + 25,
        "the cold start, warm-up, then 25"
    );
    assert!(pipeline.batches.is_empty());
    assert_eq!(measured.raw, None);
    assert_eq!(Repeat.record(&case), None);
}

/// The registered server kind through the same steps: every batch size prepared and run once
/// before the window, one run at the rate, its raw record carried back.
#[test]
fn the_server_kind_measures_through_the_batch_workload() {
    let text = EVERY_KIND.replace(
        "target_qps = [10]",
        "target_qps = [200]\nmax_batch = [3]\nduration_s = 0.2\ndrain_s = 0.1",
    );
    let suite = parse(Path::new("k.toml"), &text).unwrap();
    let server = suite
        .scenarios
        .iter()
        .find(|s| s.kind() == Scenario::Server)
        .unwrap();
    let cells = server.expand();
    assert_eq!(cells.len(), 1);
    assert_eq!(cells[0].id_part, "q200/b3");
    let case = &cells[0].case;
    assert_eq!(case.input_batches(3), [1, 2, 3]);
    assert!(case.single_process());
    let mut pipeline = Counting::default();
    let measured = case.measure(&mut pipeline, &quick(), &mut ()).unwrap();
    assert!(measured.sampled.samples_ns.is_empty());
    assert!(pipeline.batches.contains(&2) && pipeline.batches.contains(&3));
    let Some(ScenarioRaw::Server(raw)) = &measured.raw else {
        panic!("no server record: {:?}", measured.raw);
    };
    assert_eq!((raw.probes.len(), raw.chosen), (1, Some(0)));
    assert!(raw.probes[0].served > 0, "{:?}", raw.probes[0]);
}
