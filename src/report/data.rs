//! What a report is drawn from: the runs, their cases, each case's quality figures in a plain
//! form, and the selections every chart shares (headline case per variant and target, runs'
//! comparability). Plain data, no I/O.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::schema::{CaseResult, CaseStatus, RunResult, Scenario};

/// One run file to show, with the short label that names it in charts and tables.
#[derive(Debug, Clone)]
pub struct RunInput {
    /// `A`, `B`, ... when several runs are shown; shown beside every series name then.
    pub label: String,
    /// Where the run was read from, as given (for the page header).
    pub source: String,
    pub run: RunResult,
}

/// The quality and size figures a report draws, in a plain form of its own: the report does not
/// depend on how the run file stores them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QualityView {
    /// What was scored, as in `digits: test split, 360 samples`.
    pub dataset: Option<String>,
    /// Top-1 accuracy on the test split, 0..1.
    pub accuracy: Option<f64>,
    pub f1_macro: Option<f64>,
    /// Fidelity to the reference variant: share of samples whose top-1 class matches, 0..1.
    pub top1_agreement: Option<f64>,
    pub mean_cosine: Option<f64>,
    /// The variant fidelity is measured against (normally the model's baseline).
    pub fidelity_reference: Option<String>,
    /// Rows are true classes, columns predicted classes.
    pub confusion: Option<Vec<Vec<u64>>>,
    /// Weight elements that are not exactly zero.
    pub params_nonzero: Option<u64>,
    /// Baseline weight bytes / this variant's weight bytes, as recorded by the run.
    pub compression_rate: Option<f64>,
}

/// Which quality figure a chart plots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreKind {
    Accuracy,
    Top1Agreement,
}

impl ScoreKind {
    pub fn axis_label(&self) -> &'static str {
        match self {
            ScoreKind::Accuracy => "accuracy (%)",
            ScoreKind::Top1Agreement => "top-1 agreement with baseline (%)",
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            ScoreKind::Accuracy => "accuracy",
            ScoreKind::Top1Agreement => "fidelity (top-1 agreement)",
        }
    }
    pub fn of(&self, q: &QualityView) -> Option<f64> {
        match self {
            ScoreKind::Accuracy => q.accuracy,
            ScoreKind::Top1Agreement => q.top1_agreement,
        }
    }
}

/// The quality and size figures of a case, for the report: issue #3's `CaseResult.quality`
/// and the size fields of `ModelInfo`. Cases without them (runs with no `[data]`) give an
/// empty view, and the quality charts are omitted with a note.
pub fn quality_view(case: &CaseResult) -> QualityView {
    let q = case.quality.as_ref();
    let fidelity = q.and_then(|q| q.fidelity.as_ref());
    // Without data, the outputs' fidelity on synthetic inputs (an ONNX model's).
    let outputs = case.output_fidelity.as_ref().filter(|_| fidelity.is_none());
    QualityView {
        dataset: q
            .map(|q| q.dataset.clone())
            .or(outputs.map(|o| o.inputs.clone())),
        accuracy: q.map(|q| q.accuracy),
        f1_macro: q.map(|q| q.f1_macro),
        top1_agreement: fidelity
            .map(|f| f.top1_agreement)
            .or(outputs.and_then(|o| o.top1_agreement)),
        mean_cosine: fidelity
            .map(|f| f.mean_cosine)
            .or(outputs.map(|o| o.mean_cosine)),
        fidelity_reference: fidelity
            .map(|f| f.reference.clone())
            .or(outputs.map(|o| o.reference.clone())),
        confusion: q
            .map(|q| q.confusion_matrix.clone())
            .filter(|m| !m.is_empty()),
        params_nonzero: case.model.params_nonzero.map(|n| n as u64),
        compression_rate: case.model.compression_rate,
    }
}

/// One case of one run, with its quality view.
#[derive(Debug, Clone)]
pub struct CaseView {
    /// Index into `ReportData::runs`.
    pub run: usize,
    pub case: CaseResult,
    pub quality: QualityView,
}

impl CaseView {
    /// `<model>-<variant>`, the name cases are grouped under.
    pub fn variant(&self) -> String {
        format!("{}-{}", self.case.model_name, self.case.variant)
    }

