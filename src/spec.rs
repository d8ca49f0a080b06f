//! The suite-validation toolkit: a `Problem` located at file:line:column, the line index
//! that turns a TOML span into that location, the messages and hints for serde's errors, and
//! a `Checker` that collects a file's problems while checking its spanned values.
//! It imports nothing of ours, so whatever reads a TOML table (the suite, and the tables it
//! hands to other modules) reports its problems the same way, without importing `suite`.

use std::fmt;
use std::ops::Range;

use toml::Spanned;

// The longest duration a setting may give: the run-file rules use the same bound.
use crate::schema::validate::MAX_SECONDS;

/// The largest value `positive_number` accepts (rates, milliseconds, seconds): beyond it no
/// setting means anything, and time conversions would overflow.
pub const MAX_NUMBER: f64 = 1e9;

/// One thing wrong with a TOML file (a suite), located as precisely as the parser allows.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub field: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
}

/// `LINE:COLUMN: `field`: message` and the hint on its own line; callers put the path first.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{l}:{c}: ")?,
            (Some(l), None) => write!(f, "{l}: ")?,
            _ => write!(f, " ")?,
        }
        write!(f, "`{}`: {}", self.field, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n      hint: {hint}")?;
        }
        Ok(())
    }
}

/// A serde error while reading the file into its types (a misspelt or missing field, a value
/// of the wrong type), located and with a hint.
pub fn syntax_problem(
    lines: &LineIndex,
    e: serde_path_to_error::Error<toml::de::Error>,
) -> Problem {
    // `Spanned` wrappers show up in the path as a private field name; drop them.
    let field = e
        .path()
        .to_string()
        .replace(".$__serde_spanned_private_value", "")
        .replace("$__serde_spanned_private_value", "");
    let inner = e.inner();
    let (line, column) = inner.span().map(|s| lines.locate(s.start)).unzip();
    // Sizes are read as i64 so that negative values get our own message; say it plainly.
    let message = inner
        .message()
        .trim()
        .replace("expected i64", "expected an integer");
    Problem {
        hint: hint_for(&message),
        field,
        line,
        column,
        message,
    }
}

/// A hint for serde's messages: the nearest allowed field for a misspelt one, and so on.
pub fn hint_for(message: &str) -> Option<String> {
    let quoted: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
    if message.starts_with("unknown field") {
        let (unknown, allowed) = quoted.split_first()?;
        let nearest = allowed
            .iter()
            .map(|a| (strsim::damerau_levenshtein(unknown, a), *a))
            .min()
            .filter(|(d, a)| *d <= 2 || a.starts_with(unknown) || unknown.starts_with(a));
        return Some(match nearest {
            Some((_, a)) => format!("did you mean `{a}`?"),
            None => format!("allowed fields here: {}", allowed.join(", ")),
        });
    }
    if message.starts_with("missing field") {
        return quoted
            .first()
            .map(|f| format!("add `{f}`; docs/suite.md lists every field"));
    }
    if message.starts_with("invalid type") {
        return Some("check the value's type against docs/suite.md".into());
    }
    None
}

/// Byte offset to one-based (line, column).
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }
    pub fn locate(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&s| s <= offset);
        (line, offset - self.starts[line - 1] + 1)
    }
}

/// The problems of one TOML file, and checks of its spanned values that record a located
/// problem when a value is out of bounds (and return `None`, or the default). Every check
/// goes on after a problem, so that one pass reports everything wrong at once.
pub struct Checker {
    lines: LineIndex,
    problems: Vec<Problem>,
    /// The file's folder: relative paths in it start there.
    base: std::path::PathBuf,
}

impl Checker {
    /// For the file whose text is `text` (spans are byte offsets into it).
    pub fn new(text: &str) -> Self {
        Checker {
            lines: LineIndex::new(text),
            problems: Vec::new(),
            base: std::path::PathBuf::from("."),
        }
    }

    /// Relative paths in the file start at `base` (the file's folder).
    pub fn with_base(mut self, base: &std::path::Path) -> Self {
        self.base = base.to_path_buf();
        self
    }

    /// The file a path field names, relative to the file's folder; a problem when it is not
    /// a file.
    pub fn file(
        &mut self,
        field: &str,
        v: &Spanned<String>,
        what: &str,
    ) -> Option<std::path::PathBuf> {
        let path = self.base.join(v.get_ref());
        if path.is_file() {
            return Some(path);
        }
        self.problem(
            field,
            v.span(),
            format!("{what} {} does not exist", path.display()),
            Some("paths are relative to the suite file"),
        );
        None
    }

    pub fn lines(&self) -> &LineIndex {
        &self.lines
    }

