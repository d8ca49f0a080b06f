//! The terminal display while variants build and cases run (indicatif bars on a
//! terminal, plain lines in CI logs).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::tables::fmt_ms;
use crate::measure::{Phase, Progress};
use crate::plan::Case;
use crate::runner::RunObserver;
use crate::schema::CaseResult;
use crate::variant::{BuildObserver, BuiltVariant};

/// The build step's progress: one line per variant on stderr.
pub(super) struct BuildDisplay;

impl BuildObserver for BuildDisplay {
    fn data_loaded(&mut self, d: &crate::data::Dataset) {
        let [h, w, c] = d.hwc;
        eprintln!(
            "data: {} ({} samples, {h}x{w}x{c}, {} classes; {} train / {} test)",
            d.name,
            d.labels.len(),
            d.classes,
            d.train.len(),
            d.test.len()
        );
    }
    fn building(&mut self, id: &str, recipe: &str) {
        eprintln!("building {id}: {recipe}");
    }
    fn built(&mut self, v: &BuiltVariant, seconds: f64) {
        let how = match (&v.error, &v.model_info.artifact) {
            (Some(e), _) => format!("FAILED: {e}"),
            (None, Some(a)) if a.cache_hit => {
                format!("cached artifact {}", a.key.get(..12).unwrap_or(""))
            }
            (None, Some(a)) => format!(
                "built in {seconds:.1} s, artifact {}",
                a.key.get(..12).unwrap_or("")
            ),
            (None, None) => "ready".to_string(),
        };
        let acc = v
            .quality
            .as_ref()
            .map(|q| format!(", test accuracy {:.4}", q.accuracy))
            .unwrap_or_default();
        let ppl = v
            .llm_quality
            .as_ref()
            .map(|q| {
                let kld = q
                    .kld
                    .as_ref()
                    .map(|k| format!(", KLD {:.5}", k.mean))
                    .unwrap_or_default();
                format!(", PPL {:.4}{kld} ({:.1} s)", q.perplexity, q.seconds)
            })
            .unwrap_or_default();
        eprintln!("  {}: {how}{acc}{ppl}", v.id);
    }
    fn scoring(&mut self, model: &str, what: &str) {
        eprintln!("scoring {model}: {what}");
    }
}

/// indicatif bars on a terminal; one plain line per finished case otherwise (CI logs).
pub(super) struct ProgressDisplay {
    multi: MultiProgress,
    overall: ProgressBar,
    current: Option<ProgressBar>,
    plain: bool,
    total: usize,
}

impl ProgressDisplay {
    pub(super) fn new() -> Self {
        let plain = !std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if plain {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        });
        ProgressDisplay {
            multi,
            overall: ProgressBar::hidden(),
            current: None,
            plain,
            total: 0,
        }
    }

    pub(super) fn clear(&self) {
        let _ = self.multi.clear();
    }
}

impl RunObserver for ProgressDisplay {
    fn note(&mut self, message: &str) {
        if self.plain {
            eprintln!("{message}");
        } else {
            let _ = self.multi.println(message);
        }
    }

    fn planned(&mut self, cases: &[Case], already_done: usize) {
        self.total = cases.len();
        self.overall = self.multi.add(ProgressBar::new(cases.len() as u64));
        self.overall.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} cases, elapsed {elapsed}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        self.overall.set_prefix("run");
        self.overall.set_position(already_done as u64);
    }

    fn case_started(&mut self, _index: usize, case: &Case, process: usize, of: usize) {
        let bar = self
            .multi
            .insert_before(&self.overall, ProgressBar::new(1000));
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:<44} [{bar:20}] {msg} (eta {eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(if of > 1 {
            format!("{} [{process}/{of}]", case.id)
        } else {
            case.id.clone()
        });
        bar.set_message("building model");
        bar.enable_steady_tick(Duration::from_millis(120));
        self.current = Some(bar);
    }

    fn case_progress(&mut self, _index: usize, _case: &Case, p: &Progress) {
        let Some(bar) = &self.current else { return };
        bar.set_length((p.budget_s * 1000.0).max(1.0) as u64);
        bar.set_position((p.elapsed_s * 1000.0) as u64);
        let msg = match (p.phase, p.noise) {
            (Phase::Warmup, _) => format!("warm-up, {} it", p.iterations),
            (Phase::Sampling, Some(n)) => format!("{} it, noise ±{:.1}%", p.iterations, n * 100.0),
            (Phase::Sampling, None) => format!("{} it", p.iterations),
        };
        bar.set_message(msg);
    }

    fn process_finished(&mut self, _index: usize, _case: &Case, _process: usize, _of: usize) {
        if let Some(bar) = self.current.take() {
            bar.finish_and_clear();
        }
    }

    fn case_finished(&mut self, index: usize, case: &Case, result: &CaseResult) {
        let p50 = result
            .latency_ms
            .as_ref()
            .map(|l| format!(" p50 {} ms", fmt_ms(l.summary.p50)))
            .unwrap_or_default();
        let why = result
            .error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        let line = format!("{}{p50}{why}", result.status.as_str());
        if let Some(bar) = self.current.take() {
            bar.finish_with_message(line.clone());
        }
        self.overall.inc(1);
        if self.plain {
            eprintln!("[{}/{}] {}: {line}", index + 1, self.total, case.id);
        }
    }
}
