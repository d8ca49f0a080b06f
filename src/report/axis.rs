//! Coordinate types for the charts: a value axis that is linear or logarithmic (chosen from the
//! data) with readable 1-2-5 ticks, and a category axis whose ticks are the category names.

use std::ops::Range;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};

use super::format;

/// Values spanning more than this ratio get a logarithmic axis.
pub const LOG_RATIO: f64 = 20.0;

/// The largest power of ten a log axis reaches, either way.
const MAX_DECADE: f64 = 300.0;

/// A numeric axis from `lo` to `hi`, linear or logarithmic (base 10).
#[derive(Debug, Clone)]
pub struct ValueAxis {
    pub lo: f64,
    pub hi: f64,
    pub log: bool,
    /// Ticks at exactly these values (for example the batch sizes measured) instead of 1-2-5.
    pub ticks: Option<Vec<f64>>,
    /// Tick labels in binary byte units (`1.50 GiB`) instead of plain numbers.
    pub bytes: bool,
}

impl ValueAxis {
    /// An axis for bars or points whose values are `values` (all > 0 for a log axis).
    /// `zero`: a linear axis starts at 0 (bars); `headroom`: room above the largest value, as a
    /// share of the axis length (for labels drawn beside the data).
    pub fn fit(values: impl IntoIterator<Item = f64>, zero: bool, headroom: f64) -> Self {
        let vals: Vec<f64> = values
            .into_iter()
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        let min = vals.iter().copied().fold(f64::INFINITY, f64::min);
        let max = vals.iter().copied().fold(0.0, f64::max);
        if vals.is_empty() {
            return ValueAxis::linear(0.0, 1.0);
        }
        if max / min > LOG_RATIO {
            let (l, h) = (min.log10(), max.log10());
            // Start at a power of ten below the smallest value, so the shortest bar shows.
            // Within the decades an f64 holds (a hand-edited 1e-300 must not give 0).
            let lo_log = (l - 0.08 * (h - l)).floor().max(-MAX_DECADE);
            let room = (headroom + 0.05).min(0.9);
            let hi_log = (h + (h - lo_log) * room / (1.0 - room)).min(MAX_DECADE);
            ValueAxis {
                lo: 10f64.powf(lo_log),
                hi: 10f64.powf(hi_log),
                log: true,
                ticks: None,
                bytes: false,
            }
        } else {
            let lo = if zero {
                0.0
            } else {
                min - 0.1 * (max - min).max(max * 0.05)
            };
            let lo = if !zero && lo < 0.0 && min >= 0.0 {
                0.0
            } else {
                lo
            };
            let hi = max + (max - lo) * (0.06 + headroom / (1.0 - headroom));
            ValueAxis::linear(lo, hi)
        }
    }

    pub fn linear(lo: f64, hi: f64) -> Self {
        ValueAxis {
            lo,
            hi: if hi > lo { hi } else { lo + 1.0 },
            log: false,
            ticks: None,
            bytes: false,
        }
    }

    /// Axis position in [0, 1] of value `v`.
    pub fn unit(&self, v: f64) -> f64 {
        if self.log {
            let v = v.max(self.lo * 1e-3);
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    /// " (log scale)" for axis descriptions.
    pub fn scale_note(&self) -> &'static str {
        if self.log {
            ", log scale"
        } else {
            ""
        }
    }
}

/// 1-2-5 steps of a power of ten: the nicest step giving at most `max` ticks over `span`.
fn nice_step(span: f64, max: usize) -> f64 {
    let raw = span / max.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * mag >= raw {
            return m * mag;
        }
    }
    10.0 * mag
}

