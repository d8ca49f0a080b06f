#!/usr/bin/env python3
"""Exports the ONNX models inferbench's ONNX support is tested and measured on.

Run by hand, not in CI (PyPI packages only; torch from PyPI is large, about 4 GB installed):

    python3 -m venv .cache/onnx-export-venv
    .cache/onnx-export-venv/bin/pip install torch==2.15.0 torchvision==0.29.2 \
        onnx==1.23.2 onnxruntime==1.31.1 onnxscript==0.7.2 safetensors==0.8.0 numpy==2.4.6
    .cache/onnx-export-venv/bin/python scripts/export-onnx-models.py [--large] [--keras]

Writes, with random weights from fixed seeds:
- tests/fixtures/onnx/*.onnx: small graphs committed as test fixtures (each well under 2 MB):
  hand-made graphs (onnx.helper) covering ops real exports rarely use, a ResNet-style and
  MobileNet-style CNN built from torchvision's blocks, the seed CNN, a 2-layer BERT encoder,
  and a Keras-style NHWC graph; plus manifest.json (batch and input_shapes per fixture).
- with --large, .cache/onnx-models/*.onnx: torchvision resnet18 and mobilenet_v3_small at
  224x224, and all-MiniLM-L6-v2 from the weights scripts/fetch-minilm.sh fetches (at opset 17,
  and at opset 14 for candle_onnx::simple_eval, which has no LayerNormalization).
- with --keras, tests/fixtures/onnx/keras_tf2onnx.onnx: a Keras CNN (NHWC) through tf2onnx,
  from a venv with tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnx==1.23.2 numpy==2.4.6
  (run there with --keras --no-fixtures; torch is not needed).

The seed CNN's weights are our own safetensors: --seed-cnn-weights PATH, or else written by
`cargo run --example onnx-seed-weights` (the suite's seeded initialisation).
"""
import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests/fixtures/onnx"
LARGE = ROOT / ".cache/onnx-models"
manifests = {}


def save(model, name, batch=2, input_shapes=None, note="", directory=FIXTURES):
    onnx.checker.check_model(model)
    path = directory / f"{name}.onnx"
    onnx.save_model(model, path)
    size = path.stat().st_size
    if directory == FIXTURES:
        assert size < 2_000_000, f"{name} is {size} bytes; fixtures stay under 2 MB"
    manifests.setdefault(directory, {})[name] = {"batch": batch, "input_shapes": input_shapes or {}, "note": note}
    print(f"wrote {path.relative_to(ROOT)} ({size / 1e3:.0f} kB)")


def rng_tensor(rng, name, shape, scale=0.5):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def graph_model(nodes, inputs, outputs, inits, opset, name):
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="inferbench")
    m.ir_version = 8 if opset < 19 else 9
    # Outputs are declared without shapes above; take them from ONNX's shape inference.
    inf = onnx.shape_inference.infer_shapes(m, strict_mode=True).graph
    inferred = {v.name: v for v in list(inf.value_info) + list(inf.output)}
    for o in m.graph.output:
        if not o.type.tensor_type.HasField("shape") and o.name in inferred:
            o.CopyFrom(inferred[o.name])
        if not o.type.tensor_type.HasField("shape"):
            raise SystemExit(f"{name}: output {o.name} has no inferred shape")
    return m


