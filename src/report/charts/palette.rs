//! The series colours of every chart: Tableau 10, then as many more as a chart needs, each
//! as far as can be from those before it.

use plotters::style::RGBColor;

/// Tableau 10: distinct, and readable on white.
pub(super) const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4E, 0x79, 0xA7),
    RGBColor(0xF2, 0x8E, 0x2B),
    RGBColor(0xE1, 0x57, 0x59),
    RGBColor(0x59, 0xA1, 0x4F),
    RGBColor(0xB0, 0x7A, 0xA1),
    RGBColor(0x76, 0xB7, 0xB2),
    RGBColor(0xED, 0xC9, 0x48),
    RGBColor(0x9C, 0x75, 0x5F),
    RGBColor(0xFF, 0x9D, 0xA7),
    RGBColor(0xBA, 0xB0, 0xAC),
];

/// How many series [`color`] tells apart; beyond it colours repeat.
pub(crate) const COLORS: usize = 96;

/// The colour of series `i`: Tableau 10 first, then, for charts with more series, colours
/// picked from an HSL grid one at a time, each the farthest from every colour before it, so
/// that no two of the first [`COLORS`] series share a colour.
pub(crate) fn color(i: usize) -> RGBColor {
    static EXTENDED: std::sync::OnceLock<Vec<RGBColor>> = std::sync::OnceLock::new();
    let all = EXTENDED.get_or_init(|| extend_palette(COLORS));
    all[i % all.len()]
}

/// `n` colours: the palette, then grid colours by farthest-point selection.
pub(super) fn extend_palette(n: usize) -> Vec<RGBColor> {
    // Saturation and lightness pairs dark enough to read on white, light enough to tell apart.
    const SHADES: [(f64, f64); 4] = [(0.70, 0.45), (0.55, 0.33), (0.60, 0.58), (0.40, 0.48)];
    let mut candidates: Vec<RGBColor> = (0..36)
        .flat_map(|h| SHADES.map(|(s, l)| hsl(f64::from(h) * 10.0, s, l)))
        .collect();
    let mut out: Vec<RGBColor> = PALETTE.to_vec();
    // Each candidate's distance to the nearest colour chosen so far.
    let mut nearest: Vec<f64> = candidates
        .iter()
        .map(|c| {
            out.iter()
                .map(|o| distance(*c, *o))
                .fold(f64::MAX, f64::min)
        })
        .collect();
    while out.len() < n && !candidates.is_empty() {
        let (k, _) = nearest
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .expect("candidates remain");
        let pick = candidates.swap_remove(k);
        nearest.swap_remove(k);
        for (c, d) in candidates.iter().zip(nearest.iter_mut()) {
            *d = d.min(distance(*c, pick));
        }
        out.push(pick);
    }
    out
}

/// A colour from hue (degrees), saturation and lightness (0 to 1).
pub(super) fn hsl(h: f64, s: f64, l: f64) -> RGBColor {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let hp = (h % 360.0) / 60.0;
    let x = c * (1.0 - (hp % 2.0 - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let byte = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    RGBColor(byte(r), byte(g), byte(b))
}

/// How far apart two colours look: Euclidean RGB distance weighted by the mean red level
/// (the "redmean" approximation of perceived difference).
pub(super) fn distance(a: RGBColor, b: RGBColor) -> f64 {
    let rm = (f64::from(a.0) + f64::from(b.0)) / 2.0;
    let (dr, dg, db) = (
        f64::from(a.0) - f64::from(b.0),
        f64::from(a.1) - f64::from(b.1),
        f64::from(a.2) - f64::from(b.2),
    );
    ((2.0 + rm / 256.0) * dr * dr + 4.0 * dg * dg + (2.0 + (255.0 - rm) / 256.0) * db * db).sqrt()
}

/// `c` blended with white: `f` = 1 keeps it, 0 gives white.
pub(super) fn tint(c: RGBColor, f: f64) -> RGBColor {
    let m = |v: u8| (255.0 + (f64::from(v) - 255.0) * f).round() as u8;
    RGBColor(m(c.0), m(c.1), m(c.2))
}
