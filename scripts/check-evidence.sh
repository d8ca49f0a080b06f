#!/usr/bin/env bash
# Evidence for the CI regression gate (issue #6, docs/check.md): does `inferbench check`
# stay quiet on noise and catch a real slowdown?
#
# For each of N trials it runs the suite four times with the release binary:
#   A  the baseline of this trial
#   B  the same binary and suite again               -> check A B: exit 1 is a false alarm
#   C  a real 10% slowdown (test-only --inject-slowdown 0.10)
#                                                     -> check A C: exit 1 is a detection
#   D  a real 2% slowdown (--inject-slowdown 0.02)   -> check A D: exit 1 calls a 2% change
#                                                        a regression (it should not)
# and prints a summary table (rates with Wilson 95% intervals) plus which metrics fired.
# All checks use the suite's default thresholds. Timings need a quiet machine: stop other
# work first, and do not compare numbers across machines.
#
# Usage: scripts/check-evidence.sh [-n N] [-o DIR] [-s SUITE] [--slowdown F] [--small F] [--no-build]
#   -n N          trials (default 20; fewer is a smoke test of the script, not evidence)
#   -o DIR        where runs, check reports and summary.md go (default results/evidence/<UTC time>)
#   -s SUITE      suite file (default suites/ci.toml)
#   --slowdown F  the slowdown that must be caught (default 0.10)
#   --small F     the small change that must not be called a regression (default 0.02)
#   --no-build    use target/release/inferbench as it is
# Exit status: 0 when every goal is met, 1 when one is missed, 2 on a usage or run error.
set -euo pipefail

N=20
OUT=""
SUITE="suites/ci.toml"
SLOW=0.10
SMALL=0.02
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        -n) N="$2"; shift 2 ;;
        -o) OUT="$2"; shift 2 ;;
        -s) SUITE="$2"; shift 2 ;;
        --slowdown) SLOW="$2"; shift 2 ;;
        --small) SMALL="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
if ! [[ "$N" =~ ^[0-9]+$ ]] || [[ "$N" -lt 1 ]]; then
    echo "-n needs a positive whole number, got $N" >&2
    exit 2
fi

cd "$(dirname "$0")/.."
BIN=target/release/inferbench
if [[ "$BUILD" == 1 ]]; then
    cargo build --release --quiet
fi
[[ -x "$BIN" ]] || { echo "$BIN is missing; build with cargo build --release" >&2; exit 2; }
OUT="${OUT:-results/evidence/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"

if [[ "$N" -lt 20 ]]; then
    echo "note: N = $N < 20: a smoke test of this script, not evidence" >&2
fi
cores=$(nproc 2>/dev/null || echo 1)
load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
if awk -v l="$load" -v c="$cores" 'BEGIN { exit !(l > 0.25 * c) }'; then
    echo "warning: load average $load on $cores cores: the machine is busy, timings will be noisy" >&2
fi
echo "suite $SUITE, $N trials, 4 runs each; writing to $OUT" >&2

run() { # run NAME [extra args...]
    local name="$1"; shift
    if ! "$BIN" run "$SUITE" --output "$OUT/$name.json" "$@" > "$OUT/$name.log" 2>&1; then
        echo "run $name failed; see $OUT/$name.log" >&2
        exit 2
    fi
}

check() { # check BASE CAND NAME -> prints the exit code (0 or 1)
    local code=0
    "$BIN" check --baseline "$OUT/$1.json" --candidate "$OUT/$2.json" \
        --json "$OUT/check-$3.json" --markdown "$OUT/check-$3.md" > "$OUT/check-$3.txt" 2>&1 || code=$?
    if [[ "$code" -ne 0 && "$code" -ne 1 ]]; then
        echo "check $3 exited $code; see $OUT/check-$3.txt" >&2
        exit 2
    fi
    echo "$code"
}

aa=0; slow=0; small=0
for i in $(seq 1 "$N"); do
    run "a$i"
    run "b$i"
    run "c$i" --inject-slowdown "$SLOW"
    run "d$i" --inject-slowdown "$SMALL"
    r_aa=$(check "a$i" "b$i" "aa$i")
    r_slow=$(check "a$i" "c$i" "slow$i")
    r_small=$(check "a$i" "d$i" "small$i")
    aa=$((aa + r_aa)); slow=$((slow + r_slow)); small=$((small + r_small))
    echo "trial $i/$N: A/A $([[ $r_aa == 1 ]] && echo 'FALSE ALARM' || echo pass)," \
        "+$SLOW $([[ $r_slow == 1 ]] && echo caught || echo MISSED)," \
        "+$SMALL $([[ $r_small == 1 ]] && echo 'CALLED A REGRESSION' || echo pass)" >&2
done

# rate X N -> "x/N = p% [lo%, hi%]" (Wilson 95% interval)
rate() {
    awk -v x="$1" -v n="$2" 'BEGIN {
        z = 1.959964; p = x / n; d = 1 + z * z / n
        c = (p + z * z / (2 * n)) / d
        h = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
        lo = c - h; if (lo < 0) lo = 0; hi = c + h; if (hi > 1) hi = 1
        printf "%d/%d = %.1f%% [%.1f%%, %.1f%%]", x, n, 100 * p, 100 * lo, 100 * hi
    }'
}
met() { awk -v x="$1" -v n="$2" -v op="$3" -v g="$4" 'BEGIN {
    r = x / n; ok = (op == "<=") ? (r <= g) : (r >= g); print ok ? "yes" : "NO" }'; }

# Which metrics fired, per experiment (needs jq).
fired() { # fired PREFIX
    if command -v jq > /dev/null; then
        jq -r '.cases[] | .id as $id | .metrics[] | select(.verdict == "regressed") | "\(.metric)"' \
            "$OUT"/check-"$1"[0-9]*.json 2>/dev/null | sort | uniq -c | awk '{ printf "%s%s x%s", sep, $2, $1; sep = ", " }'
    fi
}

env_line=$("$BIN" env --json | (command -v jq > /dev/null && jq -r '"\(.cpu_model), \(.logical_cores) logical cores, \(.os // "?"), inferbench \(.inferbench_version) (\(.git_commit[0:12]))"' || cat))
{
    echo "### CI regression gate: false alarms and detections"
    echo
    echo "\`scripts/check-evidence.sh -n $N -s $SUITE\` on $(date -u +%Y-%m-%d), $env_line;"
    echo "load average at the start $load. Each trial runs the suite 4 times (A, B = A again,"
    echo "C = A with a test-only +$SLOW slowdown, D = +$SMALL) and checks B, C and D against A"
    echo "at the suite's default thresholds. Intervals are Wilson 95%."
    echo
    echo "| experiment | \`check\` exit 1 | goal | met | metrics that fired |"
    echo "|---|---|---|---|---|"
    echo "| A/A: same binary and suite | $(rate $aa "$N") | <= 5% | $(met $aa "$N" "<=" 0.05) | $(fired aa) |"
    echo "| real +$SLOW slowdown | $(rate $slow "$N") | >= 95% | $(met $slow "$N" ">=" 0.95) | $(fired slow) |"
    echo "| real +$SMALL slowdown | $(rate $small "$N") | <= 5% | $(met $small "$N" "<=" 0.05) | $(fired small) |"
} > "$OUT/summary.md"
echo
cat "$OUT/summary.md"
echo
echo "runs, check reports (txt, md, json) and summary.md are in $OUT"

[[ $(met $aa "$N" "<=" 0.05) == yes && $(met $slow "$N" ">=" 0.95) == yes && $(met $small "$N" "<=" 0.05) == yes ]]