def vi(name, shape, t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


def const_i64(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def const_f32(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.float32), name)


# ---------------------------------------------------------------- hand-made op graphs
def ops_conv(rng):
    """ConvTranspose (groups, pads, output_padding), dilated/strided/asymmetric/SAME convs,
    depthwise conv, pooling with pads and ceil_mode, GlobalMaxPool."""
    n = [
        helper.make_node("ConvTranspose", ["x", "wt", "bt"], ["t"], strides=[2, 2], pads=[1, 1, 0, 0],
                         output_padding=[1, 1], group=2, name="deconv"),
        helper.make_node("Conv", ["t", "w1"], ["c1"], strides=[2, 2], auto_pad="SAME_UPPER", name="conv_same"),
        helper.make_node("Conv", ["t", "w2", "b2"], ["c2"], dilations=[2, 2], pads=[2, 1, 0, 3], name="conv_dilated"),
        helper.make_node("Conv", ["c2", "wd"], ["c3"], group=6, pads=[1, 1, 1, 1], name="conv_depthwise"),
        helper.make_node("MaxPool", ["c3"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                         ceil_mode=1, name="maxpool_ceil"),
        helper.make_node("AveragePool", ["c3"], ["p2"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 0, 1, 1],
                         ceil_mode=1, count_include_pad=0, name="avgpool_excl"),
        helper.make_node("AveragePool", ["c3"], ["p3"], kernel_shape=[2, 3], strides=[2, 2], pads=[1, 1, 0, 1],
                         count_include_pad=1, name="avgpool_incl"),
        helper.make_node("GlobalMaxPool", ["c1"], ["gm"], name="gmax"),
        helper.make_node("Conv", ["x", "w1d"], ["c1d_in"], name="conv_for_1d"),
        helper.make_node("Reshape", ["c1d_in", "shape1d"], ["flat"], name="to_1d"),
        helper.make_node("Conv", ["flat", "w1dk", "b1d"], ["c1d"], strides=[2], pads=[1, 2], name="conv_1d"),
        helper.make_node("Conv", ["x", "wbn"], ["cb"], pads=[1, 1, 1, 1], name="conv_before_bn"),
        helper.make_node("BatchNormalization", ["cb", "g1", "be1", "m1", "v1"], ["bn1"], epsilon=1e-3, name="bn_folded"),
        helper.make_node("Relu", ["bn1"], ["rb"], name="relu_bn"),
        helper.make_node("BatchNormalization", ["rb", "g1", "be1", "m1", "v1"], ["bn2"], name="bn_alone"),
    ]
    inits = [
        rng_tensor(rng, "wt", [4, 3, 3, 3]), rng_tensor(rng, "bt", [6]),
        rng_tensor(rng, "w1", [5, 6, 3, 3]), rng_tensor(rng, "w2", [6, 6, 3, 2]), rng_tensor(rng, "b2", [6]),
        rng_tensor(rng, "wd", [6, 1, 3, 3]), rng_tensor(rng, "w1d", [2, 4, 1, 1]),
        rng_tensor(rng, "w1dk", [3, 2, 3]), rng_tensor(rng, "b1d", [3]), const_i64("shape1d", [0, 0, -1]),
        rng_tensor(rng, "wbn", [3, 4, 3, 3]), const_f32("g1", [0.5, 1.0, 1.5]), const_f32("be1", [0.1, -0.2, 0.3]),
        const_f32("m1", [0.2, 0.0, -0.3]), const_f32("v1", [0.5, 1.0, 2.0]),
    ]
    outs = [vi(o, None) for o in ["c1", "p1", "p2", "p3", "gm", "c1d", "bn2"]]
    m = graph_model(n, [vi("x", ["N", 4, 7, 6])], outs, inits, 17, "ops_conv")
    save(m, "ops_conv", note="ConvTranspose, SAME/dilated/asymmetric/depthwise/1-D Conv, BatchNormalization, pooling")


def ops_shape(rng):
    """Split (input form), Slice (negative, steps), Pad modes, Where, Expand, Gather, Concat,
    Transpose, Squeeze/Unsqueeze (input form), Cast, Shape chains."""
    n = [
        helper.make_node("Split", ["x", "split"], ["s0", "s1"], axis=1, name="split_input"),
        helper.make_node("Slice", ["s1", "st", "en", "ax", "sp"], ["sl"], name="slice_steps"),
        helper.make_node("Pad", ["sl", "pads", "pv"], ["pc"], mode="constant", name="pad_const"),
        helper.make_node("Pad", ["s0", "pads2"], ["pr"], mode="reflect", name="pad_reflect"),
        helper.make_node("Pad", ["s0", "pads2"], ["pe"], mode="edge", name="pad_edge"),
        helper.make_node("Greater", ["pr", "zero"], ["mask"], name="gt"),
        helper.make_node("Expand", ["row", "eshape"], ["ex"], name="expand"),
        helper.make_node("Where", ["mask", "pe", "ex"], ["wh"], name="where"),
        helper.make_node("Transpose", ["wh"], ["tr"], perm=[0, 3, 1, 2], name="transpose"),
        helper.make_node("Gather", ["tr", "gidx"], ["ga"], axis=1, name="gather_neg"),
        helper.make_node("Gather", ["tr", "gone"], ["ga1"], axis=2, name="gather_scalar"),
        helper.make_node("Unsqueeze", ["ga1", "uax"], ["un"], name="unsqueeze_input"),
        helper.make_node("Squeeze", ["un", "uax"], ["sq"], name="squeeze_input"),
        helper.make_node("Concat", ["ga1", "sq"], ["cat"], axis=-1, name="concat"),
        helper.make_node("Shape", ["cat"], ["shp"], name="shape"),
        helper.make_node("Gather", ["shp", "g0"], ["d0"], axis=0, name="shape_gather"),
        helper.make_node("Unsqueeze", ["d0", "uax0"], ["d0u"], name="shape_unsq"),
        helper.make_node("Concat", ["d0u", "minus1"], ["newshape"], axis=0, name="shape_concat"),
        helper.make_node("Reshape", ["cat", "newshape"], ["rs"], name="reshape"),
        helper.make_node("Cast", ["rs"], ["rs64"], to=TensorProto.INT64, name="cast_int"),
        helper.make_node("Cast", ["rs64"], ["rsf"], to=TensorProto.FLOAT, name="cast_back"),
        helper.make_node("ReduceSum", ["ga", "rax"], ["rsum"], keepdims=0, name="reducesum_input"),
    ]
    inits = [
        const_i64("split", [2, 3]), const_i64("st", [-1, 0]), const_i64("en", [-100, 5]),
        const_i64("ax", [2, 3]), const_i64("sp", [-2, 2]),
        const_i64("pads", [0, 1, 0, 2, 0, 0, 1, 1]), const_f32("pv", 0.5),
        const_i64("pads2", [0, 0, 1, 2, 0, 0, 2, 1]), const_f32("zero", 0.0),
        rng_tensor(rng, "row", [1, 1, 8, 1]), const_i64("eshape", [1, 1, 1, 7]),
        const_i64("gidx", [-1, 0]), const_i64("gone", 1), const_i64("uax", [1]),
        const_i64("g0", 0), const_i64("uax0", [0]), const_i64("minus1", [-1]), const_i64("rax", [1, 3]),
    ]
    outs = [vi("rsf", ["N", 112]), vi("rsum", None), vi("pc", None)]
    m = graph_model(n, [vi("x", ["N", 5, 5, 4])], outs, inits, 13, "ops_shape")
    save(m, "ops_shape", note="Split, Slice, Pad, Where, Expand, Gather, Squeeze/Unsqueeze, Shape chain, Cast")


def ops_math(rng):
    """Opset 18: LayerNormalization, ReduceMean with axes input, Softmax axes, activations,
    Gemm (transA/B, alpha, beta), batched and broadcast MatMul, Resize modes."""
    n = [
        helper.make_node("LayerNormalization", ["x", "lg", "lb"], ["ln"], axis=-1, epsilon=1e-5, name="layernorm"),
        helper.make_node("LayerNormalization", ["x", "lg2"], ["ln2"], axis=-2, name="layernorm_2axes"),
        helper.make_node("ReduceMean", ["ln", "rax"], ["rm"], keepdims=1, name="reducemean_18"),
        helper.make_node("ReduceMax", ["ln"], ["rmax"], keepdims=0, name="reducemax_all"),
        helper.make_node("Softmax", ["ln"], ["sm1"], axis=1, name="softmax_axis1"),
        helper.make_node("Softmax", ["ln2"], ["sm2"], name="softmax_last"),
        helper.make_node("HardSwish", ["ln"], ["hs"], name="hardswish"),
        helper.make_node("HardSigmoid", ["ln"], ["hsg"], alpha=0.3, beta=0.4, name="hardsigmoid"),
        helper.make_node("LeakyRelu", ["hs"], ["lr"], alpha=0.1, name="leaky"),
        helper.make_node("Tanh", ["lr"], ["th"], name="tanh"),
        helper.make_node("Sigmoid", ["hsg"], ["sg"], name="sigmoid"),
        helper.make_node("Erf", ["sg"], ["erf"], name="erf"),
        helper.make_node("Mul", ["th", "erf"], ["mul"], name="mul"),
        helper.make_node("Sub", ["mul", "rm"], ["sub"], name="sub_bcast"),
        helper.make_node("Pow", ["sub", "two"], ["pw"], name="pow2"),
        helper.make_node("Add", ["pw", "one"], ["pw1"], name="add_scalar"),
        helper.make_node("Sqrt", ["pw1"], ["sq"], name="sqrt"),
        helper.make_node("Div", ["sm1", "sq"], ["dv"], name="div"),
        helper.make_node("Clip", ["dv", "cmin", "cmax"], ["cl"], name="clip"),
        helper.make_node("MatMul", ["cl", "mw"], ["mm"], name="matmul_weight"),
        helper.make_node("Transpose", ["mm"], ["mmt"], perm=[0, 2, 1], name="transpose"),
        helper.make_node("MatMul", ["mm", "mmt"], ["att"], name="matmul_batched"),
        helper.make_node("MatMul", ["b4", "att"], ["mmb"], name="matmul_broadcast"),
        helper.make_node("Flatten", ["mm"], ["fl"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["fl", "gw", "gc"], ["gm"], transB=1, alpha=0.5, beta=2.0, name="gemm_transB"),
        helper.make_node("Gemm", ["gwa", "gm", "gc2"], ["gm2"], transA=1, name="gemm_transA_dynB"),
        helper.make_node("Unsqueeze", ["ln", "uax"], ["img"], name="as_image"),
        helper.make_node("Resize", ["img", "", "scales"], ["rz1"], mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor", name="resize_nearest"),
        helper.make_node("Resize", ["img", "", "", "sizes"], ["rz2"], mode="linear",
                         coordinate_transformation_mode="half_pixel", name="resize_linear"),
        helper.make_node("Resize", ["img", "", "scales"], ["rz3"], mode="linear",
                         coordinate_transformation_mode="align_corners", name="resize_align"),
        helper.make_node("Resize", ["img", "", "", "sizes2"], ["rz4"], mode="nearest",
                         coordinate_transformation_mode="pytorch_half_pixel", nearest_mode="round_prefer_ceil",
                         name="resize_down"),
    ]
    inits = [
        rng_tensor(rng, "lg", [6]), rng_tensor(rng, "lb", [6]), rng_tensor(rng, "lg2", [4, 6]),
        const_i64("rax", [1, 2]), const_f32("two", 2.0), const_f32("one", 1.0),
        const_f32("cmin", -0.8), const_f32("cmax", 0.9), rng_tensor(rng, "mw", [6, 5]),
        rng_tensor(rng, "b4", [3, 1, 4, 4]), rng_tensor(rng, "gw", [7, 20]), rng_tensor(rng, "gc", [7]),
        rng_tensor(rng, "gwa", [2, 4]), rng_tensor(rng, "gc2", [4, 1]), const_i64("uax", [1]),
        const_f32("scales", [1, 1, 2, 1.5]), const_i64("sizes", [2, 1, 7, 9]), const_i64("sizes2", [2, 1, 3, 4]),
    ]
    outs = [vi(o, None) for o in ["rmax", "sm2", "mmb", "gm", "gm2", "rz1", "rz2", "rz3", "rz4"]]
    m = graph_model(n, [vi("x", [2, 4, 6])], outs, inits, 18, "ops_math")
    save(m, "ops_math", note="LayerNormalization, ReduceMean (18), Softmax axes, activations, Gemm, MatMul, Resize")


def ops_legacy(rng):
    """Opset 11: Softmax coerced to 2-D, attribute forms of Split/Squeeze/Unsqueeze/ReduceMean,
    Clip with inputs, Pad with inputs, Dropout, Identity, ConstantOfShape, Range, Constant."""
    n = [
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.array([0.25], np.float32)),
                         name="constant"),
        helper.make_node("Mul", ["x", "c"], ["xm"], name="scale"),
        helper.make_node("Softmax", ["xm"], ["sm"], axis=1, name="softmax_2d"),
        helper.make_node("Split", ["sm"], ["a", "b"], axis=2, split=[1, 3], name="split_attr"),
        helper.make_node("Squeeze", ["a"], ["asq"], axes=[2], name="squeeze_attr"),
        helper.make_node("Unsqueeze", ["asq"], ["aun"], axes=[0], name="unsqueeze_attr"),
        helper.make_node("ReduceMean", ["b"], ["bm"], axes=[-1], keepdims=0, name="reducemean_attr"),
        helper.make_node("Clip", ["bm", "lo", ""], ["cl"], name="clip_min_only"),
        helper.make_node("Pad", ["cl", "pads"], ["pd"], mode="constant", name="pad11"),
        helper.make_node("Dropout", ["pd"], ["dr"], name="dropout"),
        helper.make_node("Identity", ["dr"], ["id"], name="identity"),
        helper.make_node("Shape", ["id"], ["shp"], name="shape"),
        helper.make_node("ConstantOfShape", ["shp"], ["ones"],
                         value=numpy_helper.from_array(np.array([1.5], np.float32)), name="constant_of_shape"),
        helper.make_node("Add", ["id", "ones"], ["out"], name="add"),
        helper.make_node("Range", ["r0", "r1", "r2"], ["rg"], name="range"),
        helper.make_node("Cast", ["rg"], ["rgf"], to=TensorProto.FLOAT, name="cast"),
        helper.make_node("Add", ["out", "rgf"], ["out2"], name="add_range"),
        helper.make_node("ReduceSum", ["aun"], ["rs"], axes=[0, 2], keepdims=1, name="reducesum_attr"),
    ]
    inits = [const_f32("lo", -0.1), const_i64("pads", [0, 1, 0, 2]), const_i64("r0", 0), const_i64("r1", 6),
             const_i64("r2", 1)]
    m = graph_model(n, [vi("x", ["N", 3, 4])], [vi("out2", None), vi("rs", None)], inits, 11, "ops_legacy")
    save(m, "ops_legacy", note="opset 11 attribute forms, Softmax 2-D coercion, Dropout, ConstantOfShape, Range")


def ops_gelu():
    n = [helper.make_node("Gelu", ["x"], ["g"], name="gelu"),
         helper.make_node("Gelu", ["g"], ["t"], approximate="tanh", name="gelu_tanh")]
    m = graph_model(n, [vi("x", ["N", 16])], [vi("t", None)], [], 20, "ops_gelu")
    save(m, "ops_gelu", note="Gelu (opset 20), exact and tanh")


def keras_nhwc(rng):
    """What tf2onnx writes for a Keras CNN: NHWC input, a Transpose to NCHW before the convs
    and back before Flatten, MatMul + Add dense layers, Softmax."""
    n = [
        helper.make_node("Transpose", ["input_1"], ["nchw"], perm=[0, 3, 1, 2], name="sequential/conv2d/Conv2D__6"),
        helper.make_node("Conv", ["nchw", "k1", "b1"], ["c1"], kernel_shape=[3, 3], strides=[1, 1],
                         auto_pad="VALID", name="sequential/conv2d/BiasAdd"),
        helper.make_node("Relu", ["c1"], ["r1"], name="sequential/conv2d/Relu"),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2],
                         name="sequential/max_pooling2d/MaxPool"),
        helper.make_node("Transpose", ["p1"], ["nhwc"], perm=[0, 2, 3, 1], name="sequential/max_pooling2d/MaxPool__14"),
        helper.make_node("Reshape", ["nhwc", "flat"], ["f"], name="sequential/flatten/Reshape"),
        helper.make_node("MatMul", ["f", "d1"], ["m1"], name="sequential/dense/MatMul"),
        helper.make_node("Add", ["m1", "db1"], ["a1"], name="sequential/dense/BiasAdd"),
        helper.make_node("Relu", ["a1"], ["h"], name="sequential/dense/Relu"),
        helper.make_node("MatMul", ["h", "d2"], ["m2"], name="sequential/dense_1/MatMul"),
        helper.make_node("Add", ["m2", "db2"], ["logits"], name="sequential/dense_1/BiasAdd"),
        helper.make_node("Softmax", ["logits"], ["dense_1"], axis=-1, name="sequential/dense_1/Softmax"),
    ]
    inits = [rng_tensor(rng, "k1", [8, 1, 3, 3]), rng_tensor(rng, "b1", [8], 0.1),
             const_i64("flat", [-1, 13 * 13 * 8]), rng_tensor(rng, "d1", [13 * 13 * 8, 32], 0.05),
             rng_tensor(rng, "db1", [32], 0.1), rng_tensor(rng, "d2", [32, 10], 0.2), rng_tensor(rng, "db2", [10], 0.1)]
    m = graph_model(n, [vi("input_1", ["unk__20", 28, 28, 1])], [vi("dense_1", ["unk__21", 10])], inits, 13,
                    "keras_nhwc")
    m.producer_name = "tf2onnx-style (hand-made)"
    save(m, "keras_nhwc", note="NHWC input as tf2onnx writes it")


