//! Chart text, laid out and rasterised with ab_glyph from the bundled font.
//!
//! plotters' own `ab_glyph` text path places each glyph at its bounding box instead of its pen
//! position (side bearings are dropped and the baseline moves with each glyph's top), which
//! makes `0.5176` read as `0.5 176` and lifts decimal points; at the small sizes charts use
//! that hurts reading figures. So every piece of chart text goes through [`draw`]: kerned
//! advances, one baseline, anti-aliased coverage blended onto the canvas.

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::{Area, DrawResult, INK};
use crate::report::font;

fn face() -> &'static FontRef<'static> {
    static FACE: std::sync::OnceLock<FontRef<'static>> = std::sync::OnceLock::new();
    FACE.get_or_init(|| {
        FontRef::try_from_slice(font::DEJAVU_SANS).expect("the bundled DejaVu Sans font parses")
    })
}

/// How a piece of text is drawn and where its anchor point sits on it.
#[derive(Clone, Copy)]
pub struct Style {
    pub size: f32,
    pub color: RGBColor,
    pub h: HPos,
    pub v: VPos,
    /// Rotated a quarter turn anticlockwise (reads bottom to top), for y-axis descriptions.
    pub vertical: bool,
}

/// `size` pixels, ink colour, anchored at its top-left.
pub fn style(size: u32) -> Style {
    Style {
        size: size as f32,
        color: INK,
        h: HPos::Left,
        v: VPos::Top,
        vertical: false,
    }
}

impl Style {
    pub fn at(mut self, h: HPos, v: VPos) -> Self {
        self.h = h;
        self.v = v;
        self
    }
    pub fn color(mut self, c: RGBColor) -> Self {
        self.color = c;
        self
    }
    pub fn vertical(mut self) -> Self {
        self.vertical = true;
        self
    }
}

/// Glyphs positioned on a baseline at y = ascent, and the text's width and height.
fn layout(s: &str, size: f32) -> (Vec<ab_glyph::Glyph>, f32, f32) {
    let scale = PxScale::from(size);
    let f = face().as_scaled(scale);
    let mut x = 0.0f32;
    let mut prev = None;
    let mut glyphs = Vec::with_capacity(s.len());
    for ch in s.chars() {
        let id = f.glyph_id(ch);
        if let Some(p) = prev {
            x += f.kern(p, id);
        }
        glyphs.push(id.with_scale_and_position(scale, point(x, f.ascent())));
        x += f.h_advance(id);
        prev = Some(id);
    }
    (glyphs, x, f.ascent() - f.descent())
}

/// Width of `s` in pixels at `size`.
pub fn width(s: &str, size: u32) -> u32 {
    layout(s, size as f32).1.ceil() as u32
}

/// Height of a line of text at `size` (ascent to descent).
pub fn height(size: u32) -> u32 {
    let f = face().as_scaled(PxScale::from(size as f32));
    (f.ascent() - f.descent()).ceil() as u32
}

/// Draws `s` with its anchor at `at` (pixels of `area`).
pub fn draw(area: &Area<'_>, s: &str, at: (i32, i32), st: Style) -> DrawResult {
    let (glyphs, w, h) = layout(s, st.size);
    let ox = match st.h {
        HPos::Left => 0.0,
        HPos::Center => -w / 2.0,
        HPos::Right => -w,
    };
    let oy = match st.v {
        VPos::Top => 0.0,
        VPos::Center => -h / 2.0,
        VPos::Bottom => -h,
    };
    // Whole-pixel offsets: a fractional one would make rows collide or skip when rounded.
    let (ox, oy) = (ox.round(), oy.round());
    let mut pixels: Vec<((i32, i32), f32)> = Vec::new();
    for g in glyphs {
        let Some(outline) = face().outline_glyph(g) else {
            continue;
        };
        let b = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            if coverage <= 0.01 {
                return;
            }
            let lx = (b.min.x + gx as f32 + ox).round() as i32;
            let ly = (b.min.y + gy as f32 + oy).round() as i32;
            let p = if st.vertical {
                (at.0 + ly, at.1 - lx)
            } else {
                (at.0 + lx, at.1 + ly)
            };
            pixels.push((p, coverage.min(1.0)));
        });
    }
    for (p, coverage) in pixels {
        area.draw_pixel(p, &st.color.mix(f64::from(coverage)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_measured_with_kerned_advances() {
        let one = width("0", 15);
        assert!(one > 5 && one < 15, "{one}");
        // Advances add up: ten digits are ten times as wide as one (DejaVu digits are tabular).
        assert!((width("0000000000", 15) as i32 - 10 * one as i32).abs() <= 10);
        assert!(height(15) >= 15 && height(15) < 22);
        assert_eq!(width("", 15), 0);
    }
}
