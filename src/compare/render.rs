//! Text forms of a `Comparison`: terminal table, Markdown (pull-request comment), JUnit XML.
//! Pure: each returns a `String`; the CLI writes it.

use std::fmt::Write;

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, ContentArrangement, Table};

use super::{ChangeKind, Comparison, MetricComparison, Outcome, Verdict};

/// A value in its unit, with enough digits to compare.
pub fn fmt_value(unit: &str, x: f64) -> String {
    match unit {
        "ms" => match x {
            x if x >= 100.0 => format!("{x:.1} ms"),
            x if x >= 1.0 => format!("{x:.3} ms"),
            x => format!("{x:.4} ms"),
        },
        "samples/s" => format!("{x:.1}/s"),
        "B" => format!("{} B", x.round() as u64),
        "%" => format!("{x:.2}%"),
        "" => format!("{x}"),
        unit => format!("{x:.4} {unit}"),
    }
}

fn fmt_change(kind: ChangeKind, x: f64) -> String {
    match kind {
        ChangeKind::Relative => format!("{:+.1}%", 100.0 * x),
        ChangeKind::Points => format!("{x:+.2} pt"),
    }
}

fn fmt_threshold(m: &MetricComparison) -> String {
    if m.metric == "status" {
        return "-".into();
    }
    match m.kind {
        ChangeKind::Relative => format!("{}%", super::trim(100.0 * m.threshold)),
        ChangeKind::Points => format!("{} pt", super::trim(m.threshold)),
    }
}

fn fmt_p(p: Option<f64>) -> String {
    match p {
        None => "-".into(),
        Some(0.0) => "0".into(),
        Some(p) if p < 1e-3 => format!("{p:.0e}"),
        Some(p) => format!("{p:.3}"),
    }
}

fn cells(m: &MetricComparison) -> [String; 6] {
    let v = |x: Option<f64>| {
        x.map(|x| fmt_value(&m.unit, x))
            .unwrap_or_else(|| "-".into())
    };
    let change = m
        .change
        .map(|x| fmt_change(m.kind, x))
        .unwrap_or_else(|| "-".into());
    let ci = match m.change_ci {
        Some(_) if m.method == "exact" => "exact".into(),
        Some([lo, hi]) => format!("[{}, {}]", fmt_change(m.kind, lo), fmt_change(m.kind, hi)),
        None => "-".into(),
    };
    [
        v(m.baseline),
        v(m.candidate),
        change,
        ci,
        fmt_threshold(m),
        fmt_p(m.p_value),
    ]
}

fn counts_line(c: &Comparison) -> String {
    let m = c.metric_counts();
    let k = c.case_counts();
    format!(
        "{} cases: {} regressed, {} improved, {} unchanged, {} inconclusive ({} metrics: {} regressed, {} improved, {} unchanged, {} inconclusive)",
        c.cases.len(),
        k.regressed,
        k.improved,
        k.unchanged,
        k.inconclusive,
        m.regressed + m.improved + m.unchanged + m.inconclusive,
        m.regressed,
        m.improved,
        m.unchanged,
        m.inconclusive
    )
}

/// "measure again: N cases had too few undisturbed processes (...)", when some had.
fn measure_again_line(c: &Comparison) -> Option<String> {
    let ids: Vec<&str> = c.measure_again().map(|k| k.id.as_str()).collect();
    (!ids.is_empty()).then(|| {
        format!(
            "measure again: {} {} had too few undisturbed processes ({}); the machine was busy while they ran",
            ids.len(),
            if ids.len() == 1 { "case" } else { "cases" },
            ids.join(", ")
        )
    })
}

fn rule_line(c: &Comparison) -> String {
    format!(
        "rule: a metric regresses when its change is significant (p < {}) and its whole {}% interval is worse than the threshold; unchanged when the interval is within the threshold; otherwise inconclusive (docs/check.md)",
        c.config.significance,
        super::trim(100.0 * c.confidence)
    )
}