# ---------------------------------------------------------------- torch models
def torch_export(module, args, path, input_names, dynamic, opset=17):
    import torch
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=opset,
                          input_names=input_names, output_names=["output"], dynamic_axes=dynamic,
                          do_constant_folding=True)
    return onnx.load(str(path))


def seeded(module, seed):
    """Random weights, and batch-norm statistics that are not the identity."""
    import torch
    torch.manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return module.eval()


def resnet_tiny(out_dir):
    """A ResNet-style CNN from torchvision's BasicBlock (stem, 3 stages of 16/32/64 channels,
    downsampling with 1x1 conv + BN shortcuts), 32x32 inputs."""
    import torch
    from torch import nn
    from torchvision.models.resnet import BasicBlock

    def stage(cin, cout, stride):
        down = None
        if stride != 1 or cin != cout:
            down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        return BasicBlock(cin, cout, stride, down)

    torch.manual_seed(10)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
        stage(16, 16, 1), stage(16, 32, 2), stage(32, 64, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
    seeded(net, 10)
    m = torch_export(net, (torch.randn(1, 3, 32, 32),), out_dir / "resnet_tiny.onnx", ["input"],
                     {"input": {0: "batch"}, "output": {0: "batch"}})
    save(m, "resnet_tiny", note="torchvision BasicBlock ResNet, 3 stages, 32x32", directory=out_dir)


def mobilenet_tiny(out_dir):
    """torchvision mobilenet_v3_small at width 0.25 (depthwise convs, squeeze-excitation,
    HardSwish/HardSigmoid), 64x64 inputs, 10 classes."""
    import torch
    from torchvision.models import mobilenet_v3_small
    torch.manual_seed(11)
    net = seeded(mobilenet_v3_small(num_classes=10, width_mult=0.25), 11)
    m = torch_export(net, (torch.randn(1, 3, 64, 64),), out_dir / "mobilenet_v3_tiny.onnx", ["input"],
                     {"input": {0: "batch"}, "output": {0: "batch"}})
    save(m, "mobilenet_v3_tiny", note="torchvision mobilenet_v3_small width 0.25, 64x64", directory=out_dir)


def mobilenet_v2_tiny(out_dir):
    """torchvision mobilenet_v2 at width 0.25 (ReLU6 as Clip, inverted residuals), 32x32."""
    import torch
    from torchvision.models import mobilenet_v2
    torch.manual_seed(12)
    net = seeded(mobilenet_v2(num_classes=10, width_mult=0.25), 12)
    m = torch_export(net, (torch.randn(1, 3, 32, 32),), out_dir / "mobilenet_v2_tiny.onnx", ["input"],
                     {"input": {0: "batch"}, "output": {0: "batch"}}, opset=11)
    save(m, "mobilenet_v2_tiny", note="torchvision mobilenet_v2 width 0.25, 32x32, opset 11", directory=out_dir)


def seed_cnn(out_dir, weights):
    """The seed CNN (Conv32-Pool-Conv64-Pool-Dense64-Dense10 on 28x28x1, suites/seed-cnn.toml)
    with our own safetensors, PyTorch layout and names (conv1, conv2, fc1, fc2)."""
    import torch
    from torch import nn
    from safetensors.torch import load_file

    class SeedCnn(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 32, 3), nn.Conv2d(32, 64, 3)
            self.fc1, self.fc2 = nn.Linear(64 * 5 * 5, 64), nn.Linear(64, 10)

        def forward(self, x):
            x = torch.max_pool2d(torch.relu(self.conv1(x)), 2)
            x = torch.max_pool2d(torch.relu(self.conv2(x)), 2)
            return self.fc2(torch.relu(self.fc1(x.flatten(1))))

    net = SeedCnn()
    net.load_state_dict(load_file(str(weights)))
    m = torch_export(net, (torch.randn(1, 1, 28, 28),), out_dir / "seed_cnn.onnx", ["input"],
                     {"input": {0: "batch"}, "output": {0: "batch"}})
    save(m, "seed_cnn", note=f"the seed CNN, weights {weights.name}", directory=out_dir)


class BertConfig:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def bert_module(cfg):
    """A BERT encoder with HuggingFace tensor names, mean pooling over the attention mask and
    L2 normalisation (sentence-transformers' sentence embedding)."""
    import torch
    from torch import nn

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            h, i = cfg.hidden, cfg.intermediate
            self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
            self.attn_out, self.attn_ln = nn.Linear(h, h), nn.LayerNorm(h, eps=cfg.eps)
            self.inter, self.out, self.out_ln = nn.Linear(h, i), nn.Linear(i, h), nn.LayerNorm(h, eps=cfg.eps)

        def forward(self, x, bias):
            b, n, _ = x.shape
            heads, d = cfg.heads, cfg.hidden // cfg.heads

            def split(t):
                return t.reshape(b, n, heads, d).transpose(1, 2)
            q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
            s = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + bias, dim=-1)
            ctx = (s @ v).transpose(1, 2).reshape(b, n, cfg.hidden)
            x = self.attn_ln(x + self.attn_out(ctx))
            return self.out_ln(x + self.out(nn.functional.gelu(self.inter(x))))

    class Bert(nn.Module):
        def __init__(self):
            super().__init__()
            self.word = nn.Embedding(cfg.vocab, cfg.hidden)
            self.pos = nn.Embedding(cfg.max_pos, cfg.hidden)
            self.tok = nn.Embedding(cfg.type_vocab, cfg.hidden)
            self.ln = nn.LayerNorm(cfg.hidden, eps=cfg.eps)
            self.layers = nn.ModuleList([Layer() for _ in range(cfg.layers)])

        def forward(self, input_ids, attention_mask):
            n = input_ids.shape[1]
            pos = torch.arange(n).unsqueeze(0)
            x = self.ln(self.word(input_ids) + self.pos(pos) + self.tok(torch.zeros_like(input_ids)))
            mask = attention_mask.to(torch.float32)
            bias = (1.0 - mask[:, None, None, :]) * -10000.0
            for layer in self.layers:
                x = layer(x, bias)
            m = mask.unsqueeze(-1)
            e = (x * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
            return e / torch.clamp(torch.sqrt((e * e).sum(1, keepdim=True)), min=1e-12)

    return Bert()


def hf_state_dict(sd, layers):
    """HuggingFace BERT names -> bert_module names."""
    out = {
        "word.weight": sd["embeddings.word_embeddings.weight"],
        "pos.weight": sd["embeddings.position_embeddings.weight"],
        "tok.weight": sd["embeddings.token_type_embeddings.weight"],
        "ln.weight": sd["embeddings.LayerNorm.weight"], "ln.bias": sd["embeddings.LayerNorm.bias"],
    }
    names = {"query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
             "attn_out": "attention.output.dense", "attn_ln": "attention.output.LayerNorm",
             "inter": "intermediate.dense", "out": "output.dense", "out_ln": "output.LayerNorm"}
    for i in range(layers):
        for ours, theirs in names.items():
            for p in ("weight", "bias"):
                out[f"layers.{i}.{ours}.{p}"] = sd[f"encoder.layer.{i}.{theirs}.{p}"]
    return out


def export_bert(net, path, seq, opset=17):
    import torch
    ids = torch.randint(0, 100, (1, seq))
    return torch_export(net, (ids, torch.ones_like(ids)), path, ["input_ids", "attention_mask"],
                        {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                         "output": {0: "batch"}}, opset=opset)


def bert_tiny(out_dir):
    import torch
    torch.manual_seed(13)
    cfg = BertConfig(vocab=1000, hidden=64, layers=2, heads=4, intermediate=128, max_pos=64, type_vocab=2,
                     eps=1e-12)
    m = export_bert(bert_module(cfg).eval(), out_dir / "bert_tiny.onnx", 16)
    save(m, "bert_tiny", input_shapes={"input_ids": [1, 16], "attention_mask": [1, 16]},
         note="2-layer BERT encoder (hidden 64), mean pooling, dynamic batch and sequence", directory=out_dir)


def minilm(out_dir):
    import torch
    from safetensors.torch import load_file
    d = ROOT / ".cache/models/all-MiniLM-L6-v2"
    if not (d / "model.safetensors").exists():
        subprocess.run([str(ROOT / "scripts/fetch-minilm.sh")], check=True)
    c = json.loads((d / "config.json").read_text())
    cfg = BertConfig(vocab=c["vocab_size"], hidden=c["hidden_size"], layers=c["num_hidden_layers"],
                     heads=c["num_attention_heads"], intermediate=c["intermediate_size"],
                     max_pos=c["max_position_embeddings"], type_vocab=c["type_vocab_size"], eps=c["layer_norm_eps"])
    net = bert_module(cfg)
    net.load_state_dict(hf_state_dict(load_file(str(d / "model.safetensors")), cfg.layers))
    m = export_bert(net.eval(), out_dir / "all_minilm_l6_v2.onnx", 128)
    save(m, "all_minilm_l6_v2", input_shapes={"input_ids": [1, 128], "attention_mask": [1, 128]},
         note="all-MiniLM-L6-v2, sequence 128", directory=out_dir)
    # The same model at opset 14, before LayerNormalization existed: the exporter writes each
    # layer norm as ReduceMean, Sub, Pow, Sqrt and Div, ops candle_onnx::simple_eval runs, so
    # scripts/onnx-speed.sh has one real model on which all three runtimes can be timed.
    m = export_bert(net.eval(), out_dir / "all_minilm_l6_v2_opset14.onnx", 128, opset=14)
    save(m, "all_minilm_l6_v2_opset14", input_shapes={"input_ids": [1, 128], "attention_mask": [1, 128]},
         note="all-MiniLM-L6-v2, sequence 128, opset 14 (layer norms as primitive ops)", directory=out_dir)


def torchvision_full(out_dir):
    import torch
    from torchvision.models import mobilenet_v3_small, resnet18
    for name, ctor in [("resnet18", resnet18), ("mobilenet_v3_small", mobilenet_v3_small)]:
        torch.manual_seed(14)
        net = seeded(ctor(), 14)
        m = torch_export(net, (torch.randn(1, 3, 224, 224),), out_dir / f"{name}.onnx", ["input"],
                         {"input": {0: "batch"}, "output": {0: "batch"}})
        save(m, name, directory=out_dir)


def keras_tf2onnx(out_dir):
    """A Keras CNN (NHWC) through tf2onnx. Needs tensorflow-cpu and tf2onnx."""
    import tensorflow as tf
    import tf2onnx
    tf.keras.utils.set_random_seed(15)
    model = tf.keras.Sequential([
        tf.keras.Input((28, 28, 1), name="input_1"),
        tf.keras.layers.Conv2D(16, 3, activation="relu"), tf.keras.layers.MaxPooling2D(),
        tf.keras.layers.DepthwiseConv2D(3, padding="same", activation="relu"),
        tf.keras.layers.Conv2D(32, 3, strides=2, padding="same"), tf.keras.layers.BatchNormalization(),
        tf.keras.layers.ReLU(), tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(10, activation="softmax")])
    spec = (tf.TensorSpec((None, 28, 28, 1), tf.float32, name="input_1"),)
    # tf2onnx's from_keras does not know Keras 3's output names; a traced function converts.
    fn = tf.function(lambda x: model(x, training=False), input_signature=spec)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=13)
    save(proto, "keras_tf2onnx", note="Keras CNN through tf2onnx (NHWC)", directory=out_dir)


