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
# Each check ends one of three ways: exit 1 "regressed", exit 75 "measure again" (too few
# processes ran undisturbed to decide), exit 0 "passed" (unchanged or inconclusive); the
# summary counts the three apart. All checks use the suite's default thresholds. Do not
# compare numbers across machines.
#
# Usage: scripts/check-evidence.sh [-n N] [-o DIR] [-s SUITE] [--slowdown F] [--small F]
#                                  [--busy] [--retry-disturbed R] [--max-processes P]
#                                  [--max-minutes M] [--no-build]
#   -n N          trials (default 20; fewer is a smoke test of the script, not evidence)
#   -o DIR        where runs, check reports and summary.md go (default results/evidence/<UTC time>)
#   -s SUITE      suite file (default suites/ci.toml)
#   --slowdown F  the slowdown that must be caught (default 0.10)
#   --small F     the small change that must not be called a regression (default 0.02)
#   --busy        a busy neighbour beside every trial: a cold `cargo build --release` of this
#                 repository in a scratch target folder, started again whenever it ends (both
#                 cores); the goals are then no false regression and no +F slowdown "passed"
#   --retry-disturbed R  pass `--retry-disturbed R` to every run (default 0)
#   --max-processes P    run a copy of the suite ($OUT/suite.toml) whose [settings]
#                 max_processes is P (at least its `processes`): beside a busy neighbour
#                 every case otherwise runs the suite's full 40 processes, and a trial takes
#                 about 15 minutes on 2 cores
#   --max-minutes M      start no trial after M minutes; the summary counts the trials done
#   --no-build    use target/release/inferbench as it is
# Exit status: 0 when every goal is met, 1 when one is missed, 2 on a usage or run error.
set -euo pipefail

N=20
OUT=""
SUITE="suites/ci.toml"
SLOW=0.10
SMALL=0.02
BUILD=1
BUSY=0
RETRY=0
MAX_PROCESSES=0
MAX_MINUTES=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        -n) N="$2"; shift 2 ;;
        -o) OUT="$2"; shift 2 ;;
        -s) SUITE="$2"; shift 2 ;;
        --slowdown) SLOW="$2"; shift 2 ;;
        --small) SMALL="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --busy) BUSY=1; shift ;;
        --retry-disturbed) RETRY="$2"; shift 2 ;;
        --max-processes) MAX_PROCESSES="$2"; shift 2 ;;
        --max-minutes) MAX_MINUTES="$2"; shift 2 ;;
        -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
if ! [[ "$N" =~ ^[0-9]+$ ]] || [[ "$N" -lt 1 ]]; then
    echo "-n needs a positive whole number, got $N" >&2
    exit 2
fi
for v in "$RETRY" "$MAX_MINUTES" "$MAX_PROCESSES"; do
    [[ "$v" =~ ^[0-9]+$ ]] || { echo "--retry-disturbed, --max-processes and --max-minutes need whole numbers, got $v" >&2; exit 2; }
done

cd "$(dirname "$0")/.."
BIN=target/release/inferbench
if [[ "$BUILD" == 1 ]]; then
    cargo build --release --quiet
fi
[[ -x "$BIN" ]] || { echo "$BIN is missing; build with cargo build --release" >&2; exit 2; }
OUT="${OUT:-results/evidence/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
if [[ "$MAX_PROCESSES" -gt 0 ]]; then
    grep -qE '^max_processes *=' "$SUITE" || { echo "$SUITE has no max_processes line to change" >&2; exit 2; }
    sed -E "s/^max_processes *=.*/max_processes = $MAX_PROCESSES/" "$SUITE" > "$OUT/suite.toml"
    SUITE="$OUT/suite.toml"
fi

if [[ "$N" -lt 20 ]]; then
    echo "note: N = $N < 20: a smoke test of this script, not evidence" >&2
fi
cores=$(nproc 2>/dev/null || echo 1)
load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
if [[ "$BUSY" == 0 ]] && awk -v l="$load" -v c="$cores" 'BEGIN { exit !(l > 0.25 * c) }'; then
    echo "warning: load average $load on $cores cores: the machine is busy, timings will be noisy" >&2