    pub fn p50(&self) -> Option<f64> {
        self.case.latency_ms.as_ref().map(|l| l.summary.p50)
    }

    /// Millijoules per inference and whether it is an estimate.
    pub fn energy_mj(&self) -> Option<(f64, bool)> {
        self.case
            .energy
            .as_ref()
            .map(|e| (e.joules_per_inference * 1000.0, e.method.is_estimate()))
    }

    /// The target without its `-t<threads>` suffix: what a thread-scaling line holds fixed.
    pub fn target_base(&self) -> String {
        let c = &self.case;
        c.target
            .strip_suffix(&format!("-t{}", c.threads))
            .unwrap_or(&c.target)
            .to_string()
    }

    pub fn measured(&self) -> bool {
        matches!(
            self.case.status,
            CaseStatus::Ok | CaseStatus::Noisy | CaseStatus::Partial
        ) && self.p50().is_some()
    }
}

/// Everything a report is rendered from.
#[derive(Debug, Clone)]
pub struct ReportData {
    pub runs: Vec<RunInput>,
    pub cases: Vec<CaseView>,
}

impl ReportData {
    /// Cases in run order, then in each run's order; quality views from [`quality_view`].
    pub fn new(runs: Vec<RunInput>) -> Self {
        let cases = runs
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                r.run.cases.iter().map(move |c| CaseView {
                    run: i,
                    case: c.clone(),
                    quality: quality_view(c),
                })
            })
            .collect();
        ReportData { runs, cases }
    }

    /// Labels runs `A`, `B`, ... (when there are several) from their sources.
    pub fn from_runs(runs: Vec<(String, RunResult)>) -> Self {
        let several = runs.len() > 1;
        let inputs = runs
            .into_iter()
            .enumerate()
            .map(|(i, (source, run))| RunInput {
                label: if several {
                    run_letter(i)
                } else {
                    String::new()
                },
                source,
                run,
            })
            .collect();
        ReportData::new(inputs)
    }

    pub fn several_runs(&self) -> bool {
        self.runs.len() > 1
    }

    /// A name with the run's label appended when several runs are shown: `cnn-baseline [B]`.
    pub fn tag(&self, name: &str, run: usize) -> String {
        if self.several_runs() {
            format!("{name} [{}]", self.runs[run].label)
        } else {
            name.to_string()
        }
    }

    /// `<model>-<variant>` of a case, tagged with its run.
    pub fn variant_of(&self, c: &CaseView) -> String {
        self.tag(&c.variant(), c.run)
    }

    /// The case standing for each (run, variant, target) in the latency, distribution, quality
    /// and radar charts: single-stream if measured, else the smallest offline batch, else any
    /// measured case (multi-stream, then server). In case order.
    pub fn headline(&self) -> Vec<&CaseView> {
        let mut keys: Vec<(usize, String, String)> = Vec::new();
        for c in self.cases.iter().filter(|c| c.measured()) {
            let key = (c.run, c.variant(), c.case.target.clone());
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys.into_iter()
            .filter_map(|(run, variant, target)| {
                self.cases
                    .iter()
                    .filter(|c| {
                        c.measured()
                            && c.run == run
                            && c.variant() == variant
                            && c.case.target == target
                    })
                    .min_by_key(|c| (scenario_rank(c.case.scenario), c.case.batch_size))
            })
            .collect()
    }

    /// Variants in first-seen order, per run: `(run, "<model>-<variant>")`.
    pub fn variants(&self) -> Vec<(usize, String)> {
        let mut out: Vec<(usize, String)> = Vec::new();
        for c in &self.cases {
            let key = (c.run, c.variant());
            if !out.contains(&key) {
                out.push(key);
            }
        }
        out
    }

    /// Targets in first-seen order (across runs).
    pub fn targets(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in &self.cases {
            if !out.contains(&c.case.target) {
                out.push(c.case.target.clone());
            }
        }
        out
    }

    /// The quality figure the charts use: accuracy when any case has it, else top-1 agreement.
    pub fn score_kind(&self) -> Option<ScoreKind> {
        if self.cases.iter().any(|c| c.quality.accuracy.is_some()) {
            Some(ScoreKind::Accuracy)
        } else if self
            .cases
            .iter()
            .any(|c| c.quality.top1_agreement.is_some())
        {
            Some(ScoreKind::Top1Agreement)
        } else {
            None
        }
    }

    /// Why the runs should not be compared figure for figure; empty when they can be.
    pub fn comparability(&self) -> Vec<String> {
        let Some(first) = self.runs.first() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let a = &first.run;
        for other in &self.runs[1..] {
            let b = &other.run;
            let (la, lb) = (&first.label, &other.label);
            let mut differ = |what: &str, x: &str, y: &str| {
                if x != y {
                    out.push(format!("{what} differs: run {la} `{x}`, run {lb} `{y}`"));
                }
            };
            differ(
                "CPU model",
                &a.environment.cpu_model,
                &b.environment.cpu_model,
            );
            differ(
                "inferbench version",
                &a.environment.inferbench_version,
                &b.environment.inferbench_version,
            );
            differ(
                "candle version",
                &a.environment.candle_version,
                &b.environment.candle_version,
            );
            differ("suite", &a.suite.name, &b.suite.name);
            differ(
                "suite file (sha256)",
                short(&a.suite.sha256),
                short(&b.suite.sha256),
            );
            differ("`--quick`", &a.quick.to_string(), &b.quick.to_string());
            let (sa, sb) = (
                serde_json::to_value(&a.settings).unwrap_or_default(),
                serde_json::to_value(&b.settings).unwrap_or_default(),
            );
            if sa != sb {
                let keys: BTreeSet<&String> = sa
                    .as_object()
                    .into_iter()
                    .chain(sb.as_object())
                    .flat_map(|m| m.keys())
                    .filter(|k| sa.get(k.as_str()) != sb.get(k.as_str()))
                    .collect();
                let keys: Vec<&str> = keys.into_iter().map(|k| k.as_str()).collect();
                out.push(format!(
                    "settings differ between run {la} and run {lb}: {}",
                    keys.join(", ")
                ));
            }
        }
        out
    }
}