def seed_weights(given):
    if given:
        return Path(given)
    path = ROOT / ".cache/onnx-models/seed-cnn.safetensors"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cargo", "run", "--quiet", "--example", "onnx-seed-weights", "--", str(path)],
                       cwd=ROOT, check=True)
    return path


def fixtures(a):
    FIXTURES.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2024)
    ops_conv(rng)
    ops_shape(rng)
    ops_math(rng)
    ops_legacy(rng)
    ops_gelu()
    keras_nhwc(rng)
    resnet_tiny(FIXTURES)
    mobilenet_tiny(FIXTURES)
    mobilenet_v2_tiny(FIXTURES)
    seed_cnn(FIXTURES, seed_weights(a.seed_cnn_weights))
    bert_tiny(FIXTURES)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", action="store_true", help="also export the large models to .cache/onnx-models")
    ap.add_argument("--keras", action="store_true", help="also export a Keras model through tf2onnx")
    ap.add_argument("--no-fixtures", action="store_true",
                    help="skip the fixtures (e.g. --keras alone from a venv with tensorflow but no torch)")
    ap.add_argument("--seed-cnn-weights", help="safetensors of the seed CNN (default: seeded, by our code)")
    a = ap.parse_args()
    if not a.no_fixtures:
        fixtures(a)
    if a.large or a.keras:
        LARGE.mkdir(parents=True, exist_ok=True)
    if a.large:
        torchvision_full(LARGE)
        minilm(LARGE)
    if a.keras:
        keras_tf2onnx(FIXTURES)
    for directory, entries in manifests.items():
        path = directory / "manifest.json"
        if path.exists():
            entries = {**json.loads(path.read_text()), **entries}
        path.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
