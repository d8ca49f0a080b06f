//! Validation of values read from a file. Every file inferbench reads is hostile input: after
//! parsing, its values are checked before any command computes with them, and each problem
//! names the value by its JSON path (`cases[3].latency_ms.samples[7]`) and says why.
//!
//! [`Checker`] collects the problems; [`scan`] walks any serializable value and checks every
//! number and list in it (finite, of a magnitude no measurement has, lists of a bounded
//! length); the rules of each record (ranges, non-empty samples, unique ids, lists of equal
//! length) are in `rules.rs`.

use std::fmt;

use serde::ser::{self, Serialize};

/// No figure in a run file is larger than this in magnitude (bytes, FLOP/s and nanoseconds
/// included): sums and squares of many such figures stay finite.
pub const MAX_FIGURE: f64 = 1e18;
/// The longest list a file may hold (samples of a case, probes, layers...).
pub const MAX_ITEMS: usize = 10_000_000;
/// The most cases a run file may hold.
pub const MAX_CASES: usize = 100_000;
/// The most bootstrap resamples a setting may ask for.
pub const MAX_RESAMPLES: usize = 1_000_000;
/// The most worker processes per case (as the suite allows).
pub const MAX_PROCESSES: usize = 1000;
/// The longest duration a setting may give, in seconds (11.6 days).
pub const MAX_SECONDS: f64 = 1e6;
/// Problems listed in full; the rest are counted.
const MAX_SHOWN: usize = 20;

/// One value that is not acceptable: where it is (a JSON path) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "`{}`: {}", self.path, self.reason)
        }
    }
}

/// The problems as lines, for an error message.
pub fn describe(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collects problems while walking a value, keeping the JSON path of the current value.
#[derive(Debug, Default)]
pub struct Checker {
    path: String,
    problems: Vec<Problem>,
    total: usize,
}

impl Checker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A checker whose paths start with `prefix` (as `cases[2]` for a journal's case line).
    pub fn within(prefix: &str) -> Self {
        Checker {
            path: prefix.to_string(),
            ..Self::default()
        }
    }

    /// Runs `f` on the field `name` of the current value.
    pub fn at<R>(&mut self, name: &str, f: impl FnOnce(&mut Checker) -> R) -> R {
        let len = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(name);
        let r = f(self);
        self.path.truncate(len);
        r
    }

    /// Runs `f` on item `i` of the current list.
    pub fn item<R>(&mut self, i: usize, f: impl FnOnce(&mut Checker) -> R) -> R {
        let len = self.path.len();
        self.path.push_str(&format!("[{i}]"));
        let r = f(self);
        self.path.truncate(len);
        r
    }

    /// Runs `f` on the entry `key` of the current map: `.key`, or `["key"]` when the key is
    /// not a plain name.
    pub fn key<R>(&mut self, key: &str, f: impl FnOnce(&mut Checker) -> R) -> R {
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if plain {
            return self.at(key, f);
        }
        let len = self.path.len();
        self.path.push_str(&format!("[{key:?}]"));
        let r = f(self);
        self.path.truncate(len);
        r
    }

    /// Records a problem of the current value.
    pub fn problem(&mut self, reason: impl Into<String>) {
        // A value the scan found unusable may fail a rule of its record too: said once.
        if self.problems.iter().any(|p| p.path == self.path) {
            return;
        }
        self.total += 1;
        if self.problems.len() < MAX_SHOWN {
            self.problems.push(Problem {
                path: self.path.clone(),
                reason: reason.into(),
            });
        }
    }

    /// Records a problem of the field `name`.
    pub fn problem_at(&mut self, name: &str, reason: impl Into<String>) {
        let reason = reason.into();
        self.at(name, |c| c.problem(reason));
    }

    /// Whether the current value's number is usable: finite and within `MAX_FIGURE`.
    fn figure_here(&mut self, x: f64) -> bool {
        if !x.is_finite() {
            self.problem(format!("{x} is not a finite number"));
            false
        } else if x.abs() > MAX_FIGURE {
            self.problem(format!(
                "{x:e} is beyond any measured figure (the limit is {MAX_FIGURE:e})"
            ));
            false
        } else {
            true
        }
    }

    /// The field `name` is a usable number of at least `min`.
    pub fn at_least(&mut self, name: &str, x: f64, min: f64) {
        self.at(name, |c| {
            if c.figure_here(x) && x < min {
                c.problem(format!("must be at least {min}, got {x}"));
            }
        });
    }

    /// The field `name` is a usable number that is not negative.
    pub fn non_negative(&mut self, name: &str, x: f64) {
        self.at_least(name, x, 0.0);
    }

    /// The field `name`, when present, is a usable number that is not negative.
    pub fn opt_non_negative(&mut self, name: &str, x: Option<f64>) {
        if let Some(x) = x {
            self.non_negative(name, x);
        }
    }

    /// The field `name` is a usable number greater than zero.
    pub fn positive(&mut self, name: &str, x: f64) {
        self.at(name, |c| {
            if c.figure_here(x) && x <= 0.0 {
                c.problem(format!("must be greater than 0, got {x}"));
            }
        });
    }

    /// The field `name` lies in `[lo, hi]`.
    pub fn between(&mut self, name: &str, x: f64, lo: f64, hi: f64) {
        self.at(name, |c| {
            if c.figure_here(x) && !(lo..=hi).contains(&x) {
                c.problem(format!("must be between {lo} and {hi}, got {x}"));
            }
        });
    }

    /// The count `name` lies in `[lo, hi]`.
    pub fn count(&mut self, name: &str, n: usize, lo: usize, hi: usize) {
        if !(lo..=hi).contains(&n) {
            self.problem_at(name, format!("must be between {lo} and {hi}, got {n}"));
        }
    }

    /// The list `name` holds measured values: at least one, none negative.
    pub fn samples(&mut self, name: &str, xs: &[f64]) {
        self.at(name, |c| {
            if xs.is_empty() {
                c.problem("is empty: a measured figure needs at least one sample");
            }
            for (i, &x) in xs.iter().enumerate() {
                if !x.is_finite() || !(0.0..=MAX_FIGURE).contains(&x) {
                    c.item(i, |c| {
                        if c.figure_here(x) {
                            c.problem(format!("must not be negative, got {x}"));
                        }
                    });
                }
            }
        });
    }

    /// Whether no problem was found so far.
    pub fn is_clean(&self) -> bool {
        self.total == 0
    }

    /// The problems found, the first `MAX_SHOWN` in full.
    pub fn finish(mut self) -> Result<(), Vec<Problem>> {
        if self.total == 0 {
            return Ok(());
        }
        if self.total > self.problems.len() {
            let more = self.total - self.problems.len();
            self.problems.push(Problem {
                path: String::new(),
                reason: format!("... and {more} more"),
            });
        }
        Err(self.problems)
    }
}

/// Checks every number in `value` (finite, within `MAX_FIGURE`) and the length of every list
/// (at most `MAX_ITEMS`), naming each by its path in the value's JSON form.
pub fn scan<T: Serialize + ?Sized>(value: &T, c: &mut Checker) {
    // The walk itself never fails: problems go to the checker.
    let _ = value.serialize(Scan { c, index: None });
}

#[derive(Debug)]
struct Never;

impl fmt::Display for Never {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("value scan")
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Never
    }
}

