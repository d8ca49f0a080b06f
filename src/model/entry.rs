//! A `[[models]]` entry as its kind reads it: the entry's own fields, each value with its
//! location in the suite file, and the checks every kind shares (a field of another kind, an
//! unknown field). Kinds read their fields into their own `#[serde(deny_unknown_fields)]`
//! struct of `toml::Spanned` values, so their problems keep file:line:column.

use std::ops::{Deref, DerefMut, Range};
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::kind::KindInfo;
use crate::spec::{hint_for, syntax_problem, Checker};

/// Some fields of a TOML table (a `[[models]]` entry, or a variant's architecture changes),
/// with their spans in the suite file.
#[derive(Debug, Clone)]
pub struct Entry<'i> {
    table: DeTable<'i>,
    /// The whole table's span: where a missing field is reported.
    span: Range<usize>,
}

impl<'i> Entry<'i> {
    /// The table `value`, or `None` when it is not a table.
    pub fn of(value: &Spanned<DeValue<'i>>) -> Option<Self> {
        match value.get_ref() {
            DeValue::Table(t) => Some(Entry {
                table: t.clone(),
                span: value.span(),
            }),
            _ => None,
        }
    }

    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.table.keys().any(|k| k.get_ref() == key)
    }

    /// Every key with its span, in the order the file has them.
    pub fn keys(&self) -> Vec<(String, Range<usize>)> {
        let mut keys: Vec<(String, Range<usize>)> = self
            .table
            .keys()
            .map(|k| (k.get_ref().to_string(), k.span()))
            .collect();
        keys.sort_by_key(|(_, span)| span.start);
        keys
    }

    /// Where the value of `key` is.
    pub fn value_span(&self, key: &str) -> Option<Range<usize>> {
        self.table
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(_, v)| v.span())
    }

    pub fn remove(&mut self, key: &str) {
        self.keep(|k| k != key);
    }

    /// The entry without `keys`.
    pub fn without(&self, keys: &[&str]) -> Self {
        let mut out = self.clone();
        out.keep(|k| !keys.contains(&k));
        out
    }

    fn keep(&mut self, keep: impl Fn(&str) -> bool) {
        self.table = std::mem::take(&mut self.table)
            .into_iter()
            .filter(|(k, _)| keep(k.get_ref()))
            .collect();
    }

    /// Every field of `changes` replaces (or adds) ours, with its own span.
    pub fn replace_from(&mut self, changes: &Entry<'i>) {
        for (k, v) in changes.table.iter() {
            self.remove(k.get_ref());
            self.table.insert(k.clone(), v.clone());
        }
    }

    /// The fields as `T` (a kind's struct of `Spanned` values). A value of the wrong type is
    /// recorded as a problem at its location, named `<at>.<field>`, and gives `None`.
    pub fn read<T: DeserializeOwned>(&self, cx: &mut EntryContext<'_>) -> Option<T> {
        let value = Spanned::new(self.span.clone(), DeValue::Table(self.table.clone()));
        match serde_path_to_error::deserialize(ValueDeserializer::from(value)) {
            Ok(t) => Some(t),
            Err(e) => {
                let mut p = syntax_problem(cx.checker.lines(), e);
                p.field = match p.field.as_str() {
                    "" | "." => cx.at.clone(),
                    f => format!("{}.{f}", cx.at),
                };
                cx.checker.record(p);
                None
            }
        }
    }
}

/// The entries of the array of tables `key` (`[[models]]`) of a parsed document, with their
/// spans.
pub fn tables<'i>(root: &DeTable<'i>, key: &str) -> Vec<Spanned<DeValue<'i>>> {
    root.iter()
        .find(|(k, _)| k.get_ref() == key)
        .and_then(|(_, v)| match v.get_ref() {
            DeValue::Array(items) => Some(items.iter().cloned().collect()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Where an entry's problems go and what they are named after.
pub struct EntryContext<'c> {
    pub checker: &'c mut Checker,
    /// `models[0]`, or `variants[2].student` for a variant's changed architecture: the start
    /// of every field path in a problem.
    pub at: String,
    /// The model's `arch` value: where problems about the entry as a whole point.
    pub arch_span: Range<usize>,
    /// The suite file's folder: relative paths in the entry start there.
    pub base: &'c Path,
}

impl EntryContext<'_> {
    /// `<at>.<name>`, a field's path in problems.
    pub fn field(&self, name: &str) -> String {
        format!("{}.{name}", self.at)
    }
}

impl Deref for EntryContext<'_> {
    type Target = Checker;
    fn deref(&self) -> &Checker {
        self.checker
    }
}

impl DerefMut for EntryContext<'_> {
    fn deref_mut(&mut self) -> &mut Checker {
        self.checker
    }
}

/// Keeps in `entry` only the fields of `kind`. A field of other kinds is a problem "`f` does
/// not apply to arch `k`" (at the entry's `arch`); any other field is unknown, a problem at
/// the field listing `expected`. Both are removed, so the kind reads only its own fields.
/// Returns whether every field was the kind's.
pub fn keep_own_fields(
    entry: &mut Entry<'_>,
    kind: &KindInfo,
    kinds: &[&KindInfo],
    expected: &[&str],
    cx: &mut EntryContext<'_>,
) -> bool {
    let mut ok = true;
    for (key, key_span) in entry.keys() {
        if kind.fields.contains(&key.as_str()) {
            continue;
        }
        let owners: Vec<&&KindInfo> = kinds
            .iter()
            .filter(|k| k.name != kind.name && k.fields.contains(&key.as_str()))
            .collect();
        match owners.as_slice() {
            [] => unknown_field(cx, &key, key_span, expected),
            owners => {
                let hint = match owners {
                    [one] => format!("it is {} field; remove it, or change `arch`", one.a()),
                    _ => "remove it, or change `arch`".to_string(),
                };
                let span = cx.arch_span.clone();
                let field = cx.field(&key);
                cx.problem(
                    field,
                    span,
                    format!("`{key}` does not apply to arch `{}`", kind.name),
                    Some(&hint),
                );
            }
        }
        entry.remove(&key);
        ok = false;
    }
    ok
}

