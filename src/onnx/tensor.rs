//! ONNX tensors (initializers, `Constant` values) decoded and checked once into host bytes in
//! a candle dtype, ready to become device tensors.
//!
//! ONNX integer types candle has no CPU kernels for (int8, int16, int32, uint16, uint64) are
//! widened to i64, and bool becomes u8 (0/1): the values are exact and every shape
//! computation of an exported graph runs in i64 anyway.

use candle_core::{DType, Device, Tensor};

use super::error::OnnxError;
use super::proto::{tensor_proto::DataLocation, TensorProto};

/// ONNX `TensorProto.DataType` codes.
pub mod onnx_type {
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const UINT16: i32 = 4;
    pub const INT16: i32 = 5;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const STRING: i32 = 8;
    pub const BOOL: i32 = 9;
    pub const FLOAT16: i32 = 10;
    pub const DOUBLE: i32 = 11;
    pub const UINT32: i32 = 12;
    pub const UINT64: i32 = 13;
    pub const BFLOAT16: i32 = 16;
}

/// The name of an ONNX data type code, for messages.
pub fn onnx_type_name(code: i32) -> String {
    use onnx_type::*;
    let name = match code {
        FLOAT => "FLOAT",
        UINT8 => "UINT8",
        INT8 => "INT8",
        UINT16 => "UINT16",
        INT16 => "INT16",
        INT32 => "INT32",
        INT64 => "INT64",
        STRING => "STRING",
        BOOL => "BOOL",
        FLOAT16 => "FLOAT16",
        DOUBLE => "DOUBLE",
        UINT32 => "UINT32",
        UINT64 => "UINT64",
        BFLOAT16 => "BFLOAT16",
        _ => return format!("type code {code}"),
    };
    name.to_string()
}

/// The candle dtype an ONNX element type is held in, or `None` when it is not supported.
pub fn dtype_of(code: i32) -> Option<DType> {
    use onnx_type::*;
    Some(match code {
        FLOAT => DType::F32,
        DOUBLE => DType::F64,
        FLOAT16 => DType::F16,
        BFLOAT16 => DType::BF16,
        UINT8 | BOOL => DType::U8,
        UINT32 => DType::U32,
        INT8 | INT16 | INT32 | INT64 | UINT16 | UINT64 => DType::I64,
        _ => return None,
    })
}

/// Bytes of one element as ONNX stores it in `raw_data`.
fn raw_size(code: i32) -> Option<usize> {
    use onnx_type::*;
    Some(match code {
        UINT8 | INT8 | BOOL => 1,
        UINT16 | INT16 | FLOAT16 | BFLOAT16 => 2,
        FLOAT | INT32 | UINT32 => 4,
        INT64 | DOUBLE | UINT64 => 8,
        _ => return None,
    })
}