/// The serializer that scans one value. An item of a list carries its index, written into
/// the path only when the item has parts or a problem: a list of millions of good numbers
/// costs no formatting.
struct Scan<'a> {
    c: &'a mut Checker,
    index: Option<usize>,
}

/// A list, map or struct being scanned; `restore` is the path's length before it.
struct ScanParts<'a> {
    c: &'a mut Checker,
    restore: usize,
    next_index: usize,
    key: Option<String>,
}

impl<'a> Scan<'a> {
    fn number(self, x: f64) {
        if x.is_finite() && x.abs() <= MAX_FIGURE {
            return;
        }
        match self.index {
            Some(i) => self.c.item(i, |c| {
                c.figure_here(x);
            }),
            None => {
                self.c.figure_here(x);
            }
        }
    }

    /// Enters a value with parts: its index (if an item) joins the path until `end`.
    fn parts(self, len: Option<usize>) -> ScanParts<'a> {
        let restore = self.c.path.len();
        if let Some(i) = self.index {
            self.c.path.push_str(&format!("[{i}]"));
        }
        if let Some(n) = len.filter(|&n| n > MAX_ITEMS) {
            self.c.problem(format!(
                "holds {n} items, more than the {MAX_ITEMS} a file may hold"
            ));
        }
        ScanParts {
            c: self.c,
            restore,
            next_index: 0,
            key: None,
        }
    }
}

macro_rules! ignore {
    ($($name:ident: $t:ty),*) => {
        $(fn $name(self, _: $t) -> Result<(), Never> { Ok(()) })*
    };
}

impl<'a> ser::Serializer for Scan<'a> {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = ScanParts<'a>;
    type SerializeTuple = ScanParts<'a>;
    type SerializeTupleStruct = ScanParts<'a>;
    type SerializeTupleVariant = ScanParts<'a>;
    type SerializeMap = ScanParts<'a>;
    type SerializeStruct = ScanParts<'a>;
    type SerializeStructVariant = ScanParts<'a>;

    ignore!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_char: char, serialize_str: &str, serialize_bytes: &[u8],
        serialize_unit_struct: &'static str);

