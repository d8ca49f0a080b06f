//! Models: built-in architectures with candle weights, seeded or read from safetensors or
//! GGUF, in float or quantized form.
//!
//! candle types stay inside this module, `variant/`, `target.rs` and the worker.

pub mod bert;
pub mod cnn;
mod init;
mod qweight;
mod stack;
mod weights;

pub use cnn::{Architecture, Padding, TensorShape};
pub use init::*;
pub(crate) use qweight::QWeight;
pub use stack::*;
pub use weights::*;
