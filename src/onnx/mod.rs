//! ONNX models compiled once onto candle.
//!
//! [`OnnxModel::load`] reads a file and validates it (the protobuf decodes; structure;
//! initializers consistent, no external data; every op and attribute supported, all
//! unsupported ones listed in one error). [`OnnxModel::compile`] turns it into a [`Plan`]
//! for one batch size on one device: shapes inferred statically (symbolic dimensions from
//! `input_shapes`, the first one being the batch), initializers made tensors once, constant
//! subgraphs folded (the Shape->Gather->Concat->Reshape chains of torch exports),
//! Conv+BatchNormalization and Conv+activation fused, dead nodes dropped, and every intermediate freed after its
//! last reader. Running the plan parses and decodes nothing.
//!
//! Recipes: f16 and quantization are compile options ([`Precision`], `quantize`);
//! magnitude pruning rewrites the initializers ([`OnnxModel::prune_magnitude`]).

use std::path::Path;

pub mod compile;
pub mod error;
mod fuse;
pub mod graph;
pub mod ops;
pub mod plan;
pub mod proto;
pub mod recipe;
pub mod tensor;
pub mod validate;
pub mod weights;

pub use compile::{resolve_input, CompileOptions, Precision};
pub use error::{OnnxError, Unsupported};
pub use graph::{Dim, Graph, ValueInfo};
pub use ops::supported_ops;
pub use plan::{CompileReport, Plan, Port, RunState, StepInfo};
pub use recipe::{PruneScope, PrunedTensor, QuantReport};
pub use weights::DeviceWeights;

/// A loaded and validated ONNX model.
#[derive(Debug, Clone)]
pub struct OnnxModel {
    graph: Graph,
    /// Conv groups already fused ([`OnnxModel::fuse`]): the step name
    /// and op of each, keyed by the surviving Conv's name.
    groups: fuse::Groups,
}

impl OnnxModel {
    /// Reads `path` and validates everything that does not depend on the batch size.
    pub fn load(path: &Path) -> Result<Self, OnnxError> {
        Self::from_graph(Graph::load(path)?)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OnnxError> {
        Self::from_graph(Graph::from_bytes(bytes)?)
    }

    pub fn from_graph(graph: Graph) -> Result<Self, OnnxError> {
        validate::check_support(&graph)?;
        Ok(OnnxModel {
            graph,
            groups: Default::default(),
        })
    }

    /// Folds every BatchNormalization that follows a Conv into the Conv's weights and bias,
    /// and the activations that follow Convs into the Convs (what compiling does anyway), so
    /// the weights a recipe sees are those the plan runs.
    pub fn fuse(&mut self) -> Result<(), OnnxError> {
        let (graph, groups) = fuse::fuse_graph(&self.graph)?;
        self.graph = graph;
        self.groups.extend(groups);
        Ok(())
    }

    /// The initializers, read or replaced by a recipe (shapes and dtypes are checked again
    /// when a plan is compiled).
    pub fn initializers_mut(
        &mut self,
    ) -> &mut std::collections::HashMap<String, tensor::HostTensor> {
        &mut self.graph.initializers
    }

    /// The weights on `device` that plans compiled by [`OnnxModel::compile_with`] share.
    pub fn device_weights(
        &self,
        device: &candle_core::Device,
        precision: Precision,
        quantized: std::collections::HashMap<
            String,
            std::sync::Arc<candle_core::quantized::QTensor>,
        >,
    ) -> Result<DeviceWeights, OnnxError> {
        DeviceWeights::new(&self.graph, device, precision, quantized)
    }

    /// Compiles a plan over weights made beforehand ([`OnnxModel::device_weights`]), shared
    /// with other plans; the weights' device and precision replace `opts`'. The graph is
    /// compiled as it is: `opts.fuse` is not applied ([`OnnxModel::fuse`] folds beforehand).
    pub fn compile_with(
        &self,
        opts: &CompileOptions,
        weights: &DeviceWeights,
    ) -> Result<Plan, OnnxError> {
        compile::compile_with(&self.graph, opts, weights, self.groups.clone())
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The inputs the caller feeds, with their dtypes and (possibly symbolic) dimensions.
    pub fn inputs(&self) -> &[ValueInfo] {
        &self.graph.inputs
    }

    pub fn outputs(&self) -> &[ValueInfo] {
        &self.graph.outputs
    }

    /// Compiles a plan.
    pub fn compile(&self, opts: &CompileOptions) -> Result<Plan, OnnxError> {
        compile::compile(&self.graph, opts)
    }

    /// Full validation for `opts` without keeping a plan: input shapes resolve for its
    /// batch size, and every node's shapes are inferred (compiled on the CPU, where only
    /// weights and folded constants are allocated, no activations).
    pub fn check(&self, opts: &CompileOptions) -> Result<(), OnnxError> {
        let probe = CompileOptions {
            device: candle_core::Device::Cpu,
            ..opts.clone()
        };
        compile::compile(&self.graph, &probe).map(|_| ())
    }

    /// Weight elements (float initializers).
    pub fn params(&self) -> usize {
        self.graph
            .initializers
            .values()
            .filter(|t| t.is_float())
            .map(|t| t.elem_count())
            .sum()
    }

    /// Initializers read as Conv, Gemm or MatMul weights.
    pub fn weight_tensors(&self) -> Vec<String> {
        recipe::weight_tensors(&self.graph)
    }

    /// Zeroes the smallest-magnitude fraction `sparsity` of the weights.
    pub fn prune_magnitude(
        &mut self,
        sparsity: f64,
        scope: PruneScope,
    ) -> Result<Vec<PrunedTensor>, OnnxError> {
        recipe::prune_magnitude(&mut self.graph, sparsity, scope)
    }
}
