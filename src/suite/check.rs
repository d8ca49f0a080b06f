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

/// How a key's value is read and bounded.
#[derive(Clone, Copy)]
enum Kind {
    Relative,
    Points,
    Significance,
    Count,
}

const KEYS: &[(&str, Kind)] = &[
    ("latency_p50", Kind::Relative),
    ("latency_p99", Kind::Relative),
    ("throughput", Kind::Relative),
    ("weight_bytes", Kind::Relative),
    ("peak_rss", Kind::Relative),
    ("energy", Kind::Relative),
    ("accuracy_points", Kind::Points),
    ("f1_points", Kind::Points),
    ("significance", Kind::Significance),
    ("min_samples", Kind::Count),
    ("reference_band", Kind::Relative),
];

impl CheckConfig {
    /// Every key of the `[check]` table, as written in the suite and after `--threshold`.
    pub fn keys() -> impl Iterator<Item = &'static str> {
        KEYS.iter().map(|(k, _)| *k)
    }

    /// The value of `key` (as a number), if `key` exists.
    pub fn get(&self, key: &str) -> Option<f64> {
        Some(match key {
            "latency_p50" => self.latency_p50,
            "latency_p99" => self.latency_p99,
            "throughput" => self.throughput,
            "weight_bytes" => self.weight_bytes,
            "peak_rss" => self.peak_rss,
            "energy" => self.energy,
            "accuracy_points" => self.accuracy_points,
            "f1_points" => self.f1_points,
            "significance" => self.significance,
            "min_samples" => self.min_samples as f64,
            "reference_band" => self.reference_band,
            _ => return None,
        })
    }

    /// Sets `key` to `value` after checking both; the same rules apply to the suite's
    /// `[check]` table and to `check --threshold KEY=VALUE`.
    pub fn set(&mut self, key: &str, value: f64) -> Result<(), CheckValueError> {
        let Some(&(_, kind)) = KEYS.iter().find(|(k, _)| *k == key) else {
            return Err(unknown_key(key));
        };
        let bad = |bound: &str, hint: &str| CheckValueError {
            message: format!("`{key}` must be {bound}, got {value}"),
            hint: hint.to_string(),
        };
        let ok = value.is_finite()
            && match kind {
                Kind::Relative => (0.0..=10.0).contains(&value),
                Kind::Points => (0.0..=100.0).contains(&value),
                Kind::Significance => value > 0.0 && value < 0.5,
                Kind::Count => value >= 2.0 && value.fract() == 0.0,
            };
        if !ok {
            return Err(match kind {
                Kind::Relative => bad(
                    "a fraction between 0 and 10",
                    "relative thresholds are fractions of the baseline: 0.05 means 5%",
                ),
                Kind::Points => bad(
                    "between 0 and 100 percentage points",
                    "quality thresholds are absolute drops in points: 1.0 means 1 point",
                ),
                Kind::Significance => bad(
                    "between 0 and 0.5 (exclusive)",
                    "it is the tests' significance level: 0.01 means 1%",
                ),
                Kind::Count => bad(
                    "a whole number of at least 2",
                    "it is the fewest latency samples per case a verdict needs, as in 10",
                ),
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
            _ => unreachable!("every key of KEYS is handled"),
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
        if !KEYS.iter().any(|(k, _)| *k == key) {
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
    let nearest = KEYS
        .iter()
        .map(|(k, _)| (strsim::damerau_levenshtein(key, k), *k))
        .min()
        .filter(|(d, k)| *d <= 2 || k.starts_with(key) || key.starts_with(k));
    CheckValueError {
        message: format!("unknown check key `{key}`"),
        hint: match nearest {
            Some((_, k)) => format!("did you mean `{k}`?"),
            None => format!(
                "check keys: {}",
                KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
            ),
        },
    }
}

impl Validator {
    /// The `[check]` table after defaults; bad values are recorded as problems.
    pub(super) fn check(&mut self, entry: &CheckEntry) -> CheckConfig {
        let mut out = CheckConfig::default();
        let numbers: [(&str, Option<&Spanned<f64>>); 10] = [
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
        assert_eq!(c.get("latency_p50"), Some(0.03));
        assert_eq!(c.get("nope"), None);
        assert_eq!(CheckConfig::keys().count(), KEYS.len());
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
"#;
        let suite = crate::suite::parse(std::path::Path::new("c.toml"), text).unwrap();
        let want = CheckConfig {
            latency_p50: 0.03,
            min_samples: 50,
            ..CheckConfig::default()
        };
        assert_eq!(suite.check, want);
        let no_table = text.split("[check]").next().unwrap();
        let suite = crate::suite::parse(std::path::Path::new("c.toml"), no_table).unwrap();
        assert_eq!(suite.check, CheckConfig::default());
    }
}
