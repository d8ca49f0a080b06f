//! Number formatting shared by the charts, the page and the Markdown summary.

/// Milliseconds with enough digits to compare, whatever the magnitude (as the terminal table).
pub fn ms(x: f64) -> String {
    match x {
        x if x >= 100.0 => format!("{x:.1}"),
        x if x >= 1.0 => format!("{x:.3}"),
        x => format!("{x:.4}"),
    }
}

/// A value with about three significant digits, no exponent for everyday magnitudes.
pub fn num(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        trim(format!("{x:.1}"))
    } else if a >= 1.0 {
        trim(format!("{x:.2}"))
    } else if a >= 0.001 {
        let digits = (-a.log10().floor()) as usize + 2;
        trim(format!("{x:.digits$}"))
    } else {
        format!("{x:.1e}")
    }
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Bytes in binary units: `512 B`, `476.3 KiB`, `8.1 MiB`, `1.50 GiB`.
pub fn bytes(b: f64) -> String {
    const K: f64 = 1024.0;
    match b {
        b if b >= K * K * K => format!("{:.2} GiB", b / (K * K * K)),
        b if b >= K * K => format!("{:.1} MiB", b / (K * K)),
        b if b >= K => format!("{:.1} KiB", b / K),
        b => format!("{b:.0} B"),
    }
}

/// Samples per second: `157746`, `2203.1`.
pub fn rate(x: f64) -> String {
    if x >= 1000.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// Millijoules per inference.
pub fn mj(x: f64) -> String {
    if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// A fraction as a percentage with one decimal.
pub fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_naturally() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(0.01623), "0.0162");
        assert_eq!(num(0.4381), "0.438");
        assert_eq!(num(2.5), "2.5");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(157746.0), "158k");
        assert_eq!(num(2_500_000.0), "2.50M");
        assert_eq!(bytes(487720.0), "476.3 KiB");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(ms(0.43651), "0.4365");
        assert_eq!(pct(0.9721), "97.2%");
    }
}