fi
echo "suite $SUITE, $N trials, 4 runs each; writing to $OUT" >&2

# --busy: the neighbour, a cold release build looped in a scratch target folder; stopped and
# removed on exit however the script ends.
BUSY_PID=""
BUSY_DIR=""
stop_busy() {
    if [[ -n "$BUSY_PID" ]]; then
        kill -- "-$BUSY_PID" 2> /dev/null || kill "$BUSY_PID" 2> /dev/null || true
        wait "$BUSY_PID" 2> /dev/null || true
    fi
    [[ -n "$BUSY_DIR" ]] && rm -rf "$BUSY_DIR"
    return 0
}
trap stop_busy EXIT
if [[ "$BUSY" == 1 ]]; then
    BUSY_DIR=$(mktemp -d "${TMPDIR:-/tmp}/check-evidence-busy.XXXXXX")
    set -m # the loop gets its own process group, so stop_busy ends cargo and rustc with it
    (
        while true; do
            rm -rf "$BUSY_DIR/target"
            cargo build --release --quiet --target-dir "$BUSY_DIR/target" > /dev/null 2>&1 || true
            echo "$(date -u +%H:%M:%S) build done" >> "$OUT/busy.log"
        done
    ) &
    BUSY_PID=$!
    set +m
    sleep 5 # let the build reach its compile jobs before the first trial
    echo "busy neighbour: cold cargo build --release looped in $BUSY_DIR (pid $BUSY_PID)" >&2
fi

run() { # run NAME [extra args...]
    local name="$1"; shift
    local retry=()
    [[ "$RETRY" -gt 0 ]] && retry=(--retry-disturbed "$RETRY")
    if ! "$BIN" run "$SUITE" --output "$OUT/$name.json" "${retry[@]}" "$@" > "$OUT/$name.log" 2>&1; then
        echo "run $name failed; see $OUT/$name.log" >&2
        exit 2
    fi
}

check() { # check BASE CAND NAME -> prints the exit code (0, 1, or 75 for measure again)
    local code=0
    "$BIN" check --baseline "$OUT/$1.json" --candidate "$OUT/$2.json" \
        --json "$OUT/check-$3.json" --markdown "$OUT/check-$3.md" > "$OUT/check-$3.txt" 2>&1 || code=$?
    if [[ "$code" -ne 0 && "$code" -ne 1 && "$code" -ne 75 ]]; then
        echo "check $3 exited $code; see $OUT/check-$3.txt" >&2
        exit 2
    fi
    echo "$code"
}

# Per experiment: checks that exited 1 (regressed), 75 (measure again) and 0 (passed).
declare -A n1=() n75=() n0=()
count() { # count EXPERIMENT CODE
    case "$2" in
        1) n1[$1]=$(( ${n1[$1]:-0} + 1 )) ;;
        75) n75[$1]=$(( ${n75[$1]:-0} + 1 )) ;;
        *) n0[$1]=$(( ${n0[$1]:-0} + 1 )) ;;
    esac
}
word() { case "$1" in 1) echo regressed ;; 75) echo 'measure again' ;; *) echo passed ;; esac; }
start_s=$(date +%s)
done_n=0
for i in $(seq 1 "$N"); do
    if [[ "$MAX_MINUTES" -gt 0 && $(( $(date +%s) - start_s )) -ge $(( MAX_MINUTES * 60 )) ]]; then
        echo "--max-minutes $MAX_MINUTES reached: stopping after $done_n trials" >&2
        break
    fi
    trial_start=$(date +%s)
    run "a$i"
    run "b$i"
    run "c$i" --inject-slowdown "$SLOW"
    run "d$i" --inject-slowdown "$SMALL"
    r_aa=$(check "a$i" "b$i" "aa$i")
    r_slow=$(check "a$i" "c$i" "slow$i")
    r_small=$(check "a$i" "d$i" "small$i")
    count aa "$r_aa"; count slow "$r_slow"; count small "$r_small"
    done_n=$i
    echo "trial $i/$N ($(( $(date +%s) - trial_start )) s, load $(cut -d' ' -f1 /proc/loadavg)):" \
        "A/A $(word "$r_aa"), +$SLOW $(word "$r_slow"), +$SMALL $(word "$r_small")" >&2
    cut -d' ' -f1-3 /proc/loadavg >> "$OUT/loadavg.log"