    /// The problems recorded so far.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Every problem recorded, in the order found.
    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    /// Records a problem located already (as [`syntax_problem`] makes them).
    pub fn record(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// Records a problem with `field` at the start of `span` (a byte range of the file).
    pub fn problem(
        &mut self,
        field: impl Into<String>,
        span: Range<usize>,
        message: impl Into<String>,
        hint: Option<&str>,
    ) {
        let (line, column) = self.lines.locate(span.start);
        self.problems.push(Problem {
            field: field.into(),
            line: Some(line),
            column: Some(column),
            message: message.into(),
            hint: hint.map(str::to_string),
        });
    }

    /// A whole number from `min` to `max`; above `max`, a problem with `hint`.
    pub fn bounded_count(
        &mut self,
        field: &str,
        v: &Spanned<i64>,
        min: i64,
        max: i64,
        hint: &str,
    ) -> Option<usize> {
        if *v.get_ref() > max {
            let message = format!("must be at most {max}, got {}", v.get_ref());
            self.problem(field, v.span(), message, Some(hint));
            return None;
        }
        self.count(field, v, min)
    }

    /// A whole number of at least `min`.
    pub fn count(&mut self, field: &str, v: &Spanned<i64>, min: i64) -> Option<usize> {
        let n = *v.get_ref();
        if n < min {
            let hint = format!("use a whole number of at least {min}");
            self.problem(
                field,
                v.span(),
                format!("must be at least {min}, got {n}"),
                Some(&hint),
            );
            return None;
        }
        Some(n as usize)
    }

    /// A list of whole numbers of at least `min` each; empty only if `allow_empty`.
    pub fn counts(
        &mut self,
        field: &str,
        v: &Spanned<Vec<i64>>,
        min: i64,
        allow_empty: bool,
    ) -> Option<Vec<usize>> {
        if v.get_ref().is_empty() && !allow_empty {
            self.problem(
                field,
                v.span(),
                "must not be empty",
                Some("list at least one value, as in `[1, 2]`"),
            );
            return None;
        }
        let mut out = Vec::new();
        for (i, &n) in v.get_ref().iter().enumerate() {
            if n < min {
                let hint = format!("every entry must be a whole number of at least {min}");
                self.problem(
                    format!("{field}[{i}]"),
                    v.span(),
                    format!("must be at least {min}, got {n}"),
                    Some(&hint),
                );
                return None;
            }
            out.push(n as usize);
        }
        Some(out)
    }

    /// A duration in seconds, more than zero (or zero, if `allow_zero`); `default` when the
    /// field is absent or wrong.
    pub fn seconds(
        &mut self,
        field: &str,
        v: &Option<Spanned<f64>>,
        default: f64,
        allow_zero: bool,
    ) -> f64 {
        let Some(v) = v else { return default };
        let x = *v.get_ref();
        if x.is_finite() && x > MAX_SECONDS {
            self.problem(
                field,
                v.span(),
                format!("must be at most {MAX_SECONDS} seconds (11.6 days), got {x:e}"),
                Some("durations are seconds, as in `0.5`"),
            );
            return default;
        }
        let ok = x.is_finite() && (x > 0.0 || (allow_zero && x == 0.0));
        if !ok {
            let bound = if allow_zero {
                "zero or more"
            } else {
                "more than zero"
            };
            self.problem(
                field,
                v.span(),
                format!("must be {bound} seconds, got {x}"),
                Some("durations are seconds, as in `0.5`"),
            );
            return default;
        }
        x
    }

    /// A fraction in (0, 1), or (0, 1] if `inclusive_high`.
    pub fn fraction(
        &mut self,
        field: &str,
        v: &Spanned<f64>,
        inclusive_high: bool,
        hint: &str,
    ) -> Option<f64> {
        let x = *v.get_ref();
        let ok = x.is_finite() && x > 0.0 && (x < 1.0 || (inclusive_high && x == 1.0));
        if !ok {
            let range = if inclusive_high {
                "more than 0 and at most 1"
            } else {
                "between 0 and 1 (exclusive)"
            };
            self.problem(
                field,
                v.span(),
                format!("must be {range}, got {x}"),
                Some(hint),
            );
            return None;
        }
        Some(x)
    }

    /// A finite number more than zero.
    pub fn positive(&mut self, field: &str, v: &Spanned<f64>, hint: &str) -> Option<f64> {
        let x = *v.get_ref();
        if !(x.is_finite() && x > 0.0) {
            self.problem(
                field,
                v.span(),
                format!("must be more than zero, got {x}"),
                Some(hint),
            );
            return None;
        }
        Some(x)
    }

    /// One of `allowed`, or a recorded problem with the nearest allowed word as a hint.
    pub fn word<'w>(
        &mut self,
        field: &str,
        v: &Spanned<String>,
        allowed: &[&'w str],
    ) -> Option<&'w str> {
        let got = v.get_ref().as_str();
        if let Some(w) = allowed.iter().find(|a| **a == got) {
            return Some(w);
        }
        let list = allowed
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let nearest = allowed
            .iter()
            .map(|a| (strsim::damerau_levenshtein(got, a), *a))
            .min()
            .filter(|(d, _)| *d <= 2);
        let hint = match nearest {
            Some((_, a)) => format!("did you mean \"{a}\"? allowed: {list}"),
            None => format!("allowed: {list}"),
        };
        let what = field.rsplit('.').next().unwrap_or(field);
        self.problem(
            field,
            v.span(),
            format!("unknown {what} `{got}`"),
            Some(&hint),
        );
        None
    }

