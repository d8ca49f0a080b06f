#!/usr/bin/env python3
"""ONNX Runtime's own per-node profile of a model, summed by op type, for explaining the gap
between inferbench's compiled plan and ONNX Runtime layer by layer (BENCHMARKS.md, "ONNX
speed: our plan against ONNX Runtime (issue #18, part 9)"). Run by hand
with the venv .ci/run makes:

    .cache/onnx-venv/bin/python scripts/onnx-ort-profile.py MODEL BATCH THREADS [ITERS] [name=1x128 ...]

Prints one JSON line: per op type (ONNX Runtime's, after its graph optimizations, e.g.
FusedConv), the mean ms per run and the node count, and the same per node (`by_node`, which
scripts/onnx-profile-groups.py --ort sums by kind of layer beside our profile). Inputs as
scripts/onnx-speed.py makes them.
"""
import collections
import json
import os
import sys
import tempfile

import numpy as np
import onnxruntime as ort


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    model, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    iters = int(sys.argv[4]) if len(sys.argv) > 4 and "=" not in sys.argv[4] else 10
    shapes = dict(a.split("=") for a in sys.argv[4:] if "=" in a)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.enable_profiling = True
    opts.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {}
    for i in sess.get_inputs():
        dims = [int(d) for d in shapes[i.name].split("x")] if i.name in shapes else list(i.shape)
        dims = [batch] + [int(d) for d in dims[1:]]
        if "int64" in i.type:
            feed[i.name] = np.ones(dims, np.int64) if "mask" in i.name else rng.integers(0, 1000, dims)
        else:
            feed[i.name] = rng.standard_normal(dims).astype(np.float32)
    for _ in range(3 + iters):  # three warm-up runs, left out below
        sess.run(None, feed)
    events = json.load(open(sess.end_profiling()))
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    timed = runs[-iters:]
    t0 = timed[0]["ts"]
    by_op = collections.defaultdict(lambda: [0.0, set()])
    by_node = collections.defaultdict(lambda: [0.0, "?"])
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or e["ts"] < t0:
            continue
        op = e.get("args", {}).get("op_name", "?")
        by_op[op][0] += e["dur"] / 1e3 / iters
        by_op[op][1].add(e["name"])
        node = by_node[e["name"][: -len("_kernel_time")]]
        node[0] += e["dur"] / 1e3 / iters
        node[1] = op
    total = sum(r["dur"] for r in timed) / 1e3 / iters
    rows = sorted(((op, round(ms, 3), len(nodes)) for op, (ms, nodes) in by_op.items()), key=lambda r: -r[1])
    print(json.dumps({"runtime": "onnxruntime " + ort.__version__, "model": model, "batch": batch,
                      "threads": threads, "iters": iters, "run_mean_ms": round(total, 3),
                      "by_op": [{"op": o, "mean_ms": m, "nodes": n} for o, m, n in rows],
                      "by_node": [{"name": k, "op": op, "mean_ms": round(ms, 4)}
                                  for k, (ms, op) in by_node.items()]}))


if __name__ == "__main__":
    main()