/// Which case stands for a variant on a target: single-stream, then offline, then
/// multi-stream, then server (whose latency depends on the load offered), then any other
/// scenario kind.
fn scenario_rank(scenario: Scenario) -> usize {
    const STANDS_IN: [Scenario; 4] = [
        Scenario::SingleStream,
        Scenario::Offline,
        Scenario::MultiStream,
        Scenario::Server,
    ];
    STANDS_IN
        .iter()
        .position(|s| *s == scenario)
        .unwrap_or(STANDS_IN.len())
}

/// `A`, `B`, ..., `Z`, `AA`, ...
pub fn run_letter(i: usize) -> String {
    let mut n = i;
    let mut s = String::new();
    loop {
        s.insert(0, (b'A' + (n % 26) as u8) as char);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    s
}

/// The first 12 hex digits of a hash.
pub fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// Indices of the points on the Pareto front when `cost` is to be low and `score` high: no other
/// point is at least as good on both and better on one. Sorted by cost.
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].0.is_finite() && points[i].1.is_finite())
        .collect();
    idx.sort_by(|&i, &j| {
        points[i]
            .0
            .total_cmp(&points[j].0)
            .then(points[j].1.total_cmp(&points[i].1))
    });
    let mut front = Vec::new();
    let mut best = f64::NEG_INFINITY;
    for i in idx {
        if points[i].1 > best {
            best = points[i].1;
            front.push(i);
        }
    }
    front
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_front_keeps_only_undominated_points() {
        // (latency, accuracy)
        let pts = [
            (1.0, 0.90),
            (2.0, 0.95),
            (1.5, 0.89),
            (3.0, 0.94),
            (0.5, 0.80),
        ];
        assert_eq!(pareto_front(&pts), vec![4, 0, 1]);
        // Equal cost: only the better score stays.
        assert_eq!(pareto_front(&[(1.0, 0.5), (1.0, 0.7)]), vec![1]);
        assert!(pareto_front(&[]).is_empty());
    }

    #[test]
    fn run_letters() {
        assert_eq!(run_letter(0), "A");
        assert_eq!(run_letter(25), "Z");
        assert_eq!(run_letter(26), "AA");
    }
}