done
[[ "$done_n" -ge 1 ]] || { echo "no trial finished" >&2; exit 2; }
N=$done_n
aa=${n1[aa]:-0}; slow=${n1[slow]:-0}; small=${n1[small]:-0}
slow_passed=${n0[slow]:-0}
load_end=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo 0)
load_max=$(awk '{ if ($1 > m) m = $1 } END { print m + 0 }' "$OUT/loadavg.log")

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

three() { # three EXPERIMENT -> "regressed / measure again / passed" counts
    echo "${n1[$1]:-0} / ${n75[$1]:-0} / ${n0[$1]:-0}"
}
env_line=$("$BIN" env --json | (command -v jq > /dev/null && jq -r '"\(.cpu_model), \(.logical_cores) logical cores, \(.os // "?"), inferbench \(.inferbench_version) (\(.git_commit[0:12]))"' || cat))
{
    echo "### CI regression gate: false alarms and detections"
    echo
    flags="-n $N -s $SUITE"
    [[ "$BUSY" == 1 ]] && flags="$flags --busy"
    [[ "$RETRY" -gt 0 ]] && flags="$flags --retry-disturbed $RETRY"
    [[ "$MAX_PROCESSES" -gt 0 ]] && flags="$flags --max-processes $MAX_PROCESSES"
    echo "\`scripts/check-evidence.sh $flags\` on $(date -u +%Y-%m-%d), $env_line;"
    echo "load average (1 min) at the start $load, after the last trial $load_end, highest after a trial $load_max."
    if [[ "$BUSY" == 1 ]]; then
        echo "Beside every trial a cold \`cargo build --release\` of this repository ran in a loop (busy.log)."
    fi
    echo "Each trial runs the suite 4 times (A, B = A again, C = A with a test-only +$SLOW slowdown,"
    echo "D = +$SMALL) and checks B, C and D against A at the suite's default thresholds."
    echo "Checks end regressed (exit 1), measure again (exit 75) or passed (exit 0: unchanged or"
    echo "inconclusive). Intervals are Wilson 95%."
    echo
    echo "| experiment | regressed / measure again / passed | \`check\` exit 1 | goal | met | metrics that fired |"
    echo "|---|---|---|---|---|---|"
    echo "| A/A: same binary and suite | $(three aa) | $(rate $aa "$N") | <= 5% | $(met $aa "$N" "<=" 0.05) | $(fired aa) |"
    if [[ "$BUSY" == 1 ]]; then
        echo "| real +$SLOW slowdown | $(three slow) | $(rate $slow "$N") | none passed | $([[ $slow_passed == 0 ]] && echo yes || echo NO) | $(fired slow) |"
    else
        echo "| real +$SLOW slowdown | $(three slow) | $(rate $slow "$N") | >= 95% | $(met $slow "$N" ">=" 0.95) | $(fired slow) |"
    fi
    echo "| real +$SMALL slowdown | $(three small) | $(rate $small "$N") | <= 5% | $(met $small "$N" "<=" 0.05) | $(fired small) |"
} > "$OUT/summary.md"
echo
cat "$OUT/summary.md"
echo
echo "runs, check reports (txt, md, json) and summary.md are in $OUT"

if [[ "$BUSY" == 1 ]]; then
    slow_ok=$([[ $slow_passed == 0 ]] && echo yes || echo NO)
else
    slow_ok=$(met $slow "$N" ">=" 0.95)
fi
[[ $(met $aa "$N" "<=" 0.05) == yes && $slow_ok == yes && $(met $small "$N" "<=" 0.05) == yes ]]
