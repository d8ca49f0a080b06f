//! Reports from the fixed run file `tests/fixtures/runs/report.json`: the Markdown summary
//! against goldens, every PNG decoded and checked, the page self-contained, several runs side
//! by side, and bad input refused by the real binary.
//!
//! Update the goldens after an intended change with
//! `INFERBENCH_BLESS=1 cargo test --test report`, then review the diff. To look at the full
//! report (every chart drawn), set `KEEP_REPORT=DIR`: the test writes it there too.

mod support;
use support::{inferbench_in as inferbench, report_data as common};

use std::path::Path;

use base64::Engine;
use inferbench::report::{self, ReportData};

/// The golden file `name` among the fixed runs.
fn golden(name: &str, actual: &str) {
    support::golden::golden(Path::new("tests/fixtures/runs").join(name), actual)
}

#[test]
fn summary_md_matches_the_golden() {
    let r = report::build(&common::plain()).unwrap();
    golden("report.summary.md", &r.markdown);
}

#[test]
fn summary_md_with_quality_matches_the_golden() {
    let r = report::build(&common::with_quality()).unwrap();
    golden("report-quality.summary.md", &r.markdown);
}

/// Decodes a PNG: (width, height, number of distinct colours).
fn decode(png_bytes: &[u8]) -> (u32, u32, usize) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes))
        .read_info()
        .expect("a valid PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("sized")];
    let info = reader.next_frame(&mut buf).expect("one frame");
    let channels = info.color_type.samples();
    let mut colours = std::collections::HashSet::new();
    for px in buf[..info.buffer_size()].chunks(channels) {
        colours.insert(px.to_vec());
        if colours.len() > 200 {
            break;
        }
    }
    (info.width, info.height, colours.len())
}

fn check_written(r: &report::Report, dir: &Path) {
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert_eq!(html, r.html);
    assert!(std::fs::read_to_string(dir.join("summary.md")).unwrap() == r.markdown);
    for c in &r.charts {
        let bytes = std::fs::read(dir.join(&c.file))
            .unwrap_or_else(|e| panic!("{} not written: {e}", c.file));
        assert_eq!(bytes, c.png, "{}", c.file);
        let (w, h, colours) = decode(&bytes);
        assert_eq!((w, h), (c.width, c.height), "{} dimensions", c.file);
        assert_eq!(w, report::charts::WIDTH, "{}", c.file);
        assert!((400..=4000).contains(&h), "{}: height {h}", c.file);
        assert!(colours > 20, "{}: only {colours} colours", c.file);
        assert!(bytes.len() > 5_000, "{}: {} bytes", c.file, bytes.len());
        // Inline on the page with its title.
        assert!(html.contains(&format!(
            "<figure id=\"{}\">",
            c.file.trim_end_matches(".png")
        )));
    }
    // Self-contained: no URL, no script, every chart inline.
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.to_lowercase().contains("<script"));
    assert_eq!(
        html.matches("<img src=\"data:image/png;base64,").count(),
        r.charts.len()
    );
    // Each inline image is exactly its chart's PNG, unescaped.
    let mut uris = html.split("<img src=\"data:image/png;base64,").skip(1);
    for c in &r.charts {
        let data = uris.next().unwrap().split('"').next().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap_or_else(|e| panic!("{}: the data URI is not plain base64: {e}", c.file));
        assert_eq!(decoded, c.png, "{}", c.file);
    }
}

