//! The one font every chart uses, compiled into the binary so that charts render the same on a
//! machine with no system fonts (plotters' `ab_glyph` backend; its font-kit path is not built).
//! DejaVu Sans, licence in `assets/fonts/LICENSE-DejaVu.txt`.

use std::sync::Once;

use plotters::style::{register_font, FontStyle};

/// The family name charts ask for.
pub const FAMILY: &str = "sans-serif";

pub(crate) static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

/// Registers the bundled font under [`FAMILY`] (once per process). Bold and oblique requests
/// fall back to the regular face.
pub fn ensure() {
    REGISTER.call_once(|| {
        if register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_err() {
            // The bytes are compiled in and parsed by a test; this cannot happen at run time.
            panic!("the bundled DejaVu Sans font does not parse");
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn bundled_font_registers() {
        super::ensure();
        super::ensure();
    }
}
