//! Inputs of an ONNX model: synthetic batches sized from the graph for the timed loop and
//! for fidelity, and the suite's images in the graph's layout.

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::describe::{InputInfo, Layout, Values};
use crate::data::Dataset;

/// candle's dtype for the name `describe` recorded.
pub fn dtype_of(name: &str) -> DType {
    match name {
        "f16" => DType::F16,
        "bf16" => DType::BF16,
        "f64" => DType::F64,
        "i64" => DType::I64,
        "u8" => DType::U8,
        "u32" => DType::U32,
        _ => DType::F32,
    }
}

/// Every input of the graph for a batch of `batch`, seeded by `seed` (each input its own
/// stream): floats standard normal, token ids uniform below the embedding table's rows,
/// other integers and booleans ones.
pub fn synthetic(
    inputs: &[InputInfo],
    batch: usize,
    seed: u64,
    device: &Device,
) -> candle_core::Result<Vec<Tensor>> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, info)| {
            let mut shape = vec![batch];
            shape.extend_from_slice(&info.shape);
            let n: usize = shape.iter().product();
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(i as u64));
            let dtype = dtype_of(&info.dtype);
            let t = match info.values {
                Values::Normal => {
                    let v: Vec<f32> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
                    Tensor::from_vec(v, shape, device)?
                }
                Values::Ids { below } => {
                    let v: Vec<i64> = (0..n)
                        .map(|_| rng.random_range(0..below as i64))
                        .collect();
                    Tensor::from_vec(v, shape, device)?
                }
                Values::Ones => Tensor::ones(shape, DType::I64, device)?,
            };
            t.to_dtype(dtype)
        })
        .collect()
}

/// How synthetic inputs are made, in words, for the run file.
pub fn describe(inputs: &[InputInfo], samples: usize, seed: u64) -> String {
    let parts: Vec<String> = inputs
        .iter()
        .map(|i| {
            let how = match i.values {
                Values::Normal => "standard normal".to_string(),
                Values::Ids { below } => format!("token ids uniform in 0..{below}"),
                Values::Ones => "ones".to_string(),
            };
            format!("{} {how}", i.name)
        })
        .collect();
    format!(
        "synthetic inputs: {samples} samples, seed {seed} ({})",
        parts.join("; ")
    )
}

/// The samples `indices` of `data` at the input's height and width, in its layout
/// (`[n, c, h, w]` or `[n, h, w, c]` values).
pub fn images(
    data: &Dataset,
    input: &InputInfo,
    indices: &[usize],
) -> Result<Vec<f32>, String> {
    let (c, h, w) = image_dims(input)?;
    let nchw = data.inputs(Some((h, w)), indices);
    if input.layout != Some(Layout::Nhwc) {
        return Ok(nchw);
    }
    let per = c * h * w;
    let mut out = Vec::with_capacity(nchw.len());
    for sample in nchw.chunks(per) {
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    out.push(sample[ch * h * w + y * w + x]);
                }
            }
        }
    }
    Ok(out)
}

/// (channels, height, width) of an image input, whatever its layout.
pub fn image_dims(input: &InputInfo) -> Result<(usize, usize, usize), String> {
    match (input.layout, input.shape.as_slice()) {
        (Some(Layout::Nchw), &[c, h, w]) => Ok((c, h, w)),
        (Some(Layout::Nhwc), &[h, w, c]) => Ok((c, h, w)),
        _ => Err(format!(
            "input `{}` ({} {:?}) is not an image (a 4-D float input)",
            input.name, input.dtype, input.shape
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, dtype: &str, shape: Vec<usize>, values: Values) -> InputInfo {
        InputInfo {
            name: name.into(),
            dtype: dtype.into(),
            shape,
            values,
            layout: None,
        }
    }

    /// Ids stay below the table's rows, masks are ones, floats are seeded: the same seed
    /// gives the same batch, another seed another one.
    #[test]
    fn synthetic_inputs_follow_the_graph() {
        let inputs = [
            info("ids", "i64", vec![16], Values::Ids { below: 7 }),
            info("mask", "i64", vec![16], Values::Ones),
            info("x", "f32", vec![3], Values::Normal),
        ];
        let b = synthetic(&inputs, 4, 1, &Device::Cpu).unwrap();
        assert_eq!(b[0].dims(), &[4, 16]);
        let ids: Vec<i64> = b[0].flatten_all().unwrap().to_vec1().unwrap();
        assert!(ids.iter().all(|&i| (0..7).contains(&i)), "{ids:?}");
        assert!(ids.contains(&6) && ids.contains(&0));
        let mask: Vec<i64> = b[1].flatten_all().unwrap().to_vec1().unwrap();
        assert!(mask.iter().all(|&m| m == 1));
        assert_eq!(b[2].dtype(), DType::F32);
        let again = synthetic(&inputs, 4, 1, &Device::Cpu).unwrap();
        let other = synthetic(&inputs, 4, 2, &Device::Cpu).unwrap();
        let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v(&b[2]), v(&again[2]));
        assert_ne!(v(&b[2]), v(&other[2]));
        assert_eq!(
            describe(&inputs, 4, 1),
            "synthetic inputs: 4 samples, seed 1 (ids token ids uniform in 0..7; mask ones; x standard normal)"
        );
    }

    #[test]
    fn channels_last_images_are_transposed_per_sample() {
        let mut nhwc = info("img", "f32", vec![2, 2, 3], Values::Normal);
        nhwc.layout = Some(Layout::Nhwc);
        assert_eq!(image_dims(&nhwc).unwrap(), (3, 2, 2));
        let mut nchw = info("img", "f32", vec![3, 2, 2], Values::Normal);
        nchw.layout = Some(Layout::Nchw);
        assert_eq!(image_dims(&nchw).unwrap(), (3, 2, 2));
        let flat = info("x", "f32", vec![12], Values::Normal);
        assert!(image_dims(&flat).unwrap_err().contains("not an image"));
    }
}