    /// A finite number of `unit`, more than zero (or zero, if `zero_ok`).
    pub fn positive_number(
        &mut self,
        field: &str,
        v: &Spanned<f64>,
        unit: &str,
        zero_ok: bool,
    ) -> Option<f64> {
        let x = *v.get_ref();
        if x.is_finite() && x > MAX_NUMBER {
            self.problem(
                field,
                v.span(),
                format!("must be at most {MAX_NUMBER:e} {unit}, got {x}"),
                Some("no measurement setting is that large"),
            );
            return None;
        }
        if x.is_finite() && (x > 0.0 || (zero_ok && x == 0.0)) {
            return Some(x);
        }
        let bound = if zero_ok {
            "zero or more"
        } else {
            "more than zero"
        };
        let hint = format!(
            "a number of {unit}, as in `{}`",
            if zero_ok { "0" } else { "2.0" }
        );
        self.problem(
            field,
            v.span(),
            format!("must be {bound}, got {x}"),
            Some(&hint),
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` with `key = value` on its second line: the value spanned as the parser would.
    fn spanned<T>(text: &str, value: T) -> Spanned<T> {
        let start = text.find('=').unwrap() + 2;
        Spanned::new(start..text.len(), value)
    }

    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        let lines = LineIndex::new("a = 1\nbb = 2\n\nc = 3");
        assert_eq!(lines.locate(0), (1, 1));
        assert_eq!(lines.locate(4), (1, 5));
        assert_eq!(lines.locate(6), (2, 1));
        assert_eq!(lines.locate(11), (2, 6));
        assert_eq!(lines.locate(13), (3, 1));
        assert_eq!(lines.locate(14), (4, 1));
    }

    #[test]
    fn out_of_bounds_values_are_recorded_where_they_are() {
        let text = "[t]\nn = -1";
        let mut c = Checker::new(text);
        assert_eq!(c.count("t.n", &spanned(text, 3), 1), Some(3));
        assert_eq!(c.count("t.n", &spanned(text, -1), 1), None);
        assert_eq!(
            c.bounded_count("t.n", &spanned(text, 7), 1, 5, "fewer"),
            None
        );
        assert_eq!(c.counts("t.n", &spanned(text, vec![2, 0]), 1, false), None);
        assert_eq!(
            c.counts("t.n", &spanned(text, vec![]), 1, true),
            Some(vec![])
        );
        assert_eq!(c.seconds("t.n", &Some(spanned(text, 0.0)), 9.0, false), 9.0);
        assert_eq!(c.seconds("t.n", &None, 9.0, false), 9.0);
        assert_eq!(c.fraction("t.n", &spanned(text, 1.0), true, "h"), Some(1.0));
        assert_eq!(c.fraction("t.n", &spanned(text, 1.0), false, "h"), None);
        assert_eq!(
            c.positive_number("t.n", &spanned(text, 0.0), "s", true),
            Some(0.0)
        );
        assert_eq!(c.positive("t.n", &spanned(text, f64::NAN), "h"), None);
        let got: Vec<String> = c.problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            got,
            [
                "2:5: `t.n`: must be at least 1, got -1\n      hint: use a whole number of at least 1",
                "2:5: `t.n`: must be at most 5, got 7\n      hint: fewer",
                "2:5: `t.n[1]`: must be at least 1, got 0\n      hint: every entry must be a whole number of at least 1",
                "2:5: `t.n`: must be more than zero seconds, got 0\n      hint: durations are seconds, as in `0.5`",
                "2:5: `t.n`: must be between 0 and 1 (exclusive), got 1\n      hint: h",
                "2:5: `t.n`: must be more than zero, got NaN\n      hint: h",
            ]
        );
        assert_eq!(c.into_problems().len(), 6);
    }

    #[test]
    fn a_misspelt_word_or_field_gets_the_nearest_allowed_one() {
        let text = "[t]\nkind = \"ofline\"";
        let mut c = Checker::new(text);
        let got = c.word(
            "t.kind",
            &spanned(text, "ofline".to_string()),
            &["offline", "server"],
        );
        assert_eq!(got, None);
        assert_eq!(
            c.problems()[0].hint.as_deref(),
            Some("did you mean \"offline\"? allowed: \"offline\", \"server\"")
        );
        assert_eq!(
            hint_for("unknown field `batch_size`, expected one of `batch_sizes`, `samples`")
                .as_deref(),
            Some("did you mean `batch_sizes`?")
        );
        assert_eq!(hint_for("something else"), None);
    }
}
