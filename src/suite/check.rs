//! The suite's `[check]` table: thresholds and test settings of the regression check
//! (`inferbench check`, docs/check.md). Every key is optional; the defaults are below.

use toml::Spanned;

use super::schema::CheckEntry;
use super::Validator;
use crate::schema::CheckConfig;

/// A `[check]` key or `--threshold` value that is not acceptable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct CheckValueError {
    pub message: String,
    pub hint: String,
}

impl CheckConfig {
    /// Sets `key` to `value` after checking both; the same rules apply to the suite's
    /// `[check]` table and to `check --threshold KEY=VALUE`.
    pub fn set(&mut self, key: &str, value: f64) -> Result<(), CheckValueError> {
        if !CheckConfig::is_key(key) {
            return Err(unknown_key(key));
        }
        if let Some(range) = CheckConfig::out_of_range(key, value) {
            return Err(CheckValueError {
                message: format!("`{key}` must be {}, got {value}", range.bound),
                hint: range.hint.to_string(),
            });
        }
        match key {
            "latency_p50" => self.latency_p50 = value,
            "latency_p99" => self.latency_p99 = value,
            "throughput" => self.throughput = value,
            "weight_bytes" => self.weight_bytes = value,
            "peak_rss" => self.peak_rss = value,
            "energy" => self.energy = value,
            "accuracy_points" => self.accuracy_points = value,
            "f1_points" => self.f1_points = value,
            "significance" => self.significance = value,
            "min_samples" => self.min_samples = value as usize,
            "reference_band" => self.reference_band = value,
            "max_run_queue_share" => self.max_run_queue_share = value,
            "tokens_per_s" => self.tokens_per_s = value,
            "ttft" => self.ttft = value,
            "itl_p99" => self.itl_p99 = value,
            "perplexity" => self.perplexity = value,
            "kld" => self.kld = value,
            _ => unreachable!("is_key accepted it, and every check key is set above"),
        }
        Ok(())
    }

    /// Applies `KEY=VALUE` (the `check --threshold` syntax).
    pub fn set_from_str(&mut self, spec: &str) -> Result<(), CheckValueError> {
        let Some((key, value)) = spec.split_once('=') else {
            return Err(CheckValueError {
                message: format!("`{spec}` is not KEY=VALUE"),
                hint: "as in `--threshold latency_p50=0.03`".into(),
            });
        };
        let (key, value) = (key.trim(), value.trim());
        if !CheckConfig::is_key(key) {
            return Err(unknown_key(key));
        }
        let value: f64 = value.parse().map_err(|_| CheckValueError {
            message: format!("`{key}`: `{value}` is not a number"),
            hint: "as in `--threshold latency_p50=0.03`".into(),
        })?;
        self.set(key, value)
    }
}

fn unknown_key(key: &str) -> CheckValueError {
    let nearest = CheckConfig::keys()
        .map(|k| (strsim::damerau_levenshtein(key, k), k))
        .min()
        .filter(|(d, k)| *d <= 2 || k.starts_with(key) || key.starts_with(k));
    CheckValueError {
        message: format!("unknown check key `{key}`"),
        hint: match nearest {
            Some((_, k)) => format!("did you mean `{k}`?"),
            None => format!(
                "check keys: {}",
                CheckConfig::keys().collect::<Vec<_>>().join(", ")
            ),
        },
    }
}

impl Validator {
    /// The `[check]` table after defaults; bad values are recorded as problems.
    pub(super) fn check(&mut self, entry: &CheckEntry) -> CheckConfig {
        let mut out = CheckConfig::default();
        let numbers: [(&str, Option<&Spanned<f64>>); 16] = [
            ("latency_p50", entry.latency_p50.as_ref()),
            ("latency_p99", entry.latency_p99.as_ref()),
            ("throughput", entry.throughput.as_ref()),
            ("weight_bytes", entry.weight_bytes.as_ref()),
            ("peak_rss", entry.peak_rss.as_ref()),
            ("energy", entry.energy.as_ref()),
            ("accuracy_points", entry.accuracy_points.as_ref()),
            ("f1_points", entry.f1_points.as_ref()),
            ("significance", entry.significance.as_ref()),
            ("reference_band", entry.reference_band.as_ref()),
            ("max_run_queue_share", entry.max_run_queue_share.as_ref()),
            ("tokens_per_s", entry.tokens_per_s.as_ref()),
            ("ttft", entry.ttft.as_ref()),
            ("itl_p99", entry.itl_p99.as_ref()),
            ("perplexity", entry.perplexity.as_ref()),
            ("kld", entry.kld.as_ref()),
        ];
        for (key, v) in numbers {
            let Some(v) = v else { continue };
            if let Err(e) = out.set(key, *v.get_ref()) {
                self.problem(format!("check.{key}"), v.span(), e.message, Some(&e.hint));
            }
        }
        if let Some(v) = &entry.min_samples {
            if let Err(e) = out.set("min_samples", *v.get_ref() as f64) {
                self.problem("check.min_samples", v.span(), e.message, Some(&e.hint));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_checks_keys_and_ranges() {
        let mut c = CheckConfig::default();
        c.set_from_str("latency_p50=0.03").unwrap();
        assert_eq!(c.latency_p50, 0.03);
        c.set_from_str(" min_samples = 20 ").unwrap();
        assert_eq!(c.min_samples, 20);
        let e = c.set_from_str("latency_p5=0.1").unwrap_err();
        assert_eq!(e.message, "unknown check key `latency_p5`");
        assert_eq!(e.hint, "did you mean `latency_p50`?");
        assert!(c.set_from_str("significance=0.7").is_err());
        assert!(c.set_from_str("throughput=-0.1").is_err());
        assert!(c.set_from_str("throughput=abc").is_err());
        assert!(c.set_from_str("throughput").is_err());
        assert!(c.set_from_str("min_samples=2.5").is_err());
        // A share of the window: 0 to 1, where 1 turns the run-queue test off.
        c.set_from_str("max_run_queue_share=1").unwrap();
        assert_eq!(c.max_run_queue_share, 1.0);
        let e = c.set_from_str("max_run_queue_share=2").unwrap_err();
        assert!(e.message.contains("between 0 and 1"), "{}", e.message);
        assert_eq!(c.get("latency_p50"), Some(0.03));
        assert_eq!(c.get("nope"), None);
        assert_eq!(CheckConfig::keys().count(), 17);
        for k in CheckConfig::keys() {
            assert!(c.get(k).is_some(), "{k}");
        }
    }

    #[test]
    fn the_check_table_is_read_with_defaults_for_missing_keys() {
        let text = r#"
[suite]
name = "c"
[[models]]
name = "m"
arch = "mlp"
input_size = 8
classes = 2
[[targets]]
device = "cpu"
[scenarios.single_stream]
[check]
latency_p50 = 0.03
weight_bytes = 0
min_samples = 50
max_run_queue_share = 0.05
"#;
        let suite = crate::suite::parse(std::path::Path::new("c.toml"), text).unwrap();
        let want = CheckConfig {
            latency_p50: 0.03,
            min_samples: 50,
            max_run_queue_share: 0.05,
            ..CheckConfig::default()
        };
        assert_eq!(suite.check, want);
        let no_table = text.split("[check]").next().unwrap();
        let suite = crate::suite::parse(std::path::Path::new("c.toml"), no_table).unwrap();
        assert_eq!(suite.check, CheckConfig::default());
    }
}
