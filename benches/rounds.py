#!/usr/bin/env python3
"""Pool the rounds of one or more benches/compare.sh runs into per-round ratios.

    python3 benches/rounds.py OUT [OUT ...] [--tool aquatic_udp_load_test]

compare.sh's summary divides one median by another. On a noisy machine a
single round can swing by a third, so this prints each round's pair (shoal
against the opponent that ran in the same round, aquatic_udp or BASELINE),
then the geometric mean of the per-round ratios and, from 5 rounds on, its
95 % bootstrap interval (10 000 resamples, fixed seed: the same input prints
the same figures). An interval that contains 1.00 means the runs cannot tell
the two builds apart.
"""
import argparse
import csv
import random
import statistics

MIN_ROUNDS = 5
KEYS = (("replies_per_s", "replies/s"), ("cpu_us_per_reply", "CPU us/reply"))


def pairs(out, tool):
    rounds = {}
    try:
        f = open(f"{out}/throughput.tsv")
    except OSError as e:
        raise SystemExit(f"{out}: not a compare.sh OUT directory ({e})")
    with f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["tool"] == tool and row["replies_per_s"]:
                rounds.setdefault(row["round"], {})[row["tracker"]] = row
    for name in sorted(rounds, key=int):
        pair = rounds[name]
        if "aquatic" in pair and "shoal" in pair:
            yield name, pair["aquatic"], pair["shoal"]


def interval(ratios, rng):
    means = sorted(
        statistics.geometric_mean(rng.choices(ratios, k=len(ratios))) for _ in range(10_000)
    )
    return means[249], means[9_749]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="+", help="compare.sh OUT directories")
    ap.add_argument("--tool", default="aquatic_udp_load_test", help="or shoal_bench")
    args = ap.parse_args()
    ratios = {key: [] for key, _ in KEYS}
    for out in args.out:
        for name, opp, shoal in pairs(out, args.tool):
            line = f"{out} round {name}:"
            for key, label in KEYS:
                a, b = float(opp[key] or 0), float(shoal[key] or 0)
                if a > 0 and b > 0:
                    ratios[key].append(b / a)
                    line += f"  {label} {a:.6g} / {b:.6g} = {b / a:.3f}x"
                else:  # a run that answered nothing: shown, kept out of the means
                    line += f"  {label} {a:.6g} / {b:.6g} (no ratio)"
            print(line)
    rng = random.Random(14)
    for key, label in KEYS:
        r = ratios[key]
        if not r:
            continue
        # Too few rounds to resample: the interval would only list them.
        spread = ""
        if len(r) >= MIN_ROUNDS:
            lo, hi = interval(r, rng)
            spread = f" (95 % interval {lo:.2f}-{hi:.2f}x)"
        if key == "replies_per_s":
            won = f"shoal answers at least as many in {sum(x >= 1 for x in r)}"
        else:
            won = f"shoal spends no more in {sum(x <= 1 for x in r)}"
        print(
            f"{label:13} {len(r)} rounds: geometric mean of ratios {statistics.geometric_mean(r):.3f}x"
            f"{spread}, median {statistics.median(r):.3f}x, {won}"
        )


if __name__ == "__main__":
    main()
