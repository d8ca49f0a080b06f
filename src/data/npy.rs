//! NumPy `.npy` files (format versions 1, 2 and 3): a small reader for numeric arrays in C
//! order, and a writer for tests and tools. Reference:
//! <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>.

use std::path::Path;

use super::DataError;

/// A numeric array read from a `.npy` file, widened to f64 (exact for every integer type up
/// to 2^53 and for both float types).
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
    /// The file's dtype descriptor, as in `<f4` or `|u1`.
    pub descr: String,
}

const MAGIC: &[u8] = b"\x93NUMPY";

pub fn read(path: &Path) -> Result<NpyArray, DataError> {
    let bytes = super::read_maybe_gz(path)?;
    parse(&bytes).map_err(|reason| DataError::new(path, reason))
}

pub fn parse(bytes: &[u8]) -> Result<NpyArray, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (the magic string \\x93NUMPY is missing)".into());
    }
    let major = bytes[6];
    let (header_len, start): (usize, usize) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated header".into());
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or("truncated header")?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| "header is not text")?;
    let descr = dict_value(header, "descr")
        .and_then(quoted)
        .ok_or("header has no 'descr'")?;
    let fortran = dict_value(header, "fortran_order").ok_or("header has no 'fortran_order'")?;
    if fortran.starts_with("True") {
        return Err(
            "Fortran-ordered arrays are not supported; save with np.ascontiguousarray(x)".into(),
        );
    }
    let shape = dict_value(header, "shape").ok_or("header has no 'shape'")?;
    let shape = parse_shape(shape)?;
    let count: usize = shape.iter().product();
    let (little, kind, size) = parse_descr(&descr)?;
    let data = &bytes[end..];
    if data.len() < count * size {
        return Err(format!(
            "data holds {} bytes, the shape {shape:?} of {descr} needs {}",
            data.len(),
            count * size
        ));
    }
    let mut values = Vec::with_capacity(count);
    for chunk in data.chunks_exact(size).take(count) {
        let mut b = [0u8; 8];
        b[..size].copy_from_slice(chunk);
        if !little {
            b[..size].reverse();
        }
        let v = match (kind, size) {
            ('f', 4) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            ('f', 8) => f64::from_le_bytes(b),
            ('u', 1) | ('b', 1) => b[0] as f64,
            ('i', 1) => b[0] as i8 as f64,
            ('u', 2) => u16::from_le_bytes([b[0], b[1]]) as f64,
            ('i', 2) => i16::from_le_bytes([b[0], b[1]]) as f64,
            ('u', 4) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            ('i', 4) => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            ('u', 8) => u64::from_le_bytes(b) as f64,
            ('i', 8) => i64::from_le_bytes(b) as f64,
            _ => unreachable!("parse_descr admits only these"),
        };
        values.push(v);
    }
    Ok(NpyArray {
        shape,
        values,
        descr,
    })
}

/// The text after `'key':` up to the end of the header.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let colon = rest.find(':')?;
    Some(rest[colon + 1..].trim_start())
}

fn quoted(v: &str) -> Option<String> {
    let q = v.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = &v[1..];
    Some(inner[..inner.find(q)?].to_string())
}

fn parse_shape(v: &str) -> Result<Vec<usize>, String> {
    let open = v.strip_prefix('(').ok_or("'shape' is not a tuple")?;
    let close = open.find(')').ok_or("'shape' is not a tuple")?;
    open[..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format!("bad dimension `{s}` in 'shape'"))
        })
        .collect()
}

fn parse_descr(descr: &str) -> Result<(bool, char, usize), String> {
    let unsupported = || {
        format!("unsupported dtype `{descr}`; use a numeric dtype (float32/64, (u)int8..64, bool)")
    };
    let mut chars = descr.chars();
    let order = chars.next().ok_or_else(unsupported)?;
    let kind = chars.next().ok_or_else(unsupported)?;
    let size: usize = chars.as_str().parse().map_err(|_| unsupported())?;
    let little = match order {
        '<' | '|' | '=' => true,
        '>' => false,
        _ => return Err(unsupported()),
    };
    let ok = matches!(
        (kind, size),
        ('f', 4) | ('f', 8) | ('u', 1 | 2 | 4 | 8) | ('i', 1 | 2 | 4 | 8) | ('b', 1)
    );
    if !ok {
        return Err(unsupported());
    }
    Ok((little, kind, size))
}

/// Element types the writer knows.
pub enum NpyData<'a> {
    F32(&'a [f32]),
    U8(&'a [u8]),
    I64(&'a [i64]),
}

/// Writes a version 1.0 `.npy` file in C order.
pub fn write(path: &Path, shape: &[usize], data: NpyData<'_>) -> std::io::Result<()> {
    let (descr, body): (&str, Vec<u8>) = match data {
        NpyData::F32(v) => ("<f4", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        NpyData::U8(v) => ("|u1", v.to_vec()),
        NpyData::I64(v) => ("<i8", v.iter().flat_map(|x| x.to_le_bytes()).collect()),
    };
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&body);
    std::fs::write(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_f32_u8_and_i64() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        write(&p, &[2, 3], NpyData::F32(&[0.5, -1.0, 2.0, 3.0, 4.0, 5.25])).unwrap();
        let a = read(&p).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.values, vec![0.5, -1.0, 2.0, 3.0, 4.0, 5.25]);
        assert_eq!(a.descr, "<f4");
        write(&p, &[3], NpyData::U8(&[0, 255, 7])).unwrap();
        assert_eq!(read(&p).unwrap().values, vec![0.0, 255.0, 7.0]);
        write(&p, &[2], NpyData::I64(&[-3, 9])).unwrap();
        let a = read(&p).unwrap();
        assert_eq!((a.shape, a.values), (vec![2], vec![-3.0, 9.0]));
    }

    #[test]
    fn reads_big_endian_and_version_2_headers() {
        // As numpy writes np.array([1, 2], dtype='>i2') with format version 2.0.
        let header = "{'descr': '>i2', 'fortran_order': False, 'shape': (2,), }\n";
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[2, 0]);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&[0, 1, 0, 2]);
        let a = parse(&bytes).unwrap();
        assert_eq!(a.values, vec![1.0, 2.0]);
    }

    #[test]
    fn explains_what_it_cannot_read() {
        assert!(parse(b"PK\x03\x04 zip").unwrap_err().contains("not a .npy"));
        let header = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }\n";
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        assert!(parse(&bytes).unwrap_err().contains("Fortran"));
        let short = bytes.replace_header("True", "False");
        assert!(parse(&short).unwrap_err().contains("needs 16"));
        let complex = bytes.replace_header(
            "'<f4', 'fortran_order': True",
            "'<c8', 'fortran_order': False",
        );
        assert!(parse(&complex)
            .unwrap_err()
            .contains("unsupported dtype `<c8`"));
    }

    trait ReplaceHeader {
        fn replace_header(&self, from: &str, to: &str) -> Vec<u8>;
    }
    impl ReplaceHeader for Vec<u8> {
        fn replace_header(&self, from: &str, to: &str) -> Vec<u8> {
            let text = String::from_utf8_lossy(&self[10..]).replace(from, to);
            let mut out = MAGIC.to_vec();
            out.extend_from_slice(&[1, 0]);
            out.extend_from_slice(&(text.len() as u16).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
            out
        }
    }
}
