#!/usr/bin/env python3
"""ONNX Runtime's outputs for one model and one set of inputs: the reference tests/onnx.rs
compares inferbench's compiled plans against.

    python scripts/onnx-reference.py MODEL OUT_DIR IN0.npy [IN1.npy ...]

Inputs bind to the graph's inputs in order. Writes OUT_DIR/out0.npy, out1.npy... in the
graph's output order. ONNX Runtime runs on one thread with its graph optimizations off, so
the reference is the graph as written. Needs `onnxruntime` and `numpy` (the versions
.ci/run installs: onnxruntime==1.31.1 numpy==2.4.6).
"""
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    model, out_dir, inputs = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    if len(names) != len(inputs):
        sys.exit(f"{model} takes {len(names)} inputs ({names}), got {len(inputs)}")
    feed = {n: np.load(p) for n, p in zip(names, inputs)}
    for i, out in enumerate(sess.run(None, feed)):
        out = np.asarray(out)
        if out.dtype == np.bool_:
            out = out.astype(np.uint8)
        np.save(out_dir / f"out{i}.npy", out)


if __name__ == "__main__":
    main()
