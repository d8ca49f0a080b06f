//! The suite-validation toolkit: a `Problem` located at file:line:column, the line index
//! that turns a TOML span into that location, and the messages and hints for serde's errors.
//! It imports nothing of ours, so whatever parses a TOML table (the suite, and the tables it
//! hands to other modules) can report its problems the same way.

use std::fmt;

/// One thing wrong with a suite file, located as precisely as the parser allows.
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
            .map(|f| format!("add `{f}`; the README's suite reference lists every field"));
    }
    if message.starts_with("invalid type") {
        return Some("check the value's type against the README's suite reference".into());
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
