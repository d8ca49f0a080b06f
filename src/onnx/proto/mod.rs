//! The ONNX protobuf messages (`onnx.proto` of the `onnx` 1.23.2 package), generated once by
//! `scripts/gen-onnx-proto` with a pure-Rust protobuf compiler and committed, so the build
//! needs neither `protoc` nor a build script.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
#[path = "onnx.rs"]
mod generated;

pub use generated::*;
