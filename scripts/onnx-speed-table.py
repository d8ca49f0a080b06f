#!/usr/bin/env python3
"""Turns scripts/onnx-speed.sh's JSON lines into a markdown table, one row per model,
threads and batch: the median of each runtime, or the error that stopped it, and the ratios
of ours to candle-onnx's simple_eval and to ONNX Runtime.

    python scripts/onnx-speed-table.py target/onnx-speed.jsonl
"""
import json
import os
import re
import sys

RUNTIMES = ["inferbench", "candle-onnx", "onnxruntime"]


def runtime_key(name):
    if name.startswith("candle-onnx"):
        return "candle-onnx"
    if name.startswith("onnxruntime"):
        return "onnxruntime"
    return name


def cell(rec):
    if rec is None:
        return "-"
    if "error" in rec:
        # Keep the reason only: candle-onnx errors carry the node's proto and a backtrace.
        reason = re.split(r"\s+0: |\s+for op NodeProto", rec["error"])[0]
        return "fails: " + reason.replace("|", "/")[:120]
    return f"{rec['median_ms']:,.1f}" if rec["median_ms"] >= 10 else f"{rec['median_ms']:.2f}"


def ratio(a, b):
    if a is None or b is None or "error" in a or "error" in b:
        return "-"
    return f"{a['median_ms'] / b['median_ms']:.2f}x"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rows = {}
    order = []
    versions = {}
    for line in open(sys.argv[1]):
        line = line.strip()
        if not line:
            continue
        rec = json.loads(line)
        key = (rec["model"], str(rec["threads"]), int(rec["batch"]))
        if key not in rows:
            rows[key] = {}
            order.append(key)
        kind = runtime_key(rec["runtime"])
        versions[kind] = rec["runtime"]
        rows[key][kind] = rec
    print(f"| model | threads | batch | ours ms | {versions.get('candle-onnx', 'candle-onnx')} ms "
          f"| {versions.get('onnxruntime', 'onnxruntime')} ms | ours / candle-onnx | ours / ORT "
          "| load avg |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key in order:
        model, threads, batch = key
        r = rows[key]
        load = max((v.get("loadavg", 0) for v in r.values()), default=0)
        print(f"| {os.path.basename(model).removesuffix('.onnx')} | {threads} | {batch} "
              f"| {cell(r.get('inferbench'))} | {cell(r.get('candle-onnx'))} "
              f"| {cell(r.get('onnxruntime'))} | {ratio(r.get('inferbench'), r.get('candle-onnx'))} "
              f"| {ratio(r.get('inferbench'), r.get('onnxruntime'))} | {load:.1f} |")


if __name__ == "__main__":
    main()
