#!/usr/bin/env python3
"""Times ONNX Runtime on a model, for the side-by-side with inferbench's compiled plan
(examples/onnx-speed.rs) and candle-onnx (scripts/candle-onnx-speed).

    python scripts/onnx-speed.py MODEL BATCH THREADS [ITERS] [name=1x128 ...]

ONNX Runtime as an application would use it: all graph optimizations on, THREADS intra-op
threads. Prints one JSON line (median and mean of ITERS runs after three warm-up runs).
Inputs: standard normal floats, token ids 0..1000, masks of ones; a symbolic first dimension
is the batch, other symbolic dimensions come from name=AxB... arguments.
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    model, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    iters = int(sys.argv[4]) if len(sys.argv) > 4 and "=" not in sys.argv[4] else 20
    shapes = dict(a.split("=") for a in sys.argv[4:] if "=" in a)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    t0 = time.perf_counter()
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - t0) * 1e3
    rng = np.random.default_rng(0)
    feed = {}
    for i in sess.get_inputs():
        dims = [int(d) for d in shapes[i.name].split("x")] if i.name in shapes else list(i.shape)
        dims = [batch] + [int(d) for d in dims[1:]]
        if "int64" in i.type:
            feed[i.name] = np.ones(dims, np.int64) if "mask" in i.name else rng.integers(0, 1000, dims)
        else:
            feed[i.name] = rng.standard_normal(dims).astype(np.float32)
    for _ in range(3):
        sess.run(None, feed)
    ms = []
    for _ in range(iters):
        t = time.perf_counter()
        sess.run(None, feed)
        ms.append((time.perf_counter() - t) * 1e3)
    ms.sort()
    print(json.dumps({"runtime": "onnxruntime " + ort.__version__, "model": model, "batch": batch,
                      "threads": threads, "compile_ms": round(load_ms, 1), "median_ms": round(ms[len(ms) // 2], 3),
                      "mean_ms": round(sum(ms) / len(ms), 3), "iters": iters}))


if __name__ == "__main__":
    main()
