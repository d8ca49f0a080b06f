//! BERT-family sentence encoders.

mod encoder;

pub use encoder::*;
