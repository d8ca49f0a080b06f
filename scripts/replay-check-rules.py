#!/usr/bin/env python3
"""Replays alternative rules for the per-process timing test of `inferbench check` on the run
files that `scripts/check-evidence.sh` keeps (BENCHMARKS.md, "Disturbed runs adjusted for the
reference time (2026-11-23, 21:28 UTC onward)"). A transcription of the tests in src/stats.rs and src/compare/mod.rs for
comparing rules, not a second implementation to trust: the verdicts that count are the
binary's.

For each trial directory (a1.json, b1.json, ... as check-evidence.sh writes them) it checks
B (A/A), C (+10%) and D (+2%) against A, and counts the trials in which any case's
latency_p50 or throughput row is `regressed` under each rule:

  undisturbed_only   Welch on logs of the processes within 3% of the fastest reference;
                     inconclusive with fewer than 3 per side (the rule before 2026-11-23 21:28)
  undisturbed_else_adjusted
                     the same, but with fewer than 3 per side every process is adjusted for
                     its reference time (ANCOVA on logs): the rule `check` uses now
  always_adjusted    ANCOVA on every process, no selection
  all_processes      Welch on logs of every process, reference ignored

Needs numpy and scipy.  Usage: scripts/replay-check-rules.py DIR [DIR ...]
Thresholds: 4% (latency_p50, throughput), significance 0.01, as in suites/ci.toml.
"""
import json
import math
import os
import sys

import numpy as np
from scipy import stats

ALPHA = 0.01
THRESHOLD = 0.04
BAND = 0.03
MIN_UNDISTURBED = 3
RULES = ["undisturbed_only", "undisturbed_else_adjusted", "always_adjusted", "all_processes"]


def welch(b, c):
    if len(b) < 2 or len(c) < 2:
        return None
    b, c = np.log(b), np.log(c)
    d = c.mean() - b.mean()
    vb, vc = b.var(ddof=1) / len(b), c.var(ddof=1) / len(c)
    se = math.sqrt(vb + vc)
    if se == 0:
        return d, d, d, 1.0 if d == 0 else 0.0
    df = (vb + vc) ** 2 / (vb**2 / (len(b) - 1) + vc**2 / (len(c) - 1))
    q = stats.t.ppf(1 - ALPHA / 2, df)
    return d, d - q * se, d + q * se, 2 * stats.t.sf(abs(d) / se, df)


def ancova(b, br, c, cr):
    """Group coefficient of least squares on [1, group, ln reference] against ln figure."""
    if len(b) < 3 or len(c) < 3:
        return None
    y = np.log(np.concatenate([b, c]))
    x = np.log(np.concatenate([br, cr]))
    group = np.r_[np.zeros(len(b)), np.ones(len(c))]
    design = np.c_[np.ones_like(y), group, x - x.mean()]
    beta = np.linalg.lstsq(design, y, rcond=None)[0]
    n = len(y)
    resid = y - design @ beta
    cov = (resid @ resid / (n - 3)) * np.linalg.inv(design.T @ design)
    se = math.sqrt(cov[1, 1])
    q = stats.t.ppf(1 - ALPHA / 2, n - 3)
    d = beta[1]
    return d, d - q * se, d + q * se, 2 * stats.t.sf(abs(d) / se, n - 3)


def regressed(result, lower_is_better):
    if result is None:
        return False
    _, lo, hi, p = result
    lo, hi = math.exp(lo) - 1, math.exp(hi) - 1
    if not lower_is_better:
        lo, hi = -hi, -lo
    return p < ALPHA and lo > THRESHOLD


def rule_result(rule, b, br, c, cr, floor):
    keep_b, keep_c = br <= floor * (1 + BAND), cr <= floor * (1 + BAND)
    enough = keep_b.sum() >= MIN_UNDISTURBED and keep_c.sum() >= MIN_UNDISTURBED
    if rule == "undisturbed_only":
        return welch(b[keep_b], c[keep_c]) if enough else None
    if rule == "undisturbed_else_adjusted":
        return welch(b[keep_b], c[keep_c]) if enough else ancova(b, br, c, cr)
    if rule == "always_adjusted":
        return ancova(b, br, c, cr)
    return welch(b, c)


def processes(run):
    return {c["id"]: c["processes"] for c in run["cases"] if c.get("processes")}


def fires(rule, a, x):
    pa, px = processes(a), processes(x)
    floor = min(r for p in list(pa.values()) + list(px.values()) for r in p["reference_us"])
    for case, p in pa.items():
        if case not in px:
            continue
        q = px[case]
        br, cr = np.array(p["reference_us"]), np.array(q["reference_us"])
        for key, lower in (("latency_p50_ms", True), ("throughput_per_s", False)):
            b, c = np.array(p[key]), np.array(q[key])
            if regressed(rule_result(rule, b, br, c, cr, floor), lower):
                return True
    return False


def main(dirs):
    if not dirs:
        sys.exit(__doc__)
    counts = {(rule, e): [0, 0] for rule in RULES for e in "bcd"}
    for d in dirs:
        i = 1
        while os.path.exists(os.path.join(d, f"a{i}.json")):
            a = json.load(open(os.path.join(d, f"a{i}.json")))
            for e in "bcd":
                x = json.load(open(os.path.join(d, f"{e}{i}.json")))
                for rule in RULES:
                    counts[(rule, e)][0] += fires(rule, a, x)
                    counts[(rule, e)][1] += 1
            i += 1
    print("| rule | A/A flagged | +10% caught | +2% flagged |")
    print("| --- | --- | --- | --- |")
    for rule in RULES:
        cells = ["%d/%d" % tuple(counts[(rule, e)]) for e in "bcd"]
        print(f"| {rule} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