fn run_line(side: &str, r: &super::RunInfo) -> String {
    let commit = &r.git_commit[..r.git_commit.len().min(12)];
    let mut s = format!(
        "{side}: {} (suite {}, commit {commit}, {}, {} cases)",
        r.label,
        r.suite,
        r.started_at.format("%Y-%m-%d %H:%M UTC"),
        r.cases
    );
    if let Some(x) = r.injected_slowdown {
        let _ = write!(s, " [TEST ONLY: injected slowdown {:+.1}%]", 100.0 * x);
    }
    s
}

/// The terminal report fits a terminal this wide: the table wraps its case, metric, interval
/// and threshold cells (never a figure), and every line around it breaks at spaces.
pub const TERMINAL_COLUMNS: usize = 120;

/// `text` broken into lines of at most `width` characters: at spaces where it can, inside a
/// word longer than a line where it must (a long path); continuation lines are indented by
/// `indent` spaces. Nothing is dropped.
pub fn wrap(text: &str, width: usize, indent: usize) -> String {
    // The text's own leading spaces are kept.
    let lead = text.len() - text.trim_start_matches(' ').len();
    let mut out = " ".repeat(lead);
    let mut len = lead;
    // Nothing on the current line yet but its indentation.
    let mut fresh = true;
    let pad = " ".repeat(indent);
    let new_line = |out: &mut String, len: &mut usize| {
        out.push('\n');
        out.push_str(&pad);
        *len = indent;
    };
    for word in text[lead..].split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        if !fresh && len + 1 + word.len() > width {
            new_line(&mut out, &mut len);
        } else if !fresh {
            out.push(' ');
            len += 1;
        }
        // A word longer than the room left on a line of its own: cut it at the line's end.
        while len + word.len() > width && width > len {
            let rest = word.split_off(width - len);
            out.extend(word);
            new_line(&mut out, &mut len);
            word = rest;
        }
        len += word.len();
        out.extend(word);
        fresh = false;
    }
    out
}

/// `line` wrapped to the terminal, continuation lines indented by `indent`, and a newline.
fn put(out: &mut String, line: &str, indent: usize) {
    let _ = writeln!(out, "{}", wrap(line, TERMINAL_COLUMNS, indent));
}

/// The metric table: one row per metric, each case's rows under a line naming the case (as
/// criterion names a benchmark above its figures), so the long case ids take no column.
/// Cells never wrap (a figure split over two lines misreads); should the table still be
/// wider than the terminal, each case gets a table of its own, wrapped to fit.
fn metric_table(c: &Comparison) -> String {
    let ci_head = format!("{}% CI", super::trim(100.0 * c.confidence));
    let header = [
        "metric",
        "baseline",
        "candidate",
        "change",
        ci_head.as_str(),
        "threshold",
        "p",
        "verdict",
    ];
    let table_of = |cases: &[super::CaseComparison]| {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header(header);
        for case in cases {
            for m in &case.metrics {
                let right = |s: String| Cell::new(s).set_alignment(CellAlignment::Right);
                let [b, cand, change, ci, t, p] = cells(m);
                let verdict = if m.verdict == Verdict::Regressed {
                    "REGRESSED".to_string()
                } else {
                    m.verdict.as_str().to_string()
                };
                table.add_row(vec![
                    Cell::new(&m.metric),
                    right(b),
                    right(cand),
                    right(change),
                    right(ci),
                    right(t),
                    right(p),
                    Cell::new(verdict),
                ]);
            }
        }
        table
    };
    let text = table_of(&c.cases).to_string();
    let lines: Vec<&str> = text.lines().collect();
    let width = lines.first().map_or(0, |l| l.chars().count());
    let rows: usize = c.cases.iter().map(|k| k.metrics.len()).sum();
    let mut out = String::new();
    if width <= TERMINAL_COLUMNS && lines.len() == rows + 4 {
        // Top border, header, header rule, one line per row, bottom border.
        let (head, body) = lines.split_at(3);
        for l in head {
            let _ = writeln!(out, "{l}");
        }
        let mut body = body.iter();
        for case in &c.cases {
            let _ = writeln!(out, "{}", case_rule(&case.id, width));
            for l in body.by_ref().take(case.metrics.len()) {
                let _ = writeln!(out, "{l}");
            }
        }
        for l in body {
            let _ = writeln!(out, "{l}");
        }
        return out;
    }
    for case in &c.cases {
        put(&mut out, &case.id, 2);
        let mut table = table_of(std::slice::from_ref(case));
        table
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_width(TERMINAL_COLUMNS as u16);
        let _ = writeln!(out, "{table}");
    }
    out
}

