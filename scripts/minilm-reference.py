#!/usr/bin/env python3
"""Reference sentence embeddings of all-MiniLM-L6-v2 for data/text/sentences.txt.

Writes data/text/minilm-reference.npy: float32 [sentences, 384], one L2-normalised
embedding per line of sentences.txt, computed the way sentence-transformers computes them
(BERT encoder, mean pooling over the attention mask, L2 normalisation) by an independent
NumPy implementation in float64 (exact erf GELU, LayerNorm eps 1e-12), one sentence at a
time without padding. Needs numpy, safetensors and tokenizers (pip install numpy
safetensors tokenizers) and the weights (scripts/fetch-minilm.sh).

    python3 scripts/minilm-reference.py [MODEL_DIR]

With sentence-transformers installed, `--check` also compares with it.
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

root = Path(__file__).resolve().parent.parent
args = [a for a in sys.argv[1:] if not a.startswith("--")]
model_dir = Path(args[0]) if args else root / ".cache/models/all-MiniLM-L6-v2"
sentences = [
    line.strip()
    for line in (root / "data/text/sentences.txt").read_text().splitlines()
    if line.strip()
]

cfg = json.loads((model_dir / "config.json").read_text())
w = {k: v.astype(np.float64) for k, v in load_file(model_dir / "model.safetensors").items()
     if v.dtype != np.int64}
tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
tok.no_padding()
tok.no_truncation()
heads, hidden = cfg["num_attention_heads"], cfg["hidden_size"]
dh = hidden // heads
eps = cfg["layer_norm_eps"]
erf = np.vectorize(math.erf)


def layer_norm(x, p):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w[p + ".weight"] + w[p + ".bias"]


def linear(x, p):
    return x @ w[p + ".weight"].T + w[p + ".bias"]


def embed(ids):
    n = len(ids)
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][:n]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(x, "embeddings.LayerNorm")
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q, k, v = (linear(x, p + f"attention.self.{n_}").reshape(n, heads, dh).transpose(1, 0, 2)
                   for n_ in ("query", "key", "value"))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(dh)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, hidden)
        x = layer_norm(x + linear(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        h = linear(x, p + "intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
        x = layer_norm(x + linear(h, p + "output.dense"), p + "output.LayerNorm")
    e = x.mean(0)  # every token is real: no padding
    return e / np.linalg.norm(e)


ref = np.stack([embed(tok.encode(s).ids) for s in sentences]).astype(np.float32)
out = root / "data/text/minilm-reference.npy"
np.save(out, ref)
print(f"wrote {out}: {ref.shape}")

if "--check" in sys.argv:
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(str(model_dir), device="cpu").encode(sentences, normalize_embeddings=True)
    cos = (st * ref).sum(1)
    print(f"cosine with sentence-transformers: min {cos.min():.7f}, mean {cos.mean():.7f}")
