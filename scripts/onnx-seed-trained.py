#!/usr/bin/env python3
"""Writes tests/fixtures/onnx/seed_cnn_trained.onnx: the seed CNN fixture (seed_cnn.onnx, from
scripts/export-onnx-models.py) with its initializers replaced by trained weights, so the
ONNX suite (suites/onnx.toml) scores a classifier that is better than chance on the digits.

The weights are the baseline artifact of a suite that trains the seed CNN as
suites/seed-cnn.toml does (its [data], [[models]] and baseline); `inferbench run` prints the
artifact's key, and the file is .cache/inferbench/artifacts/<key>/weights.safetensors. Our
cnn kind's tensors have PyTorch's layout and names (conv1.weight, ..., fc2.bias), which are
the fixture's initializer names. Run by hand (onnx and numpy, e.g. .cache/onnx-venv):

    .cache/onnx-venv/bin/python scripts/onnx-seed-trained.py WEIGHTS.safetensors
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests/fixtures/onnx"


def read_safetensors(path):
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", f"{name}: {info['dtype']}, expected F32"
        lo, hi = info["data_offsets"]
        out[name] = np.frombuffer(data[lo:hi], dtype="<f4").reshape(info["shape"])
    return out


def main():
    weights = read_safetensors(sys.argv[1])
    model = onnx.load(str(FIXTURES / "seed_cnn.onnx"))
    replaced = set()
    for i, init in enumerate(model.graph.initializer):
        if init.name in weights:
            old = numpy_helper.to_array(init)
            new = weights[init.name]
            assert old.shape == new.shape, f"{init.name}: {old.shape} vs {new.shape}"
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(new.copy(), init.name))
            replaced.add(init.name)
    missing = set(weights) - replaced
    assert not missing, f"weights not in the graph: {sorted(missing)}"
    onnx.checker.check_model(model)
    path = FIXTURES / "seed_cnn_trained.onnx"
    onnx.save_model(model, path)
    manifest_path = FIXTURES / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["seed_cnn_trained"] = {
        "batch": 2,
        "input_shapes": {},
        "note": "the seed CNN trained on the digits as suites/seed-cnn.toml trains it (scripts/onnx-seed-trained.py)",
    }
    manifest_path.write_text(json.dumps(dict(sorted(manifest.items())), indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1e3:.0f} kB), {len(replaced)} tensors replaced")


if __name__ == "__main__":
    main()
