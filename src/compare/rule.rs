//! The rule: a verdict from a change's interval, its p-value and the metric's threshold.

use serde::Serialize;

use super::Better;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    // Declared from best to worst news: a case's verdict is the maximum of its metrics'.
    Unchanged,
    Improved,
    Inconclusive,
    Regressed,
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::Unchanged => "unchanged",
            Verdict::Regressed => "regressed",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// Whether a change is relative to the baseline or a difference in percentage points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Relative,
    Points,
}

/// The rule of the `compare` module documentation, on a change's interval `ci` (relative, or points).
pub fn decide(
    better: Better,
    ci: [f64; 2],
    p: f64,
    alpha: f64,
    threshold: f64,
    kind: ChangeKind,
) -> (Verdict, String) {
    // `worse` is the change signed so that positive is bad news.
    let [lo, hi] = match better {
        Better::Lower => ci,
        Better::Higher => [-ci[1], -ci[0]],
    };
    let t = match kind {
        ChangeKind::Relative => format!("{}%", trim(100.0 * threshold)),
        ChangeKind::Points => format!("{} points", trim(threshold)),
    };
    let significant = p < alpha;
    let exact = ci[0] == ci[1];
    if significant && lo > threshold {
        let why = if exact {
            format!("worse by more than {t}")
        } else {
            format!("significant (p < {alpha}) and the whole interval is worse than {t}")
        };
        return (Verdict::Regressed, why);
    }
    if significant && hi < -threshold {
        let why = if exact {
            format!("better by more than {t}")
        } else {
            format!("significant (p < {alpha}) and the whole interval is better than {t}")
        };
        return (Verdict::Improved, why);
    }
    if lo >= -threshold && hi <= threshold {
        let why = if exact {
            format!("within {t}")
        } else if significant {
            format!("a real change, but the whole interval is within {t}")
        } else {
            format!("no significant change; the interval is within {t}")
        };
        return (Verdict::Unchanged, why);
    }
    let why = if significant {
        format!(
            "significant (p < {alpha}), but the interval straddles {t}: measure longer or re-run"
        )
    } else {
        format!("not significant, and the interval reaches beyond {t}: too noisy to tell")
    };
    (Verdict::Inconclusive, why)
}

/// `5` rather than `5.000`, `2.5` rather than `2.500`.
pub(super) fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