/// `├─ id ───┤` across a table `width` wide; the id alone, wrapped, when it does not fit.
fn case_rule(id: &str, width: usize) -> String {
    let used = id.chars().count() + 5;
    if used > width {
        return wrap(id, TERMINAL_COLUMNS, 2);
    }
    format!("├─ {id} {}┤", "─".repeat(width - used + 1))
}

/// The terminal report: the two runs, their differences, one row per case and metric, and
/// the counts; every line within `TERMINAL_COLUMNS`.
pub fn terminal(c: &Comparison) -> String {
    let mut out = String::new();
    put(&mut out, &run_line("baseline ", &c.baseline), 2);
    put(&mut out, &run_line("candidate", &c.candidate), 2);
    if !c.differences.is_empty() {
        let _ = writeln!(out, "differences between the runs:");
        for d in &c.differences {
            let tag = if d.blocking {
                "BLOCKING (accepted with --allow-env-mismatch)"
            } else {
                "info"
            };
            let line = format!(
                "  {}: `{}` -> `{}` [{tag}]",
                d.field, d.baseline, d.candidate
            );
            put(&mut out, &line, 4);
        }
    }
    out.push_str(&metric_table(c));
    for case in &c.cases {
        for m in case
            .metrics
            .iter()
            .filter(|m| matches!(m.verdict, Verdict::Regressed | Verdict::Inconclusive))
        {
            let line = format!(
                "  {} {}: {}: {}",
                case.id,
                m.metric,
                m.verdict.as_str(),
                m.reason
            );
            put(&mut out, &line, 4);
        }
    }
    if !c.only_in_baseline.is_empty() {
        let line = format!(
            "not in the candidate (not compared): {}",
            c.only_in_baseline.join(", ")
        );
        put(&mut out, &line, 2);
    }
    if !c.only_in_candidate.is_empty() {
        let line = format!(
            "not in the baseline (not compared): {}",
            c.only_in_candidate.join(", ")
        );
        put(&mut out, &line, 2);
    }
    put(&mut out, &counts_line(c), 2);
    if let Some(line) = measure_again_line(c) {
        put(&mut out, &line, 2);
    }
    put(&mut out, &rule_line(c), 2);
    out
}

