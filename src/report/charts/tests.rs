use super::*;

#[test]
fn slugs_are_file_names() {
    assert_eq!(slug("cnn-q8 [B]"), "cnn-q8-b");
    assert_eq!(slug("mlp_pruned.50"), "mlp-pruned-50");
}

/// Charts with 12 or more series (variants on the radar, targets, load curves) give each
/// its own colour: the first `COLORS` are distinct, and the first 24 clearly so.
#[test]
fn every_series_of_a_chart_has_its_own_colour() {
    let colors: Vec<RGBColor> = (0..COLORS).map(color).collect();
    for i in 0..COLORS {
        for j in 0..i {
            assert_ne!(colors[i], colors[j], "series {i} and {j}");
            if i < 24 {
                let d = distance(colors[i], colors[j]);
                assert!(d > 60.0, "series {i} and {j} look alike: {d:.0}");
            }
        }
    }
    assert_eq!(color(0), PALETTE[0], "the first ten are Tableau 10");
    assert_eq!(color(9), PALETTE[9]);
    assert_eq!(hsl(120.0, 1.0, 0.5), RGBColor(0, 255, 0));
}

/// Fourteen variants' points, most of them crowded into a corner as on a Pareto chart:
/// every label that is drawn keeps clear of the other labels and of the other points,
/// stays inside the plot, and the front's labels (placed first) are all drawn.
#[test]
fn crowded_point_labels_do_not_overlap_their_neighbours() {
    let labels: Vec<PointLabel> = (0..14)
        .map(|i| PointLabel {
            center: (300 + (i % 5) * 14, 200 + (i / 5) * 12 + (i % 3) * 5),
            radius: 6 + (i % 4) * 3,
            text: format!("variant-{i} · cpu-t4"),
            style: style(LABEL_SIZE),
        })
        .collect();
    let bounds = (100, 50, 900, 600);
    let spots = place_labels(&labels, bounds);
    let placed: Vec<(usize, Rect)> = spots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.map(|p| (i, p.rect)))
        .collect();
    assert!(
        spots[..6].iter().all(Option::is_some),
        "the first labels fit"
    );
    assert!(placed.len() >= 12, "only {} of 14 placed", placed.len());
    for (k, &(i, a)) in placed.iter().enumerate() {
        assert!(
            a.0 >= bounds.0 && a.1 >= bounds.1 && a.2 <= bounds.2 && a.3 <= bounds.3,
            "label {i} leaves the plot: {a:?}"
        );
        for &(j, b) in &placed[..k] {
            assert_eq!(overlap(a, b), 0, "labels {i} and {j} overlap: {a:?} {b:?}");
        }
        for (j, l) in labels.iter().enumerate().filter(|(j, _)| *j != i) {
            let (x, y, r) = (l.center.0, l.center.1, l.radius);
            let point = (x - r, y - r, x + r, y + r);
            assert_eq!(overlap(a, point), 0, "label {i} covers point {j}");
        }
    }
    // A label with nowhere to go is left out, not drawn over the others.
    let boxed_in = place_labels(&labels, (290, 190, 380, 250));
    assert!(boxed_in.iter().any(Option::is_none));
}

#[test]
fn legend_wraps_onto_rows() {
    let many: Vec<Entry> = (0..30)
        .map(|i| entry(Swatch::Dot(color(i)), format!("series number {i}")))
        .collect();
    let (_, rows) = legend_layout(&many, WIDTH);
    assert!(rows > 2);
    assert_eq!(legend_height(&[]), 0);
}