    fn serialize_f32(self, v: f32) -> Result<(), Never> {
        self.number(f64::from(v));
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Never> {
        self.number(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Never> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Never> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Never> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Never> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Never> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<(), Never> {
        let mut parts = self.parts(None);
        parts.field(variant, v);
        parts.finish();
        Ok(())
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<ScanParts<'a>, Never> {
        Ok(self.parts(len))
    }
    fn serialize_tuple(self, len: usize) -> Result<ScanParts<'a>, Never> {
        Ok(self.parts(Some(len)))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<ScanParts<'a>, Never> {
        Ok(self.parts(Some(len)))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        len: usize,
    ) -> Result<ScanParts<'a>, Never> {
        Ok(self.parts(Some(len)))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<ScanParts<'a>, Never> {
        Ok(self.parts(None))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<ScanParts<'a>, Never> {
        Ok(self.parts(None))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<ScanParts<'a>, Never> {
        Ok(self.parts(None))
    }
}

impl ScanParts<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Never> {
        let index = Some(self.next_index);
        self.next_index += 1;
        v.serialize(Scan { c: self.c, index })
    }

    fn field<T: Serialize + ?Sized>(&mut self, name: &str, v: &T) {
        self.c.key(name, |c| {
            let _ = v.serialize(Scan { c, index: None });
        });
    }

    fn finish(self) {
        self.c.path.truncate(self.restore);
    }
}

macro_rules! seq_impl {
    ($($tr:ident :: $m:ident),*) => {
        $(impl ser::$tr for ScanParts<'_> {
            type Ok = ();
            type Error = Never;
            fn $m<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Never> {
                self.element(v)
            }
            fn end(self) -> Result<(), Never> {
                self.finish();
                Ok(())
            }
        })*
    };
}

seq_impl!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for ScanParts<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Never> {
        self.key = Some(match serde_json::to_value(key) {
            Ok(serde_json::Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(_) => String::new(),
        });
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Never> {
        let key = self.key.take().unwrap_or_default();
        self.field(&key, v);
        Ok(())
    }
    fn end(self) -> Result<(), Never> {
        self.finish();
        Ok(())
    }
}

macro_rules! struct_impl {
    ($($tr:ident),*) => {
        $(impl ser::$tr for ScanParts<'_> {
            type Ok = ();
            type Error = Never;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                name: &'static str,
                v: &T,
            ) -> Result<(), Never> {
                self.field(name, v);
                Ok(())
            }
            fn end(self) -> Result<(), Never> {
                self.finish();
                Ok(())
            }
        })*
    };
}

struct_impl!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(serde::Serialize)]
    struct Inner {
        xs: Vec<f64>,
        by: BTreeMap<String, f64>,
    }

    #[derive(serde::Serialize)]
    struct Outer {
        ok: f64,
        inner: Vec<Inner>,
        maybe: Option<f64>,
    }

    #[test]
    fn the_scan_names_every_bad_number_by_its_path() {
        let v = Outer {
            ok: 1.0,
            inner: vec![
                Inner {
                    xs: vec![1.0, 2.0],
                    by: BTreeMap::new(),
                },
                Inner {
                    xs: vec![0.0, f64::NAN, 1e300],
                    by: BTreeMap::from([("p 50".to_string(), f64::INFINITY)]),
                },
            ],
            maybe: Some(-1e19),
        };
        let mut c = Checker::new();
        scan(&v, &mut c);
        let problems = c.finish().unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "inner[1].xs[1]",
                "inner[1].xs[2]",
                "inner[1].by[\"p 50\"]",
                "maybe"
            ]
        );
        assert!(problems[0].reason.contains("not a finite number"));
        assert!(problems[1].reason.contains("beyond any measured figure"));
    }

    #[test]
    fn rules_name_their_field_and_the_count_of_problems_is_bounded() {
        let mut c = Checker::new();
        c.at("check", |c| c.between("significance", 1.5, 0.0, 0.5));
        c.at("cases", |c| c.item(3, |c| c.samples("samples", &[])));
        let xs: Vec<f64> = (0..100).map(|i| -(i as f64) - 1.0).collect();
        c.samples("xs", &xs);
        let problems = c.finish().unwrap_err();
        assert_eq!(problems[0].path, "check.significance");
        assert!(problems[0].reason.contains("between 0 and 0.5, got 1.5"));
        assert_eq!(problems[1].path, "cases[3].samples");
        assert_eq!(problems[2].path, "xs[0]");
        assert_eq!(problems.len(), MAX_SHOWN + 1);
        assert_eq!(problems.last().unwrap().reason, "... and 82 more");
        assert!(Checker::new().finish().is_ok());
    }
}