fn md(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn md_rows(out: &mut String, c: &Comparison, keep: impl Fn(Verdict) -> bool, with_reason: bool) {
    let ci_head = format!("{}% CI", super::trim(100.0 * c.confidence));
    let _ = write!(
        out,
        "| case | metric | baseline | candidate | change | {ci_head} | threshold | p | verdict |"
    );
    let _ = writeln!(out, "{}", if with_reason { " why |" } else { "" });
    let _ = write!(out, "|---|---|--:|--:|--:|--:|--:|--:|---|");
    let _ = writeln!(out, "{}", if with_reason { "---|" } else { "" });
    for case in &c.cases {
        for m in case.metrics.iter().filter(|m| keep(m.verdict)) {
            let [b, cand, change, ci, t, p] = cells(m);
            let verdict = match m.verdict {
                Verdict::Regressed => "**regressed**",
                v => v.as_str(),
            };
            let _ = write!(
                out,
                "| `{}` | {} | {b} | {cand} | {change} | {ci} | {t} | {p} | {verdict} |",
                md(&case.id),
                md(&m.metric)
            );
            if with_reason {
                let _ = write!(out, " {} |", md(&m.reason));
            }
            out.push('\n');
        }
    }
}

/// Markdown for a pull-request comment: the verdict first, the regressions and inconclusive
/// metrics, then every metric and every difference between the runs folded away.
pub fn markdown(c: &Comparison) -> String {
    let mut out = String::new();
    let m = c.metric_counts();
    let title = match c.outcome() {
        Outcome::Regressed => "regression found",
        Outcome::MeasureAgain => "measure again (the machine was busy)",
        Outcome::Passed => "no regression",
    };
    let _ = writeln!(out, "## inferbench check: {title}\n");
    let _ = writeln!(
        out,
        "**{} regressed**, {} improved, {} unchanged, {} inconclusive metrics in {} cases of suite `{}`.\n",
        m.regressed,
        m.improved,
        m.unchanged,
        m.inconclusive,
        c.cases.len(),
        md(&c.candidate.suite)
    );
    if let Some(line) = measure_again_line(c) {
        let _ = writeln!(out, "**{}**\n", md(&line));
    }
    for (side, r) in [("Baseline", &c.baseline), ("Candidate", &c.candidate)] {
        let commit = &r.git_commit[..r.git_commit.len().min(12)];
        let _ = write!(
            out,
            "- {side}: `{}` (commit `{commit}`, {}, {} cases)",
            md(&r.label),
            r.started_at.format("%Y-%m-%d %H:%M UTC"),
            r.cases
        );
        if let Some(x) = r.injected_slowdown {
            let _ = write!(out, " **test only: injected slowdown {:+.1}%**", 100.0 * x);
        }
        out.push('\n');
    }
    out.push('\n');
    let blocking: Vec<_> = c.blocking_differences().collect();
    if !blocking.is_empty() {
        let list: Vec<String> = blocking
            .iter()
            .map(|d| {
                format!(
                    "{} `{}` vs `{}`",
                    md(&d.field),
                    md(&d.baseline),
                    md(&d.candidate)
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "> **Warning:** the runs are not strictly comparable (accepted with `--allow-env-mismatch`): {}.\n",
            list.join("; ")
        );
    }
    if m.regressed > 0 {
        let _ = writeln!(out, "### Regressed\n");
        md_rows(&mut out, c, |v| v == Verdict::Regressed, true);
        out.push('\n');
    }
    if m.inconclusive > 0 {
        let _ = writeln!(out, "### Inconclusive\n");
        md_rows(&mut out, c, |v| v == Verdict::Inconclusive, true);
        out.push('\n');
    }
    let total = m.regressed + m.improved + m.unchanged + m.inconclusive;
    let _ = writeln!(out, "<details><summary>All {total} metrics</summary>\n");
    md_rows(&mut out, c, |_| true, false);
    let _ = writeln!(out, "\n</details>\n");
    if !c.differences.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>Differences between the runs ({})</summary>\n",
            c.differences.len()
        );
        let _ = writeln!(
            out,
            "| field | baseline | candidate | blocking |\n|---|---|---|---|"
        );
        for d in &c.differences {
            let _ = writeln!(
                out,
                "| {} | `{}` | `{}` | {} |",
                md(&d.field),
                md(&d.baseline),
                md(&d.candidate),
                if d.blocking { "yes" } else { "no" }
            );
        }
        let _ = writeln!(out, "\n</details>\n");
    }
    for (what, ids) in [
        ("Not in the candidate", &c.only_in_baseline),
        ("Not in the baseline", &c.only_in_candidate),
    ] {
        if !ids.is_empty() {
            let list: Vec<String> = ids.iter().map(|i| format!("`{}`", md(i))).collect();
            let _ = writeln!(out, "{what} (not compared): {}.\n", list.join(", "));
        }
    }
    let rule = rule_line(c);
    let _ = writeln!(out, "<sub>{}{}</sub>", rule[..1].to_uppercase(), &rule[1..]);
    out
}

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot hold.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

fn metric_line(m: &MetricComparison) -> String {
    let [b, cand, change, ci, t, p] = cells(m);
    if m.change.is_none() {
        return format!(
            "{}: {} ({b} -> {cand}): {}",
            m.metric,
            m.verdict.as_str(),
            m.reason
        );
    }
    format!(
        "{}: {} ({b} -> {cand}, change {change} {ci}, threshold {t}, p {p}): {}",
        m.metric,
        m.verdict.as_str(),
        m.reason
    )
}

/// JUnit XML: one test case per compared case (failed on a regression, skipped when no
/// metric could be decided) plus a skipped case per case missing from the candidate.
pub fn junit(c: &Comparison) -> String {
    let suite = xml(&c.candidate.suite);
    let failures = c.case_counts().regressed;
    let all_inconclusive = |case: &super::CaseComparison| {
        case.metrics
            .iter()
            .all(|m| m.verdict == Verdict::Inconclusive)
    };
    let skipped = c.cases.iter().filter(|c| all_inconclusive(c)).count() + c.only_in_baseline.len();
    let tests = c.cases.len() + c.only_in_baseline.len();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"inferbench check\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">"
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"inferbench check: {suite}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">"
    );
    let _ = writeln!(out, "    <properties>");
    for (k, v) in [
        ("baseline", &c.baseline.label),
        ("baseline_commit", &c.baseline.git_commit),
        ("candidate", &c.candidate.label),
        ("candidate_commit", &c.candidate.git_commit),
    ] {
        let _ = writeln!(out, "      <property name=\"{k}\" value=\"{}\"/>", xml(v));
    }
    for d in &c.differences {
        let _ = writeln!(
            out,
            "      <property name=\"difference.{}\" value=\"{} -&gt; {}{}\"/>",
            xml(&d.field),
            xml(&d.baseline),
            xml(&d.candidate),
            if d.blocking { " (blocking)" } else { "" }
        );
    }
    let _ = writeln!(out, "    </properties>");
    for case in &c.cases {
        let _ = writeln!(
            out,
            "    <testcase name=\"{}\" classname=\"inferbench.{suite}\">",
            xml(&case.id)
        );
        let lines: Vec<String> = case.metrics.iter().map(metric_line).collect();
        if case.verdict == Verdict::Regressed {
            let regressed: Vec<&MetricComparison> = case
                .metrics
                .iter()
                .filter(|m| m.verdict == Verdict::Regressed)
                .collect();
            let summary: Vec<String> = regressed
                .iter()
                .map(|m| {
                    let [_, _, change, ci, t, _] = cells(m);
                    match m.change {
                        Some(_) => format!("{} {change} {ci} (threshold {t})", m.metric),
                        None => format!("{}: {}", m.metric, m.reason),
                    }
                })
                .collect();
            let body: Vec<String> = regressed.iter().map(|m| metric_line(m)).collect();
            let _ = writeln!(
                out,
                "      <failure type=\"regression\" message=\"regressed: {}\">{}</failure>",
                xml(&summary.join("; ")),
                xml(&body.join("\n"))
            );
        } else if all_inconclusive(case) {
            let why = case
                .metrics
                .first()
                .map(|m| m.reason.as_str())
                .unwrap_or("");
            let _ = writeln!(
                out,
                "      <skipped message=\"inconclusive: {}\"/>",
                xml(why)
            );
        }
        let _ = writeln!(
            out,
            "      <system-out>{}</system-out>",
            xml(&lines.join("\n"))
        );
        let _ = writeln!(out, "    </testcase>");
    }
    for id in &c.only_in_baseline {
        let _ = writeln!(
            out,
            "    <testcase name=\"{}\" classname=\"inferbench.{suite}\">\n      <skipped message=\"not in the candidate run\"/>\n    </testcase>",
            xml(id)
        );
    }
    let _ = writeln!(out, "  </testsuite>\n</testsuites>");
    out
}
