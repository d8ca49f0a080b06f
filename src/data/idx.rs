//! IDX files, the format of MNIST and Fashion-MNIST (`train-images-idx3-ubyte`, optionally
//! gzipped): two zero bytes, a type code, the number of dimensions, then each dimension as a
//! big-endian u32, then the values in C order (big-endian for multi-byte types).
//! Reference: <http://yann.lecun.com/exdb/mnist/> ("FILE FORMATS FOR THE MNIST DATABASE").

use std::path::Path;

use super::DataError;

#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

pub fn read(path: &Path) -> Result<IdxArray, DataError> {
    let bytes = super::read_maybe_gz(path)?;
    parse(&bytes).map_err(|reason| DataError::new(path, reason))
}

pub fn parse(bytes: &[u8]) -> Result<IdxArray, String> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err("not an IDX file (it must start with two zero bytes)".into());
    }
    let size = match bytes[2] {
        0x08 | 0x09 => 1,
        0x0B => 2,
        0x0C | 0x0D => 4,
        0x0E => 8,
        t => return Err(format!("unknown IDX type code 0x{t:02X}")),
    };
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if ndim == 0 || bytes.len() < header {
        return Err("truncated IDX header".into());
    }
    let shape: Vec<usize> = (0..ndim)
        .map(|i| {
            let b = &bytes[4 + 4 * i..8 + 4 * i];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        })
        .collect();
    let count: usize = shape.iter().product();
    let data = &bytes[header..];
    if data.len() < count * size {
        return Err(format!(
            "the header's shape {shape:?} needs {} data bytes, the file has {}",
            count * size,
            data.len()
        ));
    }
    let values = data
        .chunks_exact(size)
        .take(count)
        .map(|b| match bytes[2] {
            0x08 => b[0] as f64,
            0x09 => b[0] as i8 as f64,
            0x0B => i16::from_be_bytes([b[0], b[1]]) as f64,
            0x0C => i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64,
            0x0D => f32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64,
            _ => f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        })
        .collect();
    Ok(IdxArray { shape, values })
}

/// Writes unsigned bytes as an IDX file (tests and tools).
pub fn write_u8(path: &Path, shape: &[usize], values: &[u8]) -> std::io::Result<()> {
    let mut out = vec![0, 0, 0x08, shape.len() as u8];
    for &d in shape {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(values);
    std::fs::write(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_it_writes_and_checks_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("images-idx3-ubyte");
        write_u8(&p, &[2, 2, 3], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255]).unwrap();
        let a = read(&p).unwrap();
        assert_eq!(a.shape, vec![2, 2, 3]);
        assert_eq!(a.values[11], 255.0);
        // Big-endian float32 (type 0x0D), one dimension.
        let mut f = vec![0, 0, 0x0D, 1, 0, 0, 0, 1];
        f.extend_from_slice(&1.5f32.to_be_bytes());
        assert_eq!(parse(&f).unwrap().values, vec![1.5]);
        assert!(parse(b"\x01\x00\x08\x01")
            .unwrap_err()
            .contains("not an IDX"));
        assert!(parse(&[0, 0, 0x08, 1, 0, 0, 0, 9, 1])
            .unwrap_err()
            .contains("needs 9 data bytes"));
    }
}
