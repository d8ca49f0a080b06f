#!/usr/bin/env python3
"""Sums an `inferbench profile` run file's per-step times of an ONNX model by kind of step,
beside ONNX Runtime's own profile summed the same way, to explain the gap layer by layer
(BENCHMARKS.md, "ONNX speed: our plan against ONNX Runtime (issue #18, part 9)"). Run by
hand with a venv that has the `onnx` package (scripts/export-onnx-models.py makes one):

    python scripts/onnx-profile-groups.py RUN.json MODEL.onnx [--ort ORT.json]

With --ort, the JSON line of scripts/onnx-ort-profile.py on the same model: its nodes are
summed by the same kinds (a node ONNX Runtime made itself, such as a layout reorder, counts
under its op type), in four more columns. A Conv step is "depthwise" when its node's group equals its input channels (and is over 1),
"pointwise" when its kernel is 1x1, else "dense"; a fused step (`Conv+HardSwish`) counts as
its first op. Prints a markdown table: steps, share of the step sum, mean ms, FLOPs.
"""
import collections
import json
import sys

import onnx


def conv_kind(node, shapes):
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    group = attrs.get("group", 1)
    w = shapes.get(node.input[1])
    if group > 1 and w is not None and w[1] == 1:
        return "Conv, depthwise"
    if w is not None and list(w[2:]) == [1, 1]:
        return "Conv, pointwise (1x1)"
    return "Conv, dense (kxk)"


def kind_of(name, op, nodes, shapes, producers):
    """A step's kind. ONNX Runtime names a node of its own layout (NCHWc) by the output it
    writes, plus `_nchwc`: the Conv is found by walking back from that output's producer
    through what was fused into it (an activation, a BatchNormalization)."""
    if op not in ("Conv", "FusedConv"):
        return op
    node = nodes.get(name) or producers.get(name.removesuffix("_nchwc"))
    for _ in range(3):
        if node is None or node.op_type == "Conv":
            break
        node = producers.get(node.input[0])
    return conv_kind(node, shapes) if node is not None and node.op_type == "Conv" else op


def main():
    args = sys.argv[1:]
    ort = None
    if "--ort" in args:
        i = args.index("--ort")
        ort = json.load(open(args[i + 1]))
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    run = json.load(open(args[0]))
    model = onnx.load(args[1])
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}
    producers = {o: n for n in model.graph.node for o in n.output}
    profiles = [c["profile"] for c in run["cases"] if c.get("profile")]
    if not profiles:
        sys.exit(f"{args[0]} holds no profiled case")
    prof = profiles[0]
    groups = collections.defaultdict(lambda: [0, 0.0, 0])
    total = sum(s["mean_ms"] for s in prof["layers"])
    for step in prof["layers"]:
        op = (step.get("op") or step["kind"]).split("+")[0]
        # A fused step is named by its nodes' names joined by "+": the first is the Conv.
        g = groups[kind_of(step["name"].split("+")[0], op, nodes, shapes, producers)]
        g[0] += 1
        g[1] += step["mean_ms"]
        g[2] += step["flops"]
    ort_groups = collections.defaultdict(lambda: [0, 0.0])
    for n in (ort or {}).get("by_node", []):
        g = ort_groups[kind_of(n["name"], n["op"], nodes, shapes, producers)]
        g[0] += 1
        g[1] += n["mean_ms"]
    ort_total = sum(g[1] for g in ort_groups.values())
    print(f"batch {prof['batch_size']}, {prof['iterations']} iterations, step sum {total:.3f} ms, "
          f"forward pass {prof['forward_mean_ms']:.3f} ms"
          + (f"; ONNX Runtime: node sum {ort_total:.3f} ms, run {ort['run_mean_ms']:.3f} ms" if ort else ""))
    print()
    head = "| steps | count | share of the step sum | mean ms | FLOPs (M) |"
    rule = "| --- | ---: | ---: | ---: | ---: |"
    if ort:
        head += " ORT nodes | ORT share | ORT mean ms | ours / ORT |"
        rule += " ---: | ---: | ---: | ---: |"
    print(head)
    print(rule)
    for key in sorted(set(groups) | set(ort_groups), key=lambda k: -groups[k][1]):
        n, ms, flops = groups[key]
        row = f"| {key} | {n} | {100 * ms / total:.1f}% | {ms:.3f} | {flops / 1e6:.1f} |"
        if ort:
            on, oms = ort_groups[key]
            ratio = f"{ms / oms:.1f}x" if oms > 0 and ms > 0 else "-"
            row += f" {on} | {100 * oms / ort_total:.1f}% | {oms:.3f} | {ratio} |"
        print(row)


if __name__ == "__main__":
    main()
