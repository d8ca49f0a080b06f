//! The `[settings]` table: measurement settings after defaults.

use super::*;
use crate::schema::validate::{MAX_ITEMS, MAX_RESAMPLES};

impl Validator {
    pub(super) fn settings(&mut self, s: &SettingsEntry) -> Settings {
        let d = Settings::default();
        let mut out = Settings {
            warmup_s: self.seconds("settings.warmup_s", &s.warmup_s, d.warmup_s, true),
            min_time_s: self.seconds("settings.min_time_s", &s.min_time_s, d.min_time_s, true),
            max_time_s: self.seconds("settings.max_time_s", &s.max_time_s, d.max_time_s, false),
            case_timeout_s: self.seconds(
                "settings.case_timeout_s",
                &s.case_timeout_s,
                d.case_timeout_s,
                false,
            ),
            seed: s.seed.unwrap_or(d.seed),
            // A process's time budget; `--quick` caps it at `QUICK_BUDGET_S`.
            budget_s: s
                .budget_s
                .as_ref()
                .map(|_| self.seconds("settings.budget_s", &s.budget_s, 0.0, false)),
            ..d
        };
        self.sampling_settings(s, &mut out);
        self.process_settings(s, &mut out);
        self.warmup_settings(s, &mut out);
        if let Some(v) = &s.timed {
            if let Some(timed) = self.timed_stages(v) {
                out.timed = timed;
            }
        }
        self.energy_settings(s, &mut out);
        self.time_budget(s, &out);
        out
    }

    /// When a case stops sampling: iterations, samples, resamples, noise.
    fn sampling_settings(&mut self, s: &SettingsEntry, out: &mut Settings) {
        if let Some(v) = &s.min_iterations {
            out.min_iterations = self.count("settings.min_iterations", v, 1).unwrap_or(1) as u64;
        }
        if let Some(v) = &s.max_samples {
            out.max_samples = self
                .bounded_count(
                    "settings.max_samples",
                    v,
                    2,
                    MAX_ITEMS as i64,
                    "every sample is kept in memory and in the run file",
                )
                .unwrap_or(out.max_samples);
        }
        if let Some(v) = &s.bootstrap_resamples {
            out.bootstrap_resamples = self
                .bounded_count(
                    "settings.bootstrap_resamples",
                    v,
                    100,
                    MAX_RESAMPLES as i64,
                    "10000 resamples give intervals stable to a few parts in a thousand",
                )
                .unwrap_or(out.bootstrap_resamples);
        }
        if let Some(v) = &s.max_noise {
            let x = *v.get_ref();
            if !(x > 0.0 && x < 1.0) {
                self.problem(
                    "settings.max_noise",
                    v.span(),
                    format!("must be between 0 and 1 (exclusive), got {x}"),
                    Some(
                        "it is the median CI's half-width relative to the median: 0.02 means +/-2%",
                    ),
                );
            } else {
                out.max_noise = x;
            }
        }
    }

    /// How many processes a case gets, and the memory each may use.
    fn process_settings(&mut self, s: &SettingsEntry, out: &mut Settings) {
        if let Some(v) = &s.processes {
            let hint = "5 to 20 processes per case are enough for `check` (docs/check.md)";
            if let Some(n) = self.process_count("settings.processes", v, hint) {
                out.processes = n;
            }
        }
        if let Some(v) = &s.max_processes {
            let hint = "two to three times `processes` bounds the run's time (docs/check.md)";
            match self.process_count("settings.max_processes", v, hint) {
                Some(n) if n < out.processes => self.problem(
                    "settings.max_processes",
                    v.span(),
                    format!("must be at least `processes` ({}), got {n}", out.processes),
                    Some("it counts all processes of a case, the first `processes` included"),
                ),
                Some(n) => out.max_processes = Some(n),
                None => {}
            }
        }
        if let Some(v) = &s.max_rss_mb {
            out.max_rss_mb = self.count("settings.max_rss_mb", v, 1).map(|n| n as u64);
        }
    }

