use super::*;

/// The summary of a real 18-case run, with the names and figures a compression study
/// adds (long variant names, quality, energy, sizes), stays within 120 columns.
#[test]
fn every_line_of_a_realistic_summary_fits_120_columns() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/runs/report.json"
    );
    let mut run = crate::results::read_json(std::path::Path::new(path)).unwrap();
    for (i, c) in run.cases.iter_mut().enumerate() {
        c.variant = ["baseline", "distilled-pruned50-q8_0", "q4k-structured25"][i % 3].into();
        c.id = format!(
            "{}-{}/{}/{}/b{}",
            c.model_name, c.variant, c.target, c.scenario, c.batch_size
        );
        c.model.recipe = Some(format!("quantize q8_0 after prune structured 0.5 ({i})"));
        c.model.compression_rate = Some(3.97);
        c.noise = Some(0.1234);
        c.status = CaseStatus::Partial;
    }
    let text = run_summary(&run);
    assert!(text.contains("partial"), "{text}");
    assert!(text.lines().count() > 40, "{text}");
    for line in text.lines() {
        assert!(
            line.chars().count() <= 120,
            "{} columns:\n{line}",
            line.chars().count()
        );
    }
}

#[test]
fn a_wide_table_is_split_into_tables_led_by_its_first_column() {
    let mut t = Table::new();
    let header: Vec<String> = (0..12).map(|i| format!("column {i:02}")).collect();
    t.set_header(header);
    t.add_row(
        (0..12)
            .map(|i| format!("r{i}-{}", "x".repeat(8)))
            .collect::<Vec<_>>(),
    );
    let text = fit(&t);
    assert!(text.lines().all(|l| l.chars().count() <= 120), "{text}");
    assert!(text.matches("column 00").count() >= 2, "{text}");
    for i in 0..12 {
        assert!(text.contains(&format!("column {i:02}")), "{text}");
    }
    // A table that fits stays one table.
    let mut small = Table::new();
    small.set_header(["a", "b"]).add_row(["1", "2"]);
    assert_eq!(fit(&small), small.to_string());
}

#[test]
fn notes_break_at_spaces_within_the_width() {
    let note = "word ".repeat(60);
    let w = wrapped(note.trim());
    assert!(w.lines().count() >= 3, "{w}");
    assert!(w.lines().all(|l| l.chars().count() <= 120), "{w}");
    assert_eq!(w.split_whitespace().count(), 60);
    assert_eq!(wrapped("short"), "short");
}