/// A decoded tensor: little-endian bytes in `dtype`, row-major over `dims`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub dtype: DType,
    pub dims: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl HostTensor {
    pub fn elem_count(&self) -> usize {
        self.dims.iter().product()
    }

    /// A device tensor holding the same values.
    pub fn to_tensor(&self, device: &Device) -> candle_core::Result<Tensor> {
        Tensor::from_raw_buffer(&self.bytes, self.dtype, &self.dims, device)
    }

    /// The values as f32 (floats only).
    pub fn to_f32(&self) -> candle_core::Result<Vec<f32>> {
        self.to_tensor(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()
    }

    /// An f32 tensor from its values.
    pub fn from_f32(dims: Vec<usize>, values: &[f32]) -> Self {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        HostTensor {
            dtype: DType::F32,
            dims,
            bytes,
        }
    }

    pub fn is_float(&self) -> bool {
        self.dtype.is_float()
    }

    /// Decodes and checks a `TensorProto`: dims non-negative, data where the file says it
    /// is (raw bytes or the typed field that goes with the type), of the right length.
    pub fn decode(t: &TensorProto) -> Result<Self, OnnxError> {
        let name = t.name.as_deref().unwrap_or("<unnamed>");
        if t.data_location == Some(DataLocation::External as i32) || !t.external_data.is_empty() {
            let location = t
                .external_data
                .iter()
                .find(|e| e.key.as_deref() == Some("location"))
                .and_then(|e| e.value.clone())
                .unwrap_or_else(|| "unknown file".into());
            return Err(OnnxError::ExternalData {
                name: name.to_string(),
                location,
            });
        }
        if t.segment.is_some() {
            return Err(OnnxError::tensor(
                name,
                "segmented tensors are not supported",
            ));
        }
        let code = t.data_type.unwrap_or(0);
        let dtype = dtype_of(code).ok_or_else(|| {
            OnnxError::tensor(
                name,
                format!("element type {} is not supported", onnx_type_name(code)),
            )
        })?;
        let dims = dims_of(name, &t.dims)?;
        let n = checked_count(name, &dims)?;
        let bytes = match &t.raw_data {
            Some(raw) => from_raw(name, code, raw, n)?,
            None => from_typed(name, code, t, n)?,
        };
        Ok(HostTensor { dtype, dims, bytes })
    }
}

fn dims_of(name: &str, dims: &[i64]) -> Result<Vec<usize>, OnnxError> {
    dims.iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| OnnxError::tensor(name, format!("negative dimension {d} in {dims:?}")))
        })
        .collect()
}

fn checked_count(name: &str, dims: &[usize]) -> Result<usize, OnnxError> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        // Anything over 2^40 elements cannot be in a protobuf file (2 GB limit) anyway.
        .filter(|&n| n < (1usize << 40))
        .ok_or_else(|| OnnxError::tensor(name, format!("dimensions {dims:?} are too large")))
}

fn length_error(name: &str, what: &str, got: usize, want: usize) -> OnnxError {
    OnnxError::tensor(
        name,
        format!("{what} holds {got} values but its dimensions need {want}; the file is inconsistent or truncated"),
    )
}

fn from_raw(name: &str, code: i32, raw: &[u8], n: usize) -> Result<Vec<u8>, OnnxError> {
    use onnx_type::*;
    let size = raw_size(code).ok_or_else(|| {
        OnnxError::tensor(name, format!("{} has no raw form", onnx_type_name(code)))
    })?;
    if raw.len() != n * size {
        return Err(length_error(name, "raw_data", raw.len() / size, n));
    }
    Ok(match code {
        BOOL => raw.iter().map(|&b| u8::from(b != 0)).collect(),
        INT8 => widen(raw.iter().map(|&b| i8::from_le_bytes([b]) as i64)),
        INT16 => widen(
            raw.chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as i64),
        ),
        UINT16 => widen(
            raw.chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as i64),
        ),
        INT32 => widen(
            raw.chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64),
        ),
        UINT64 => widen(raw.chunks_exact(8).map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::from_le_bytes(b) as i64
        })),
        _ => raw.to_vec(),
    })
}

fn widen(values: impl Iterator<Item = i64>) -> Vec<u8> {
    values.flat_map(|v| v.to_le_bytes()).collect()
}