    /// How long the warm-up may run and when it is over.
    fn warmup_settings(&mut self, s: &SettingsEntry, out: &mut Settings) {
        out.max_warmup_s = self.seconds(
            "settings.max_warmup_s",
            &s.max_warmup_s,
            out.max_warmup_s,
            false,
        );
        if let Some(v) = &s.max_warmup_s {
            if out.max_warmup_s < out.warmup_s {
                self.problem(
                    "settings.max_warmup_s",
                    v.span(),
                    format!(
                        "max_warmup_s ({}) is shorter than warmup_s ({})",
                        out.max_warmup_s, out.warmup_s
                    ),
                    Some("warmup_s is the minimum warm-up, max_warmup_s the maximum"),
                );
            }
        }
        if let Some(v) = &s.warmup_tolerance {
            let x = *v.get_ref();
            if x.is_finite() && x > 0.0 {
                out.warmup_tolerance = x;
            } else {
                self.problem(
                    "settings.warmup_tolerance",
                    v.span(),
                    format!("must be more than zero, got {x}"),
                    Some("as in 0.05 (5%)"),
                );
            }
        }
    }

    /// What the energy estimate needs: the TDP, and how long idle power is measured.
    fn energy_settings(&mut self, s: &SettingsEntry, out: &mut Settings) {
        for (field, value, slot) in [
            ("settings.tdp_watts", &s.tdp_watts, &mut out.tdp_watts),
            ("settings.tdp_threads", &s.tdp_threads, &mut out.tdp_threads),
        ] {
            if let Some(v) = value {
                let x = *v.get_ref();
                if x.is_finite() && x > 0.0 {
                    *slot = Some(x);
                } else {
                    self.problem(
                        field,
                        v.span(),
                        format!("must be more than zero, got {x}"),
                        Some("as in tdp_watts = 65 (the CPU package's TDP)"),
                    );
                }
            }
        }
        out.idle_power_s = self.seconds(
            "settings.idle_power_s",
            &s.idle_power_s,
            out.idle_power_s,
            true,
        );
    }

    /// The times must fit together: min_time_s within max_time_s, and the case timeout beyond
    /// the longest warm-up plus max_time_s.
    fn time_budget(&mut self, s: &SettingsEntry, out: &Settings) {
        if let Some(min) = &s.min_time_s {
            if out.min_time_s > out.max_time_s {
                self.problem(
                    "settings.min_time_s",
                    min.span(),
                    format!(
                        "min_time_s ({}) is longer than max_time_s ({})",
                        out.min_time_s, out.max_time_s
                    ),
                    Some("raise max_time_s or lower min_time_s"),
                );
            }
        }
        let longest_warmup = out.max_warmup_s.max(out.warmup_s);
        if out.max_time_s + longest_warmup >= out.case_timeout_s {
            let span = s
                .case_timeout_s
                .as_ref()
                .or(s.max_time_s.as_ref())
                .map(|v| v.span());
            if let Some(span) = span {
                self.problem(
                    "settings.case_timeout_s",
                    span,
                    format!(
                        "case_timeout_s ({}) must exceed max_warmup_s + max_time_s ({})",
                        out.case_timeout_s,
                        longest_warmup + out.max_time_s
                    ),
                    Some("leave room for building the model, as in case_timeout_s = 120"),
                );
            }
        }
    }

    pub(super) fn timed_stages(&mut self, v: &Spanned<Vec<String>>) -> Option<Vec<Stage>> {
        const HINT: &str = "use [\"forward\"], [\"preprocess\", \"forward\"], [\"forward\", \"postprocess\"] or [\"preprocess\", \"forward\", \"postprocess\"]";
        let mut stages = Vec::new();
        for name in v.get_ref() {
            let stage = match name.as_str() {
                "preprocess" => Stage::Preprocess,
                "forward" => Stage::Forward,
                "postprocess" => Stage::Postprocess,
                other => {
                    self.problem(
                        "settings.timed",
                        v.span(),
                        format!("unknown stage `{other}`"),
                        Some(HINT),
                    );
                    return None;
                }
            };
            stages.push(stage);
        }
        let contiguous = stages.windows(2).all(|w| w[1] as u8 == w[0] as u8 + 1);
        if !stages.contains(&Stage::Forward) || !contiguous {
            self.problem(
                "settings.timed",
                v.span(),
                "the timed stages must include `forward` and be consecutive, in pipeline order",
                Some(HINT),
            );
            return None;
        }
        Some(stages)
    }
}