#[test]
fn every_chart_is_a_png_of_the_declared_size_and_the_page_is_self_contained() {
    let r = report::build(&common::with_quality()).unwrap();
    let files: Vec<&str> = r.charts.iter().map(|c| c.file.as_str()).collect();
    for expected in [
        "latency.png",
        "latency-distribution.png",
        "throughput.png",
        "quality-latency.png",
        "quality-energy.png",
        "size.png",
        "memory.png",
        "energy.png",
        "radar.png",
        "confusion-cnn-baseline.png",
        "confusion-mlp-baseline.png",
        "confusion-cnn-int8.png",
        "confusion-cnn-pruned50.png",
        "scaling.png",
        "roofline.png",
        "profile-cnn-baseline-cpu-t1-single-stream-b1.png",
    ] {
        assert!(
            files.contains(&expected),
            "{expected} missing from {files:?}"
        );
    }
    assert!(r.omitted.is_empty(), "{:?}", r.omitted);
    if let Some(keep) = std::env::var_os("KEEP_REPORT") {
        report::write(&r, Path::new(&keep)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let written = report::write(&r, dir.path()).unwrap();
    assert_eq!(written.len(), r.charts.len() + 2);
    assert_eq!(written[0], dir.path().join("index.html"));
    check_written(&r, dir.path());
    // The findings name the Pareto members, the accuracy loss, and the estimates.
    let text: Vec<&str> = r.findings.iter().map(|f| f.text.as_str()).collect();
    let all = text.join("\n");
    assert!(all.contains("Pareto front of accuracy"), "{all}");
    assert!(
        all.contains("Biggest accuracy loss: cnn-pruned50 scores 96.2%"),
        "{all}"
    );
    assert!(all.contains("Energy is ESTIMATED for"), "{all}");
    assert!(all.contains("Fastest on cpu-t1"), "{all}");
    // Estimates never look like measurements.
    assert!(r.html.contains("est.</span>"));
    let energy = r.charts.iter().find(|c| c.file == "energy.png").unwrap();
    assert!(energy.title.contains("ESTIMATES"));
}

#[test]
fn charts_without_data_are_left_out_with_a_note() {
    let d = common::plain();
    let r = report::build(&d).unwrap();
    let omitted: Vec<&str> = r.omitted.iter().map(|o| o.title.as_str()).collect();
    assert_eq!(
        omitted,
        [
            "Quality against latency, Pareto front marked",
            "Quality against energy per inference, Pareto front marked",
            "Confusion matrices",
            "Roofline: achieved compute rate against arithmetic intensity",
            "Per-layer time"
        ]
    );
    assert_eq!(r.charts.len(), 8);
    for o in &r.omitted {
        assert!(r.html.contains(&format!("{}: {}.", o.title, o.why)));
        assert!(r
            .markdown
            .contains(&format!("not drawn: {}: {}", o.title, o.why)));
    }
    let dir = tempfile::tempdir().unwrap();
    report::write(&r, dir.path()).unwrap();
    check_written(&r, dir.path());
    // Failed, noisy and skipped cases are flagged with their reason.
    assert!(r.html.contains("<tr class=\"failed\">"));
    assert!(r.html.contains("worker crashed: killed by signal 6"));
    assert!(r
        .html
        .contains("<span class=\"badge skipped\">skipped</span>"));
    assert!(r.html.contains("<span class=\"badge noisy\">noisy</span>"));
}

#[test]
fn several_runs_are_shown_side_by_side_with_a_warning_when_not_comparable() {
    let a = common::plain();
    let mut b_run = a.runs[0].run.clone();
    b_run.environment.cpu_model = "Other CPU 9000".into();
    b_run.settings.max_noise = 0.05;
    for c in &mut b_run.cases {
        if let Some(l) = c.latency_ms.as_mut() {
            l.summary.p50 *= 1.25;
        }
    }
    let d = ReportData::from_runs(vec![
        ("before.json".into(), a.runs[0].run.clone()),
        ("after.json".into(), b_run),
    ]);
    let warnings = d.comparability();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("CPU model differs"));
    assert!(warnings[1].contains("max_noise"));
    let r = report::build(&d).unwrap();
    assert!(r.html.contains("these runs are not directly comparable"));
    assert!(r.html.contains("Other CPU 9000"));
    assert!(r
        .markdown
        .contains("> **Warning: these runs are not directly comparable.**"));
    assert!(r
        .findings
        .iter()
        .any(|f| f.text.starts_with("Run B against run A") && f.text.contains("1.25x")));
    // Series carry their run's label.
    assert!(r
        .markdown
        .contains("| B | cnn-baseline/cpu-t1/single_stream/b1 |"));
    let dir = tempfile::tempdir().unwrap();
    report::write(&r, dir.path()).unwrap();
    check_written(&r, dir.path());

    // The same run twice is comparable.
    let same = ReportData::from_runs(vec![
        ("a.json".into(), a.runs[0].run.clone()),
        ("b.json".into(), a.runs[0].run.clone()),
    ]);
    assert!(same.comparability().is_empty());
}

#[test]
fn report_command_writes_the_folder_and_refuses_bad_run_files() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = common::fixture();
    let out = dir.path().join("out");
    let o = inferbench(
        &[
            "report",
            fixture.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains(&format!("report: {}", out.join("index.html").display())));
    assert!(stdout.contains("not drawn: Confusion matrices"));
    for f in ["index.html", "summary.md", "latency.png", "energy.png"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // Without --out: reports/<suite>/<run stem>/ under the working directory.
    let o = inferbench(&["report", fixture.to_str().unwrap()], dir.path());
    assert_eq!(o.status.code(), Some(0));
    assert!(dir
        .path()
        .join("reports/report_fixture/report/index.html")
        .is_file());

    // Missing, corrupt and unknown-schema files: exit 2 naming the file.
    let missing = dir.path().join("nope.json");
    let corrupt = dir.path().join("corrupt.json");
    std::fs::write(&corrupt, "{ not json").unwrap();
    let future = dir.path().join("future.json");
    std::fs::write(&future, r#"{"schema_version": 99}"#).unwrap();
    for bad in [&missing, &corrupt, &future] {
        let o = inferbench(
            &[
                "report",
                fixture.to_str().unwrap(),
                bad.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            dir.path(),
        );
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{}: {stderr}", bad.display());
        assert!(stderr.contains(&bad.display().to_string()), "{stderr}");
    }
    // No run file at all is a usage error (clap), also exit 2.
    let o = inferbench(&["report"], dir.path());
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn run_with_report_renders_after_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path().join("tiny.toml");
    std::fs::write(
        &suite,
        r#"
[suite]
name = "tiny_report"

[[models]]
name = "mlp"
arch = "mlp"
input_size = 32
hidden = [16]
classes = 4

[[targets]]
device = "cpu"
threads = [1]

[scenarios.single_stream]

[settings]
case_timeout_s = 20
"#,
    )
    .unwrap();
    let o = inferbench(
        &[
            "run",
            suite.to_str().unwrap(),
            "--quick",
            "--report",
            "--output",
            "results/tiny.json",
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let index = Path::new("reports/tiny_report/tiny/index.html");
    assert!(
        stdout.contains(&format!("report: {}", index.display())),
        "{stdout}"
    );
    assert!(dir.path().join(index).is_file());
    assert!(dir
        .path()
        .join("reports/tiny_report/tiny/latency.png")
        .is_file());
}

#[test]
fn a_run_where_every_case_failed_still_renders_with_every_chart_left_out() {
    let mut run = common::plain().runs[0].run.clone();
    for c in &mut run.cases {
        c.status = inferbench::schema::CaseStatus::Failed;
        c.error = Some("worker crashed".into());
        c.latency_ms = None;
        c.throughput_per_s = None;
        c.memory = None;
        c.energy = None;
        c.cold_start = None;
        c.model.weight_bytes = 0;
    }
    let r = report::build(&ReportData::from_runs(vec![("failed.json".into(), run)])).unwrap();
    assert!(r.charts.is_empty());
    assert_eq!(r.omitted.len(), 13);
    assert!(r.markdown.contains("18 failed of 18 cases"));
    let dir = tempfile::tempdir().unwrap();
    report::write(&r, dir.path()).unwrap();
    check_written(&r, dir.path());
}

/// A run with fourteen variants, more than the ten colours of the base palette: the radar
/// keeps only each run's Pareto front and baselines and names every variant it leaves out,
/// on the page too; every chart still draws.
#[test]
fn fourteen_variants_the_radar_shows_the_front_and_baselines_and_names_the_rest() {
    let d = common::many_variants(14);
    let r = report::build(&d).unwrap();
    let radar = r
        .charts
        .iter()
        .find(|c| c.file == "radar.png")
        .expect("the radar is drawn");
    let (_, note) = radar
        .caption
        .split_once("left out")
        .unwrap_or_else(|| panic!("no note on left-out variants: {}", radar.caption));
    // v00, v03, ... trade accuracy for speed; the others, v13 too (the MLP's baseline is
    // faster and more accurate), are beaten on both.
    let on_front = [0, 3, 6, 9, 12];
    for i in 0..14 {
        let name = format!("v{i:02} ·");
        assert_eq!(
            note.contains(&name),
            !on_front.contains(&i),
            "{name} in the note: {note}"
        );
    }
    assert!(!note.contains("baseline ·"), "baselines stay: {note}");
    assert!(r.html.contains(note), "the note is on the page: {note}");
    for c in &r.charts {
        let (w, h, _) = decode(&c.png);
        assert_eq!((w, h), (c.width, c.height), "{}", c.file);
    }
    assert!(r.charts.iter().any(|c| c.file == "quality-latency.png"));
}