fn from_typed(name: &str, code: i32, t: &TensorProto, n: usize) -> Result<Vec<u8>, OnnxError> {
    use onnx_type::*;
    let check = |what: &str, got: usize| {
        if got == n {
            Ok(())
        } else {
            Err(length_error(name, what, got, n))
        }
    };
    Ok(match code {
        FLOAT => {
            check("float_data", t.float_data.len())?;
            t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        DOUBLE => {
            check("double_data", t.double_data.len())?;
            t.double_data.iter().flat_map(|v| v.to_le_bytes()).collect()
        }
        INT64 => {
            check("int64_data", t.int64_data.len())?;
            widen(t.int64_data.iter().copied())
        }
        UINT32 => {
            check("uint64_data", t.uint64_data.len())?;
            t.uint64_data
                .iter()
                .flat_map(|&v| (v as u32).to_le_bytes())
                .collect()
        }
        UINT64 => {
            check("uint64_data", t.uint64_data.len())?;
            widen(t.uint64_data.iter().map(|&v| v as i64))
        }
        FLOAT16 | BFLOAT16 => {
            check("int32_data", t.int32_data.len())?;
            // The 16 bits of each value sit in the low half of an int32.
            t.int32_data
                .iter()
                .flat_map(|&v| (v as u16).to_le_bytes())
                .collect()
        }
        UINT8 | BOOL => {
            check("int32_data", t.int32_data.len())?;
            t.int32_data
                .iter()
                .map(|&v| {
                    if code == BOOL {
                        u8::from(v != 0)
                    } else {
                        v as u8
                    }
                })
                .collect()
        }
        INT8 | INT16 | INT32 | UINT16 => {
            check("int32_data", t.int32_data.len())?;
            widen(t.int32_data.iter().map(|&v| v as i64))
        }
        _ => {
            return Err(OnnxError::tensor(
                name,
                format!("element type {} is not supported", onnx_type_name(code)),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(code: i32, dims: Vec<i64>) -> TensorProto {
        TensorProto {
            name: Some("t".into()),
            data_type: Some(code),
            dims,
            ..Default::default()
        }
    }

    #[test]
    fn raw_and_typed_floats_decode_to_the_same_tensor() {
        let mut raw = proto(onnx_type::FLOAT, vec![2, 2]);
        raw.raw_data = Some(
            [1.0f32, 2.0, 3.0, -4.5]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        );
        let mut typed = proto(onnx_type::FLOAT, vec![2, 2]);
        typed.float_data = vec![1.0, 2.0, 3.0, -4.5];
        let a = HostTensor::decode(&raw).unwrap();
        assert_eq!(a, HostTensor::decode(&typed).unwrap());
        assert_eq!(a.to_f32().unwrap(), vec![1.0, 2.0, 3.0, -4.5]);
    }

    #[test]
    fn int32_widens_to_i64_and_bool_to_u8() {
        let mut t = proto(onnx_type::INT32, vec![3]);
        t.int32_data = vec![-1, 0, 7];
        let h = HostTensor::decode(&t).unwrap();
        assert_eq!(h.dtype, DType::I64);
        let v: Vec<i64> = h.to_tensor(&Device::Cpu).unwrap().to_vec1().unwrap();
        assert_eq!(v, vec![-1, 0, 7]);
        let mut b = proto(onnx_type::BOOL, vec![2]);
        b.raw_data = Some(vec![0, 5]);
        assert_eq!(HostTensor::decode(&b).unwrap().bytes, vec![0, 1]);
    }

    #[test]
    fn inconsistent_sizes_negative_dims_and_external_data_are_errors() {
        let mut short = proto(onnx_type::FLOAT, vec![2, 3]);
        short.raw_data = Some(vec![0; 20]);
        let e = HostTensor::decode(&short).unwrap_err().to_string();
        assert!(
            e.contains("raw_data holds 5 values") && e.contains("need 6"),
            "{e}"
        );

        let mut typed = proto(onnx_type::INT64, vec![4]);
        typed.int64_data = vec![1, 2];
        assert!(HostTensor::decode(&typed).is_err());

        let neg = proto(onnx_type::FLOAT, vec![-1]);
        assert!(HostTensor::decode(&neg)
            .unwrap_err()
            .to_string()
            .contains("negative dimension"));

        let mut ext = proto(onnx_type::FLOAT, vec![2]);
        ext.data_location = Some(DataLocation::External as i32);
        assert!(matches!(
            HostTensor::decode(&ext),
            Err(OnnxError::ExternalData { .. })
        ));

        let huge = proto(onnx_type::FLOAT, vec![1 << 30, 1 << 30]);
        assert!(HostTensor::decode(&huge).is_err());
        assert!(HostTensor::decode(&proto(onnx_type::STRING, vec![1])).is_err());
    }
}