impl Ranged for ValueAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        // Far outside the plot is drawn at its edge's distance, not past i32's range.
        let u = self.unit(*value).clamp(-4.0, 5.0);
        let u = if u.is_nan() { 0.0 } else { u };
        limit.0 + (u * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        let max = hint.max_num_points().clamp(2, 12);
        if let Some(ticks) = &self.ticks {
            return ticks.clone();
        }
        if self.log {
            let decade = |v: f64| v.log10().clamp(-MAX_DECADE, MAX_DECADE);
            let (l, h) = (
                decade(self.lo).floor() as i32,
                decade(self.hi).ceil() as i32,
            );
            let decades = (h - l).max(1) as usize;
            let mults: &[f64] = if decades * 3 <= max {
                &[1.0, 2.0, 5.0]
            } else if decades * 2 <= max {
                &[1.0, 3.0]
            } else {
                &[1.0]
            };
            let every = decades.div_ceil(max).max(1) as i32;
            let mut out = Vec::new();
            for e in l..=h {
                if (e - l) % every != 0 {
                    continue;
                }
                for m in mults {
                    let v = m * 10f64.powi(e);
                    if v >= self.lo * 0.999 && v <= self.hi * 1.001 {
                        out.push(v);
                    }
                }
            }
            out
        } else {
            let step = nice_step(self.hi - self.lo, max);
            let mut v = (self.lo / step).ceil() * step;
            let mut out = Vec::new();
            while v <= self.hi + step * 1e-9 {
                out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
                v += step;
            }
            out
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for ValueAxis {
    fn format_ext(&self, value: &f64) -> String {
        if self.bytes {
            format::bytes(*value)
        } else {
            format::num(*value)
        }
    }
}

/// Categories at 0.5, 1.5, ... (`index + 0.5`), each labelled with its name.
#[derive(Debug, Clone)]
pub struct CategoryAxis {
    pub labels: Vec<String>,
}

impl CategoryAxis {
    pub fn new(labels: Vec<String>) -> Self {
        CategoryAxis { labels }
    }

    /// The centre of category `i`.
    pub fn center(i: usize) -> f64 {
        i as f64 + 0.5
    }
}

impl Ranged for CategoryAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let n = self.labels.len().max(1) as f64;
        limit.0 + ((value / n) * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, _hint: H) -> Vec<f64> {
        (0..self.labels.len()).map(CategoryAxis::center).collect()
    }

    fn range(&self) -> Range<f64> {
        0.0..self.labels.len().max(1) as f64
    }
}

impl ValueFormatter<f64> for CategoryAxis {
    fn format_ext(&self, value: &f64) -> String {
        let i = value.floor();
        if i < 0.0 {
            return String::new();
        }
        self.labels.get(i as usize).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_ranges_get_a_log_axis_with_decade_ticks() {
        let a = ValueAxis::fit([0.016, 0.44, 5.2], true, 0.0);
        assert!(a.log);
        assert!(a.lo <= 0.016 && a.hi >= 5.2);
        let ticks = a.key_points(10usize);
        assert!(ticks.contains(&0.1) && ticks.contains(&1.0), "{ticks:?}");
        assert!((a.unit(a.lo)).abs() < 1e-9 && (a.unit(a.hi) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn narrow_ranges_stay_linear_from_zero() {
        let a = ValueAxis::fit([2.0, 3.0, 4.0], true, 0.0);
        assert!(!a.log);
        assert_eq!(a.lo, 0.0);
        let ticks = a.key_points(6usize);
        assert_eq!(ticks[0], 0.0);
        assert!(ticks.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn a_bytes_axis_labels_its_ticks_in_binary_units() {
        let plain = ValueAxis::fit([1e6, 3e9], true, 0.0);
        let bytes = ValueAxis {
            bytes: true,
            ..plain.clone()
        };
        let gib = 1024f64.powi(3);
        assert_eq!(bytes.format_ext(&(1.5 * gib)), "1.50 GiB");
        assert_eq!(plain.format_ext(&(1.5 * gib)), format::num(1.5 * gib));
    }

    #[test]
    fn categories_are_labelled_at_their_centres() {
        let c = CategoryAxis::new(vec!["a".into(), "b".into()]);
        assert_eq!(c.key_points(5usize), vec![0.5, 1.5]);
        assert_eq!(c.format_ext(&1.5), "b");
        assert_eq!(c.map(&1.0, (0, 100)), 50);
    }
}