/// Keeps in `changes` (a variant's `arch = {...}` or `student = {...}`) only the fields
/// `kind` lets a variant change; the others are problems, as in [`keep_own_fields`].
pub fn keep_overridable(
    changes: &mut Entry<'_>,
    kind: &KindInfo,
    kinds: &[&KindInfo],
    cx: &mut EntryContext<'_>,
) -> bool {
    let mut ok = true;
    for (key, key_span) in changes.keys() {
        if kind.overridable.contains(&key.as_str()) {
            continue;
        }
        let elsewhere = kinds
            .iter()
            .any(|k| k.name != kind.name && k.overridable.contains(&key.as_str()));
        if elsewhere {
            // One field named as code, several as a list: "change conv_channels, ... or dense".
            let change = match kind.overridable {
                [one] => format!("`{one}`"),
                [init @ .., last] => format!("{} or {last}", init.join(", ")),
                [] => "nothing".to_string(),
            };
            let hint = format!("the model is {}: change {change}", kind.a());
            let span = changes.value_span(&key).unwrap_or(key_span);
            let field = cx.field(&key);
            cx.problem(
                field,
                span,
                format!("`{key}` does not apply to arch `{}`", kind.name),
                Some(&hint),
            );
        } else {
            unknown_field(cx, &key, key_span, kind.overridable);
        }
        changes.remove(&key);
        ok = false;
    }
    ok
}

/// serde's message for an unknown field, with its hint.
fn unknown_field(cx: &mut EntryContext<'_>, key: &str, span: Range<usize>, expected: &[&str]) {
    let list: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
    let message = match list.as_slice() {
        [] => format!("unknown field `{key}`, there are no fields"),
        [one] => format!("unknown field `{key}`, expected {one}"),
        _ => format!("unknown field `{key}`, expected one of {}", list.join(", ")),
    };
    let hint = hint_for(&message);
    let field = cx.field(key);
    cx.problem(field, span, message, hint.as_deref());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kind::{DataKind, RecipeKind};

    const A: KindInfo = KindInfo {
        name: "a",
        article: "an",
        fields: &["width", "depth"],
        overridable: &["depth"],
        refused: &[],
        recipes: &[RecipeKind::Quantize],
        data: DataKind::Samples,
        structured: "",
    };
    const B: KindInfo = KindInfo {
        name: "b",
        article: "a",
        fields: &["height", "depth"],
        overridable: &["height"],
        refused: &[],
        recipes: &[],
        data: DataKind::Samples,
        structured: "",
    };

    fn entry(text: &str) -> Entry<'_> {
        let root = DeTable::parse(text).unwrap();
        let v = root.get_ref().iter().next().unwrap().1.clone();
        Entry::of(&v).unwrap()
    }

    /// A field of another kind, one of no kind, a value of the wrong type: each a located
    /// problem naming the field, the entry keeps only its own fields.
    #[test]
    fn foreign_unknown_and_mistyped_fields_are_located_problems() {
        let text = "[m]\narch = \"a\"\nheight = 3\nwidht = 2\nwidth = \"x\"\n";
        let mut checker = Checker::new(text);
        let mut e = entry(text).without(&["arch"]);
        let mut cx = EntryContext {
            checker: &mut checker,
            at: "models[0]".into(),
            arch_span: 11..14,
            base: Path::new("."),
        };
        assert!(!keep_own_fields(
            &mut e,
            &A,
            &[&A, &B],
            &["name", "arch", "width", "depth"],
            &mut cx
        ));
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Own {
            width: Option<Spanned<i64>>,
            depth: Option<Spanned<i64>>,
        }
        assert!(e.read::<Own>(&mut cx).is_none());
        let got: Vec<String> = checker.problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            got,
            [
                "2:8: `models[0].height`: `height` does not apply to arch `a`\n      hint: it is a `b` field; remove it, or change `arch`",
                "4:1: `models[0].widht`: unknown field `widht`, expected one of `name`, `arch`, `width`, `depth`\n      hint: did you mean `width`?",
                "5:9: `models[0].width`: invalid type: string \"x\", expected an integer\n      hint: check the value's type against docs/suite.md",
            ]
        );
    }

    #[test]
    fn overrides_keep_what_the_kind_lets_change() {
        let text = "[o]\ndepth = 2\nheight = 1\ncolour = 3\n";
        let mut checker = Checker::new(text);
        let mut changes = entry(text);
        let mut cx = EntryContext {
            checker: &mut checker,
            at: "variants[1].arch".into(),
            arch_span: 0..1,
            base: Path::new("."),
        };
        assert!(!keep_overridable(&mut changes, &A, &[&A, &B], &mut cx));
        assert_eq!(changes.keys().len(), 1);
        let got: Vec<String> = checker.problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(
            got,
            [
                "3:10: `variants[1].arch.height`: `height` does not apply to arch `a`\n      hint: the model is an `a`: change `depth`",
                "4:1: `variants[1].arch.colour`: unknown field `colour`, expected `depth`\n      hint: allowed fields here: depth",
            ]
        );
        let mut base = entry("[m]\nwidth = 4\ndepth = 9\n");
        base.replace_from(&changes);
        assert_eq!(base.value_span("depth"), changes.value_span("depth"));
        assert!(base.contains("width"));
    }
}
